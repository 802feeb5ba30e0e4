def lstm_forward(x, Wx, Wh, b, state=None):
    """Run the LSTM over a sequence.

    Args:
        x: inputs, (N, T, D).
        Wx (D, 4H), Wh (H, 4H), b (4H,): the weights.
        state: None (zeros) or a tuple (h0, c0) of (N, H) tensors.

    Returns:
        h: hidden states of every step, (N, T, H).
        (h_T, c_T): the final hidden and cell states, (N, H) each.
    """
    h, final = None, None
    N, T, _ = x.shape
    H = Wh.shape[0]
    if state is None:
        zeros = torch.zeros(N, H, dtype=x.dtype, device=x.device)
        state = (zeros, zeros)
    h_t, c_t = state
    states = []
    for t in range(T):
        h_t, c_t = lstm_step_forward(x[:, t], h_t, state[1], Wx, Wh, b)
        states.append(h_t)
    h = torch.stack(states, dim=1)
    final = (h_t, c_t)
    return h, final
