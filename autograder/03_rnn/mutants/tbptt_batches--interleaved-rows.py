def tbptt_batches(data, batch_size, seq_len):
    """Cut a 1-D tensor of token ids into batches for truncated BPTT.

    Args:
        data: (M,) token ids.
        batch_size: number of parallel rows B.
        seq_len: number of time steps per batch.

    Returns:
        A list of (inputs, targets) pairs, each (B, seq_len) (the last pair may be shorter
        in time, (B, L % seq_len)), where with L = (M - 1) // B, row r of the inputs
        stream is data[r * L : (r + 1) * L] and targets[:, t] is the token after inputs[:, t].
    """
    batches = []
    L = (len(data) - 1) // batch_size
    inputs = data[: batch_size * L].view(L, batch_size).T
    targets = data[1 : batch_size * L + 1].view(L, batch_size).T
    for start in range(0, L, seq_len):
        batches.append((inputs[:, start : start + seq_len], targets[:, start : start + seq_len]))
    return batches
