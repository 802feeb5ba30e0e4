def rnn_step_forward(x, h_prev, Wx, Wh, b):
    """One time step of a tanh RNN.

    Args:
        x: input at this step, (N, D).
        h_prev: hidden state of the previous step, (N, H).
        Wx: input-to-hidden weights, (D, H).
        Wh: hidden-to-hidden weights, (H, H).
        b: bias, (H,).

    Returns:
        h_next: the new hidden state, (N, H).
        cache: whatever rnn_step_backward needs (your choice).
    """
    h_next, cache = None, None
    h_next = torch.sigmoid(x @ Wx + h_prev @ Wh + b)
    cache = (x, h_prev, Wx, Wh, h_next)
    return h_next, cache
