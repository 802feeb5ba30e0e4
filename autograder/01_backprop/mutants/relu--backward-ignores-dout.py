def relu_forward(x):
    """ReLU: out = max(0, x). x: any shape; out: same shape; cache = x."""
    out = np.maximum(x, 0.0)
    return out, x


def relu_backward(dout, cache):
    """dout: upstream gradient shaped like x; returns dx shaped like x."""
    x = cache
    dx = (x > 0).astype(dout.dtype)
    return dx
