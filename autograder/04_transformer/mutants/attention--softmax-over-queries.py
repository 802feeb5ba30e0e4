def scaled_dot_product_attention(q, k, v, mask=None, dropout_p=0.0):
    """softmax(q k^T / sqrt(d_k)) v with an optional boolean mask.

    q: (..., L_q, d_k); k: (..., L_k, d_k); v: (..., L_k, d_v).
    mask: bool, broadcastable to (..., L_q, L_k); True = the query may attend to the key.
    dropout_p: probability of zeroing an attention weight (pass 0.0 when evaluating).
    Returns (out, weights): out (..., L_q, d_v), weights (..., L_q, L_k) before dropout.
    Each row of weights sums to 1, except a fully masked row: zero weights, zero output.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
        # softmax of a row of -inf is 0/0 = NaN: give such rows finite scores, zero them after
        has_key = mask.any(dim=-1, keepdim=True)
        scores = scores.masked_fill(~has_key, 0.0)
    weights = torch.softmax(scores, dim=-2)
    if mask is not None:
        weights = weights.masked_fill(~has_key, 0.0)
    dropped = F.dropout(weights, p=dropout_p) if dropout_p > 0 else weights
    return dropped @ v, weights
