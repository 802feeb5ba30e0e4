def sigmoid_forward(x):
    """Sigmoid: out = 1 / (1 + exp(-x)). x: any shape; out: same shape; cache = out."""
    out = 1.0 / (1.0 + np.exp(-x))
    return out, out


def sigmoid_backward(dout, cache):
    """dout: upstream gradient shaped like x; returns dx shaped like x."""
    out = cache
    x = np.log(out / (1.0 - out))
    dx = dout * x * (1.0 - x)
    return dx
