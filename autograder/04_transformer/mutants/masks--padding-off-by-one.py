def causal_mask(q_len, k_len=None, device=None):
    """Boolean mask of shape (q_len, k_len): True where query i may attend to key j.

    The queries are the last q_len of the k_len positions (k_len defaults to q_len), so
    query i sits at position i + (k_len - q_len) and may see every key at or before it.
    With q_len == k_len this is the usual lower-triangular mask.
    """
    k_len = q_len if k_len is None else k_len
    query_position = torch.arange(q_len, device=device)[:, None] + (k_len - q_len)
    key_position = torch.arange(k_len, device=device)[None, :]
    return key_position <= query_position


def padding_mask(lengths, max_len):
    """Boolean mask of shape (batch, max_len): True at the real tokens, False at the padding.

    lengths: int64 tensor (batch,), the true length of each sequence (at most max_len).
    The mask lives on the device of `lengths`.
    """
    positions = torch.arange(max_len, device=lengths.device)
    return positions[None, :] <= lengths[:, None]
