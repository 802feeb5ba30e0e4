def sinusoidal_encoding(max_len, d_model):
    """Sinusoidal position encodings, float32 tensor of shape (max_len, d_model) (d_model even).

    Row p is the encoding of position p: PE[p, 2i] = sin(p w_i), PE[p, 2i+1] = cos(p w_i),
    with w_i = 10000 ** (-2i / d_model).
    """
    if d_model % 2 != 0:
        raise ValueError(f"d_model must be even, got {d_model}")
    position = torch.arange(max_len, dtype=torch.float64)[:, None]
    frequency = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    encoding = torch.empty(max_len, d_model, dtype=torch.float64)
    encoding[:, 0::2] = torch.cos(position * frequency)
    encoding[:, 1::2] = torch.sin(position * frequency)
    return encoding.float()
