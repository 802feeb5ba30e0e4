def conv_forward_naive(x, w, b, stride=1, pad=0):
    """Naive convolution forward pass.

    Args:
        x: input, (N, C, H, W).
        w: filters, (F, C, HH, WW).
        b: biases, (F,).
        stride: step between neighbouring windows (same along height and width).
        pad: zeros added on every side of the input.

    Returns:
        out: (N, F, H_out, W_out), as defined above.
        cache: whatever conv_backward_naive needs.
    """
    N, C, H, W = x.shape
    num_filters, _, HH, WW = w.shape
    H_out = 1 + (H + 2 * pad - HH) // stride
    W_out = 1 + (W + 2 * pad - WW) // stride
    x_pad = F.pad(x, (pad, pad, pad, pad))
    w_rows = w.reshape(num_filters, -1)  # (F, C*HH*WW): one filter per row
    out = x.new_zeros((N, num_filters, H_out, W_out))
    for i in range(H_out):
        for j in range(W_out):
            top, left = i, j
            window = x_pad[:, :, top:top + HH, left:left + WW]  # (N, C, HH, WW)
            out[:, :, i, j] = window.reshape(N, -1) @ w_rows.T + b
    cache = (x, w, b, stride, pad)
    return out, cache
