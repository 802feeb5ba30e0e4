def tanh_forward(x):
    """Tanh: out = tanh(x). x: any shape; out: same shape; cache = out."""
    out = np.tanh(x)
    return out, out


def tanh_backward(dout, cache):
    """dout: upstream gradient shaped like x; returns dx shaped like x."""
    out = cache
    dx = 1.0 - out**2
    return dx
