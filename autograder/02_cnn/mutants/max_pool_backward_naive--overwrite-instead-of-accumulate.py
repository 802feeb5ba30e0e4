def max_pool_backward_naive(dout, cache):
    """Naive max pooling backward pass.

    Args:
        dout: upstream gradient, (N, C, H_out, W_out).
        cache: what max_pool_forward_naive returned.

    Returns:
        dx: (N, C, H, W).
    """
    x, pool_size, stride = cache
    N, C, H, W = x.shape
    _, _, H_out, W_out = dout.shape
    dx = torch.zeros_like(x)
    for i in range(H_out):
        for j in range(W_out):
            top, left = i * stride, j * stride
            window = x[:, :, top:top + pool_size, left:left + pool_size].reshape(N, C, -1)
            winner = window.argmax(dim=2, keepdim=True)  # (N, C, 1)
            grad = torch.zeros_like(window).scatter_(2, winner, dout[:, :, i, j].unsqueeze(2))
            dx[:, :, top:top + pool_size, left:left + pool_size] = grad.view(N, C, pool_size, pool_size)
    return dx
