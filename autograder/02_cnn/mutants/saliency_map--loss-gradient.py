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
    class_scores = F.cross_entropy(scores, labels)
    (grad,) = torch.autograd.grad(class_scores, images)
    return grad.abs().amax(dim=1)
