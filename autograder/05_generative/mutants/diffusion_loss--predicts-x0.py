def diffusion_loss(model, x0, alpha_bars):
    """The noise-prediction loss L_simple for one batch (a scalar)."""
    t = torch.randint(0, len(alpha_bars), (x0.shape[0],), device=x0.device)
    noise = torch.randn_like(x0)
    return F.mse_loss(model(q_sample(x0, t, noise, alpha_bars), t), x0)
