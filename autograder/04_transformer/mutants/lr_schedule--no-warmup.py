def lr_at(step, max_lr, min_lr, warmup_steps, total_steps):
    """The learning rate for optimizer step `step` (counted from 0), following the formula above."""
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + math.cos(math.pi * progress))
