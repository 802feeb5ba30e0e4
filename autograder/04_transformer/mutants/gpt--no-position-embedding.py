class GPT(nn.Module):
    """A decoder-only transformer language model."""

    def __init__(self, vocab_size, block_size, d_model=128, n_heads=4, n_layers=4, dropout=0.1):
        super().__init__()
        self.block_size = block_size  # the longest sequence the position embedding knows
        self.token_embedding = nn.Embedding(vocab_size, d_model)
        self.position_embedding = nn.Embedding(block_size, d_model)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, dropout) for _ in range(n_layers))
        self.ln_f = LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module):
        # Small initial weights (GPT-2's 0.02) keep the first logits near 0: loss ~ ln(vocab_size).
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx, targets=None, kv_caches=None):
        """idx: (B, T) token ids; targets: (B, T) next-token ids, or None.

        kv_caches: None, or one KVCache per block (part 6); then idx holds only the new tokens,
        whose positions continue after the kv_caches[0].length cached ones.
        Returns (logits (B, T, vocab_size), loss): loss is the mean cross-entropy, None without targets.
        """
        _, length = idx.shape
        start = 0 if kv_caches is None else kv_caches[0].length
        if start + length > self.block_size:
            raise ValueError(f"{start + length} positions, but block_size is {self.block_size}")
        positions = torch.arange(start, start + length, device=idx.device)
        x = self.dropout(self.token_embedding(idx))
        mask = causal_mask(length, start + length, device=idx.device)
        for i, block in enumerate(self.blocks):
            x = block(x, mask=mask, kv_cache=None if kv_caches is None else kv_caches[i])
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss
