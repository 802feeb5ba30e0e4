def standardize(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Column-wise standardization of an (n_samples, n_features) tensor."""
    mean = x.mean(dim=1, keepdim=True)
    std = x.std(dim=1, correction=0, keepdim=True)
    return (x - mean) / (std + eps)
