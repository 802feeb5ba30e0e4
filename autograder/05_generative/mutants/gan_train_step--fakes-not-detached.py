def gan_train_step(generator, discriminator, g_optimizer, d_optimizer, real, z):
    """One discriminator step, then one generator step, on the same noise z.

    Args:
        real: (batch, 1, 28, 28) real images in [-1, 1].
        z: (batch_z, z_dim) noise for the fakes.
    Returns:
        (d_loss, g_loss) as Python floats.
    """
    fake = generator(z)
    d_optimizer.zero_grad()
    g_optimizer.zero_grad()
    d_loss = discriminator_loss(discriminator(real), discriminator(fake))
    d_loss.backward()
    d_optimizer.step()

    g_loss = generator_loss(discriminator(fake))
    g_loss.backward()
    g_optimizer.step()
    return d_loss.item(), g_loss.item()
