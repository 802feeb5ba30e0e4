def q_sample(x0, t, noise, alpha_bars):
    """Sample x_t ~ q(x_t | x_0) given the noise.

    Args:
        x0: (batch, ...) clean data.
        t: (batch,) int64 step indices in [0, T - 1].
        noise: same shape as x0, standard normal.
        alpha_bars: (T,) cumulative products, same dtype and device as x0.
    Returns:
        x_t, same shape as x0.
    """
    alpha_bar = alpha_bars[t].view(-1, *([1] * (x0.dim() - 1)))
    return alpha_bar * x0 + (1 - alpha_bar) * noise
