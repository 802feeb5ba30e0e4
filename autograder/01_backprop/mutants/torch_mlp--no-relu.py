class TorchMLP(nn.Module):
    """(Linear -> ReLU) x (L-1) -> Linear, for layer_sizes [D, H1, ..., C]."""

    def __init__(self, layer_sizes):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Linear(fan_in, fan_out) for fan_in, fan_out in zip(layer_sizes[:-1], layer_sizes[1:])
        )

    def forward(self, x):
        x = x.flatten(1)
        for layer in self.layers[:-1]:
            x = layer(x)
        return self.layers[-1](x)


def torch_mlp_loss(model, x, y, reg=0.0):
    """Mean cross-entropy of model(x) against y plus 0.5 * reg * sum of squared Linear weights."""
    loss = F.cross_entropy(model(x), y)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            loss = loss + 0.5 * reg * (module.weight**2).sum()
    return loss
