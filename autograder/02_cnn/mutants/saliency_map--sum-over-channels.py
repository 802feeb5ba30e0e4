def saliency_map(model, images, labels):
    """Saliency maps of a batch.

    Args:
        model: a classifier returning scores (N, num_classes).
        images: (N, C, H, W), on the model's device.
        labels: (N,) the class whose score to explain, per image.

    Returns:
        (N, H, W) tensor: max over channels of |d score[n, labels[n]] / d images[n]|.
    """
    model.eval()
    images = images.detach().clone().requires_grad_(True)
    scores = model(images)
    class_scores = scores.gather(1, labels.view(-1, 1)).sum()
    (grad,) = torch.autograd.grad(class_scores, images)
    return grad.abs().sum(dim=1)
