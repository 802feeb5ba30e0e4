def sgd_momentum(w, dw, config):
    """SGD with momentum, as torch.optim.SGD(momentum=...) (no dampening, no Nesterov).

    config: 'learning_rate' (default 1e-2), 'momentum' (default 0.9),
    'velocity' (state, zeros like w at the first step). Returns (next_w, config).
    """
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("momentum", 0.9)
    config.setdefault("velocity", np.zeros_like(w))
    velocity = config["momentum"] * config["velocity"] + (1 - config["momentum"]) * dw
    next_w = w - config["learning_rate"] * velocity
    config["velocity"] = velocity
    return next_w, config
