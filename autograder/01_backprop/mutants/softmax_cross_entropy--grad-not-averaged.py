def softmax_cross_entropy(scores, y):
    """Mean softmax cross-entropy of scores against integer labels, and its gradient.

    scores: (N, C) logits; y: (N,) integer labels in [0, C).
    Returns loss (a float) and dscores (N, C) = d loss / d scores.
    Numerically stable: must work for logits of any size.
    """
    num_examples = scores.shape[0]
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(num_examples)
    loss = -log_probs[rows, y].mean()
    dscores = np.exp(log_probs)
    dscores[rows, y] -= 1.0
    return float(loss), dscores
