def dropout_forward(x, p, training=True):
    """Inverted dropout forward pass.

    Args:
        x: input of any shape.
        p: probability of zeroing each element, 0 <= p < 1.
        training: False returns x unchanged.

    Returns:
        out: shaped like x.
        cache: whatever dropout_backward needs.
    """
    if p == 0:
        return x, None
    keep = torch.rand(x.shape, device=x.device) >= p
    scale = keep.to(x.dtype) / (1.0 - p)
    out = x * scale
    cache = scale
    return out, cache
