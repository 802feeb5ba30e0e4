class MultiHeadAttention(nn.Module):
    """Multi-head attention with separate query, key, value and output projections."""

    def __init__(self, d_model, n_heads, dropout=0.0, batch_first=True):
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, d_model // n_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.last_attention = None  # (B, n_heads, L_q, L_k) weights of the last call, for plots

    def split_heads(self, x):
        """(B, L, d_model) -> (B, n_heads, L, head_dim); head i holds features i*head_dim:(i+1)*head_dim."""
        batch, length, _ = x.shape
        return x.view(batch, length, self.n_heads, self.head_dim).transpose(1, 2)

    def merge_heads(self, x):
        """(B, n_heads, L, head_dim) -> (B, L, d_model): the inverse of split_heads."""
        batch, _, length, _ = x.shape
        return x.reshape(batch, length, self.d_model)

    def forward(self, query, key, value, mask=None, kv_cache=None):
        """query: (B, L_q, d_model); key, value: (B, L_k, d_model); (L, B, d_model) if not batch_first.

        mask: bool, broadcastable to (B, n_heads, L_q, L_k); True = may attend.
        kv_cache: None, or a KVCache (part 6) that stores this layer's keys and values.
        Returns (B, L_q, d_model) ((L_q, B, d_model) if not batch_first) and keeps the
        attention weights (B, n_heads, L_q, L_k) in self.last_attention (detached).
        """
        if not self.batch_first:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        q = self.split_heads(self.q_proj(query))
        k = self.split_heads(self.k_proj(key))
        v = self.split_heads(self.v_proj(value))
        if kv_cache is not None:
            k, v = kv_cache.update(k, v)
        dropout_p = self.dropout if self.training else 0.0
        out, weights = scaled_dot_product_attention(q, k, v, mask=mask, dropout_p=dropout_p)
        self.last_attention = weights.detach()
        out = self.out_proj(self.merge_heads(out))
        return out if self.batch_first else out.transpose(0, 1)
