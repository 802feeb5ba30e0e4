def sgd(w, dw, config):
    """Plain SGD. config: 'learning_rate' (default 1e-2). Returns (next_w, config)."""
    config.setdefault("learning_rate", 1e-2)
    next_w = w - dw
    return next_w, config
