def kl_to_standard_normal(mu, logvar):
    """KL( N(mu, diag(exp(logvar))) || N(0, I) ) per example, in closed form.

    Args:
        mu, logvar: (batch, latent_dim).
    Returns:
        (batch,): the KL of each example, summed over the latent dimensions.
    """
    return -0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=-1)
