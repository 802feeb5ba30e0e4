def linear_betas(T, beta_start=1e-4, beta_end=0.02):
    """beta_1 ... beta_T evenly spaced from beta_start to beta_end: float64 tensor (T,)."""
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)


def cosine_betas(T, s=0.008, max_beta=0.999):
    """The cosine schedule's beta_1 ... beta_T: float64 tensor (T,)."""
    steps = torch.arange(T + 1, dtype=torch.float64) - 1  # t = -1, 0, ..., T - 1
    f = torch.cos((steps.clamp(min=0) / T + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta)


def alpha_bars_from_betas(betas):
    """Cumulative products: entry i is prod_{s <= i} (1 - betas[s]), i.e. alpha-bar at step i + 1."""
    return torch.cumprod(1 - betas, dim=0)
