@torch.no_grad()
def generate_cached(model, idx, max_new_tokens, temperature=1.0, top_k=None):
    """Like generate, but with one KVCache per block: the first step runs the whole prompt,
    every later step only the token sampled last. The result must fit in model.block_size."""
    if idx.size(1) + max_new_tokens > model.block_size:
        raise ValueError(f"{idx.size(1)} + {max_new_tokens} tokens do not fit in block_size={model.block_size}")
    caches = [KVCache() for _ in model.blocks]
    new_tokens = idx
    for _ in range(max_new_tokens):
        caches = [KVCache() for _ in model.blocks]
        logits, _ = model(idx, kv_caches=caches)
        new_tokens = sample_next_token(logits[:, -1, :], temperature, top_k)
        idx = torch.cat([idx, new_tokens], dim=1)
    return idx
