def clip_grad_norm(parameters, max_norm, eps=1e-6):
    """Clip the gradients of `parameters` in place to a global norm of at most `max_norm`.

    Args:
        parameters: an iterable of tensors (e.g. model.parameters()); skip those whose .grad is None.
        max_norm: the largest allowed global norm.
        eps: added to the norm before dividing, so a zero gradient is safe.

    Returns:
        The global norm of the gradients *before* clipping, as a Python float.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    total_norm = math.sqrt(sum(float((g.detach().double() ** 2).sum()) for g in grads))
    scale = max_norm / (total_norm + eps)
    for g in grads:
        g.mul_(scale)
    return total_norm
