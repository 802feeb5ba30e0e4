def batchnorm_forward(x, gamma, beta, bn_state, training=True):
    """Batch normalization forward pass.

    Args:
        x: input, (N, C) or (N, C, H, W).
        gamma, beta: scale and shift, (C,).
        bn_state: dict with "running_mean", "running_var" ((C,) tensors), "momentum", "eps";
            updated in training mode.
        training: True normalizes with the batch statistics, False with the running ones.

    Returns:
        out: shaped like x.
        cache: whatever batchnorm_backward needs (training mode).
    """
    eps, momentum = bn_state["eps"], bn_state["momentum"]
    dims = [0] + list(range(2, x.dim()))  # every dimension except the channel one
    shape = [1, -1] + [1] * (x.dim() - 2)  # view a (C,) tensor so it broadcasts against x
    if training:
        mean = x.mean(dim=dims)
        var = x.var(dim=dims, unbiased=False)
        m = x.numel() // x.shape[1]
        bn_state["running_mean"] = (1 - momentum) * bn_state["running_mean"] + momentum * mean
        bn_state["running_var"] = (1 - momentum) * bn_state["running_var"] + momentum * var * m / (m - 1)
    mean, var = bn_state["running_mean"], bn_state["running_var"]
    inv_std = 1.0 / torch.sqrt(var + eps)
    x_hat = (x - mean.view(shape)) * inv_std.view(shape)
    out = gamma.view(shape) * x_hat + beta.view(shape)
    cache = (x_hat, gamma, inv_std, dims, shape)
    return out, cache
