def rnn_forward(x, h0, Wx, Wh, b):
    """Run the tanh RNN over a whole sequence.

    Args:
        x: inputs, (N, T, D).
        h0: initial hidden state, (N, H).
        Wx (D, H), Wh (H, H), b (H,): the weights, shared by all steps.

    Returns:
        h: hidden states of every step, (N, T, H); h[:, -1] is the final state.
        cache: whatever rnn_backward needs.
    """
    h, cache = None, None
    states, cache = [], []
    h_t = torch.zeros_like(h0)
    for t in range(x.shape[1]):
        h_t, step_cache = rnn_step_forward(x[:, t], h_t, Wx, Wh, b)
        states.append(h_t)
        cache.append(step_cache)
    h = torch.stack(states, dim=1)
    return h, cache
