def lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b):
    """One LSTM step (gate order i, f, g, o, as in PyTorch).

    Args:
        x: (N, D); h_prev, c_prev: (N, H); Wx: (D, 4H); Wh: (H, 4H); b: (4H,).

    Returns:
        h_next, c_next: (N, H) each.
    """
    h_next, c_next = None, None
    a = x @ Wx + h_prev @ Wh + b
    a_i, a_f, a_g, a_o = a.chunk(4, dim=1)
    i, f, o = torch.sigmoid(a_i), torch.sigmoid(a_f), torch.sigmoid(a_o)
    g = torch.sigmoid(a_g)
    c_next = f * c_prev + i * g
    h_next = o * torch.tanh(c_next)
    return h_next, c_next
