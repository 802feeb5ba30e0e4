def dropout_backward(dout, cache):
    """Inverted dropout backward pass: dL/dx from dL/dout and the cache of the forward call."""
    if cache is None:  # evaluation mode (or p == 0): the identity
        return dout
    return dout
