def next_char_probs(logits, temperature=1.0, top_k=None):
    """Sampling distribution over the next character.

    Args:
        logits: (..., V) unnormalised scores.
        temperature: > 0; the logits are divided by it.
        top_k: None (keep all) or an int k >= 1: keep the k largest, zero the rest.

    Returns:
        probabilities (..., V), summing to 1 over the last dimension.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    scaled = logits / temperature
    if top_k is not None and top_k < scaled.shape[-1]:
        kth_largest = torch.topk(scaled, top_k, dim=-1).values[..., -1:]
        scaled = scaled.masked_fill(scaled < kth_largest, float("-inf"))
    return torch.softmax(logits / temperature, dim=-1) * torch.isfinite(scaled)
