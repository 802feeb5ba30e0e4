class DecoderBlock(nn.Module):
    """Pre-norm decoder block: causal self-attention, cross-attention to the memory, MLP."""

    def __init__(self, d_model, n_heads, dropout=0.0):
        super().__init__()
        self.ln1 = LayerNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
        self.ln2 = LayerNorm(d_model)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
        self.ln3 = LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, memory, self_mask=None, memory_mask=None):
        """x: (B, L_t, d_model) target side; memory: (B, L_s, d_model), the encoder's output.

        self_mask: bool, broadcastable to (B, n_heads, L_t, L_t) (the causal mask);
        memory_mask: bool, broadcastable to (B, n_heads, L_t, L_s) (the source padding).
        Returns (B, L_t, d_model).
        """
        h = self.ln1(x)
        x = x + self.dropout(self.self_attn(h, h, h, mask=self_mask))
        h = self.ln2(x)
        x = x + self.dropout(self.cross_attn(h, self.ln2(memory), self.ln2(memory), mask=memory_mask))
        x = x + self.dropout(self.mlp(self.ln3(x)))
        return x
