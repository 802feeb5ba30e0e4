def p_sample_step(model, xt, t, betas, alpha_bars, noise):
    """One ancestral step from x_t to x_{t-1}.

    Args:
        model: eps_theta, called as model(xt, t_batch) with t_batch a (batch,) int64 tensor.
        xt: (batch, ...) the current sample.
        t: int, the step index in [0, T - 1].
        betas, alpha_bars: (T,) schedule tensors on xt's device and dtype.
        noise: like xt, standard normal; not used at index 0.
    Returns:
        x_{t-1}, same shape as xt.
    """
    t_batch = torch.full((xt.shape[0],), t, device=xt.device, dtype=torch.long)
    eps = model(xt, t_batch)
    beta, alpha_bar = betas[t], alpha_bars[t]
    mean = (xt - beta / (1 - alpha_bar).sqrt() * eps) / (1 - beta).sqrt()
    if t == 0:
        return mean
    return mean + beta * noise
