def conv_backward_naive(dout, cache):
    """Naive convolution backward pass.

    Args:
        dout: upstream gradient, (N, F, H_out, W_out).
        cache: what conv_forward_naive returned.

    Returns:
        dx: (N, C, H, W), dw: (F, C, HH, WW), db: (F,).
    """
    x, w, b, stride, pad = cache
    N, C, H, W = x.shape
    _, _, HH, WW = w.shape
    _, _, H_out, W_out = dout.shape
    x_pad = F.pad(x, (pad, pad, pad, pad))
    num_filters = w.shape[0]
    w_rows = w.reshape(num_filters, -1)
    dx_pad = torch.zeros_like(x_pad)
    dw_rows = torch.zeros_like(w_rows)
    db = dout.sum(dim=(0, 2, 3))
    for i in range(H_out):
        for j in range(W_out):
            top, left = i * stride, j * stride
            window = x_pad[:, :, top:top + HH, left:left + WW].reshape(N, -1)  # (N, C*HH*WW)
            g = dout[:, :, i, j]  # (N, F)
            dw_rows += g.T @ window
            dx_pad[:, :, top:top + HH, left:left + WW] = (g @ w_rows).view(N, C, HH, WW)
    dw = dw_rows.view_as(w)
    dx = dx_pad[:, :, pad:pad + H, pad:pad + W]
    return dx, dw, db
