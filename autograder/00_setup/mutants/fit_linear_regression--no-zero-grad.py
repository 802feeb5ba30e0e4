def fit_linear_regression(X: torch.Tensor, y: torch.Tensor, epochs: int = 100, lr: float = 0.1):
    """Full-batch SGD on the MSE; returns (model, list of per-step losses)."""
    model = nn.Linear(X.shape[1], 1).to(X.device)
    losses = []
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(epochs):
        loss = loss_fn(model(X), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return model, losses
