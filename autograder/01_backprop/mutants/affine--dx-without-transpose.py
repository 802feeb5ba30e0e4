def affine_forward(x, w, b):
    """Fully connected layer: out = x @ w + b.

    x: (N, D) inputs, w: (D, M) weights, b: (M,) biases.
    Returns out (N, M) and cache = (x, w, b).
    """
    out = x @ w + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    """dout: (N, M) upstream gradient; cache from affine_forward.

    Returns dx (N, D), dw (D, M), db (M,).
    """
    x, w, b = cache
    dx = dout @ w
    dw = x.T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db
