class VAE(nn.Module):
    def __init__(self, latent_dim=16, hidden_dim=400):
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder_body = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, hidden_dim), nn.ReLU())
        self.to_mu = nn.Linear(hidden_dim, latent_dim)
        self.to_logvar = nn.Linear(hidden_dim, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden_dim), nn.ReLU(),
            nn.Linear(hidden_dim, 28 * 28), nn.Unflatten(1, (1, 28, 28)),
        )

    def encode(self, x):
        """(batch, 1, 28, 28) images -> mu, logvar, each (batch, latent_dim)."""
        hidden = self.encoder_body(x)
        return self.to_mu(hidden), self.to_logvar(hidden)

    def decode(self, z):
        """(batch, latent_dim) -> (batch, 1, 28, 28) logits of the pixels."""
        return self.decoder(z)

    def forward(self, x):
        """-> (logits, mu, logvar); z is sampled while training, z = mu in eval mode."""
        mu, logvar = self.encode(x)
        z = mu
        return self.decode(z), mu, logvar
