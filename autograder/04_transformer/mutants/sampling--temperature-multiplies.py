def sample_next_token(logits, temperature=1.0, top_k=None):
    """logits: (B, vocab_size) -> (B, 1) int64 token ids drawn from softmax(logits / temperature),
    among the top_k most likely tokens only when top_k is given (torch.topk, torch.multinomial)."""
    logits = logits * temperature
    if top_k is not None:
        kth_best = torch.topk(logits, min(top_k, logits.size(-1)), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth_best, float("-inf"))
    probabilities = torch.softmax(logits, dim=-1)
    return torch.multinomial(probabilities, num_samples=1)
