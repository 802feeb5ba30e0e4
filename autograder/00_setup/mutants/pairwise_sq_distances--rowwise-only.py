def pairwise_sq_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(n, d) and (m, d) -> (n, m) squared Euclidean distances."""
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(dim=1)
