def rnn_step_backward(dh_next, cache):
    """Backward pass of one RNN step.

    Args:
        dh_next: upstream gradient dLoss/dh_next, (N, H).
        cache: what rnn_step_forward returned.

    Returns:
        dx (N, D), dh_prev (N, H), dWx (D, H), dWh (H, H), db (H,).
    """
    dx, dh_prev, dWx, dWh, db = None, None, None, None, None
    x, h_prev, Wx, Wh, h_next = cache
    dz = dh_next * (1 - h_next**2)  # through the tanh
    dx = dz @ Wx.T
    dh_prev = dz @ Wh.T
    dWx = x.T @ dz
    dWh = h_prev.T @ dz
    db = dz.mean(dim=0)
    return dx, dh_prev, dWx, dWh, db
