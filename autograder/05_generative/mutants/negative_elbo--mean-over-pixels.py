def negative_elbo(x, logits, mu, logvar):
    """The negative ELBO of a Bernoulli-decoder VAE, in nats per image.

    Args:
        x: (batch, 1, 28, 28) images in [0, 1] (the targets).
        logits: (batch, 1, 28, 28) decoder logits of p(x | z).
        mu, logvar: (batch, latent_dim) encoder outputs.
    Returns:
        (loss, reconstruction, kl): three scalars, each averaged over the batch;
        reconstruction is the binary cross-entropy summed over pixels, loss = reconstruction + kl.
    """
    reconstruction = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).mean(1)
    kl = kl_to_standard_normal(mu, logvar)
    return (reconstruction + kl).mean(), reconstruction.mean(), kl.mean()
