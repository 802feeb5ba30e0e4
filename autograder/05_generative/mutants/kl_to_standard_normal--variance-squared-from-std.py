def kl_to_standard_normal(mu, logvar):
    """KL( N(mu, diag(exp(logvar))) || N(0, I) ) per example, in closed form.

    Args:
        mu, logvar: (batch, latent_dim).
    Returns:
        (batch,): the KL of each example, summed over the latent dimensions.
    """
    std = torch.exp(0.5 * logvar)
    return 0.5 * (mu.pow(2) + std**2 - 1.0 - torch.log(std**2)).sum(dim=-1)
