def f(x: torch.Tensor) -> torch.Tensor:
    return (x ** 2 * torch.sin(x)).sum()


def grad_f(x: torch.Tensor) -> torch.Tensor:
    """The gradient of f at x, from the formula above; same shape as x."""
    return 2 * x * torch.sin(x) - x ** 2 * torch.cos(x)
