def conv_forward_im2col(x, w, b, stride=1, pad=0):
    """Convolution as one matrix product: F.unfold, then a matmul.

    Args and result as conv_forward_naive (only `out` is returned, (N, F, H_out, W_out)).
    """
    N, C, H, W = x.shape
    num_filters, _, HH, WW = w.shape
    H_out = 1 + (H + 2 * pad - HH) // stride
    W_out = 1 + (W + 2 * pad - WW) // stride
    columns = F.unfold(x, kernel_size=(HH, WW), padding=pad, stride=stride)  # (N, C*HH*WW, H_out*W_out)
    out = w.reshape(num_filters, -1) @ columns  # (N, F, H_out*W_out)
    return out.view(N, num_filters, H_out, W_out)
