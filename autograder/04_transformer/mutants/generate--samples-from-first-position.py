@torch.no_grad()
def generate(model, idx, max_new_tokens, temperature=1.0, top_k=None):
    """Extend idx (B, T) by max_new_tokens sampled tokens; returns (B, T + max_new_tokens).

    Every step runs the model on the last model.block_size tokens (at most) and samples the next
    token from the logits of the last position.
    """
    for _ in range(max_new_tokens):
        logits, _ = model(idx[:, -model.block_size:])
        next_token = sample_next_token(logits[:, 0, :], temperature, top_k)
        idx = torch.cat([idx, next_token], dim=1)
    return idx
