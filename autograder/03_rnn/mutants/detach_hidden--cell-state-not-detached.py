def detach_hidden(hidden):
    """The same state, cut from its computation graph.

    Args:
        hidden: None, a tensor, or a tuple of tensors (an LSTM's (h, c)).

    Returns:
        None, a tensor, or a tuple of the same length: the same values, no grad_fn,
        requires_grad False.
    """
    if hidden is None:
        return None
    if isinstance(hidden, torch.Tensor):
        return hidden.detach()
    return (hidden[0].detach(),) + tuple(hidden[1:])
