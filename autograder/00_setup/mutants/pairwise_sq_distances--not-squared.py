def pairwise_sq_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(n, d) and (m, d) -> (n, m) squared Euclidean distances."""
    diff = a[:, None, :] - b[None, :, :]
    return (diff ** 2).sum(dim=-1).sqrt()
