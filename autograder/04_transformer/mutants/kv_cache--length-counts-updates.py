class KVCache:
    """The keys and values one attention layer has computed so far, each (B, n_heads, length, head_dim)."""

    def __init__(self):
        self.keys = None
        self.values = None
        self.updates = 0

    @property
    def length(self):
        """The number of cached positions (0 when empty)."""
        return self.updates

    def update(self, k, v):
        """Append the new positions' keys and values, (B, n_heads, T_new, head_dim) each;
        return all cached keys and values, (B, n_heads, length, head_dim) each."""
        self.updates += 1
        if self.keys is None:
            self.keys, self.values = k, v
        else:
            self.keys = torch.cat([self.keys, k], dim=-2)
            self.values = torch.cat([self.values, v], dim=-2)
        return self.keys, self.values
