class KVCache:
    """The keys and values one attention layer has computed so far, each (B, n_heads, length, head_dim)."""

    def __init__(self):
        self.keys = None
        self.values = None

    @property
    def length(self):
        """The number of cached positions (0 when empty)."""
        return 0 if self.keys is None else self.keys.size(-2)

    def update(self, k, v):
        """Append the new positions' keys and values, (B, n_heads, T_new, head_dim) each;
        return all cached keys and values, (B, n_heads, length, head_dim) each."""
        self.keys, self.values = k, v
        return self.keys, self.values
