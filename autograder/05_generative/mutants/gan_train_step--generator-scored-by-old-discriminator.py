def gan_train_step(generator, discriminator, g_optimizer, d_optimizer, real, z):
    """One discriminator step, then one generator step, on the same noise z.

    Args:
        real: (batch, 1, 28, 28) real images in [-1, 1].
        z: (batch_z, z_dim) noise for the fakes.
    Returns:
        (d_loss, g_loss) as Python floats.
    """
    fake = generator(z)
    old_fake_logits = discriminator(fake)
    d_optimizer.zero_grad()
    d_loss = discriminator_loss(discriminator(real), discriminator(fake.detach()))
    d_loss.backward()
    d_optimizer.step()

    g_optimizer.zero_grad()
    g_loss = generator_loss(old_fake_logits)
    g_loss.backward()
    g_optimizer.step()
    return d_loss.item(), g_loss.item()
