def discriminator_loss(real_logits, fake_logits):
    """-E[log D(x)] - E[log(1 - D(G(z)))] from logits; real and fake batches may differ in size."""
    real_term = F.binary_cross_entropy_with_logits(real_logits, torch.zeros_like(real_logits))
    fake_term = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    return real_term + fake_term


def generator_loss(fake_logits):
    """The non-saturating generator loss -E[log D(G(z))] from the discriminator's logits."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
