def batchnorm_backward(dout, cache):
    """Batch normalization backward pass (training mode).

    Args:
        dout: upstream gradient, shaped like x.
        cache: what batchnorm_forward returned in training mode.

    Returns:
        dx: shaped like x; dgamma, dbeta: (C,).
    """
    x_hat, gamma, inv_std, dims, shape = cache
    m = dout.numel() // dout.shape[1]
    dbeta = dout.sum(dim=dims)
    dgamma = (dout * x_hat).sum(dim=dims)
    g_hat = dout
    dx = (inv_std.view(shape) / m) * (
        m * g_hat - g_hat.sum(dim=dims, keepdim=True) - x_hat * (g_hat * x_hat).sum(dim=dims, keepdim=True)
    )
    return dx, dgamma, dbeta
