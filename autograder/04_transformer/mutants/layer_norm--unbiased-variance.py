class LayerNorm(nn.Module):
    """Layer normalization over the last dimension, with learned weight (gamma) and bias (beta)."""

    def __init__(self, d_model, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))

    def forward(self, x):
        """x: (..., d_model) -> same shape, each vector normalised over its d_model features."""
        mean = x.mean(dim=-1, keepdim=True)
        variance = x.var(dim=-1, keepdim=True, unbiased=True)
        return (x - mean) / torch.sqrt(variance + self.eps) * self.weight + self.bias
