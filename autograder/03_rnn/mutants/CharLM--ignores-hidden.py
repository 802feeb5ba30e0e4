class CharLM(nn.Module):
    """Embedding -> LSTM -> linear head, a character-level language model."""

    def __init__(self, vocab_size, embed_dim=32, hidden_size=128, num_layers=1, dropout=0.0):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(
            embed_dim, hidden_size, num_layers=num_layers, batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, idx, hidden=None):
        """idx: (N, T) ids; hidden: None or the LSTM's (h, c). Returns logits (N, T, V), new (h, c)."""
        logits = None
        out, hidden = self.lstm(self.embedding(idx))
        logits = self.head(out)
        return logits, hidden
