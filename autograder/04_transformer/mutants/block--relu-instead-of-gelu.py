class Block(nn.Module):
    """Pre-norm transformer block: x + attention(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, d_model, n_heads, dropout=0.0):
        super().__init__()
        self.ln1 = LayerNorm(d_model)
        self.attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
        self.ln2 = LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.ReLU(), nn.Linear(4 * d_model, d_model))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, mask=None, kv_cache=None):
        """x: (B, L, d_model); mask: bool, broadcastable to (B, n_heads, L, L_k). Returns (B, L, d_model)."""
        h = self.ln1(x)
        x = x + self.dropout(self.attn(h, h, h, mask=mask, kv_cache=kv_cache))
        x = x + self.dropout(self.mlp(self.ln2(x)))
        return x
