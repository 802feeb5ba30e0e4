def reparameterize(mu, logvar):
    """Sample z ~ N(mu, exp(logvar)) as a differentiable function of mu and logvar.

    Args:
        mu, logvar: tensors of the same shape, e.g. (batch, latent_dim).
    Returns:
        z, same shape: mu + sigma * eps with eps ~ N(0, I) (a fresh draw on every call).
    """
    std = torch.exp(logvar)
    return mu + std * torch.randn_like(std)
