def sample_quality(classifier, images):
    """Confidence and class spread of a batch of images, judged by a classifier.

    Args:
        classifier: a module mapping images (N, 1, 28, 28) in [0, 1] to logits (N, 10).
        images: (N, 1, 28, 28) tensor in [0, 1].
    Returns:
        (confidence, spread): the mean of max_y p(y|x_i), and exp of the entropy (in nats)
        of the mean predicted distribution; both Python floats.
    """
    with torch.no_grad():
        probs = F.softmax(classifier(images), dim=-1)
    confidence = probs.max(dim=-1).values.mean()
    entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum(dim=-1).mean()
    return confidence.item(), entropy.exp().item()
