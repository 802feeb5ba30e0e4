def rnn_backward(dh, cache):
    """Backpropagation through time.

    Args:
        dh: upstream gradients of every hidden state, (N, T, H) (dLoss/dh[:, t]).
        cache: what rnn_forward returned.

    Returns:
        dx (N, T, D), dh0 (N, H), dWx (D, H), dWh (H, H), db (H,).
    """
    dx, dh0, dWx, dWh, db = None, None, None, None, None
    N, T, H = dh.shape
    dx_steps = [None] * T
    dWx, dWh, db = 0, 0, 0
    dh_carry = torch.zeros_like(dh[:, 0])  # gradient reaching h_t from step t+1
    for t in reversed(range(T)):
        dx_t, dh_carry, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t] + dh_carry, cache[t])
        dx_steps[t] = dx_t
        dWx, dWh, db = dWx_t, dWh_t, db_t
    dx = torch.stack(dx_steps, dim=1)
    dh0 = dh_carry
    return dx, dh0, dWx, dWh, db
