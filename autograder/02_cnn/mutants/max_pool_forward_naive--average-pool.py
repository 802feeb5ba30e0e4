def max_pool_forward_naive(x, pool_size=2, stride=2):
    """Naive max pooling forward pass.

    Args:
        x: input, (N, C, H, W).
        pool_size: height and width of each window.
        stride: step between windows.

    Returns:
        out: (N, C, H_out, W_out).
        cache: whatever max_pool_backward_naive needs.
    """
    N, C, H, W = x.shape
    H_out = 1 + (H - pool_size) // stride
    W_out = 1 + (W - pool_size) // stride
    out = x.new_zeros((N, C, H_out, W_out))
    for i in range(H_out):
        for j in range(W_out):
            top, left = i * stride, j * stride
            window = x[:, :, top:top + pool_size, left:left + pool_size]
            out[:, :, i, j] = window.mean(dim=(2, 3))
    cache = (x, pool_size, stride)
    return out, cache
