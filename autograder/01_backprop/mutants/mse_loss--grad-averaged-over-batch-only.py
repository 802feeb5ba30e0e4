def mse_loss(pred, target):
    """Mean squared error over all elements (as F.mse_loss), and its gradient.

    pred, target: arrays of the same shape.
    Returns loss (a float) and dpred (shaped like pred) = d loss / d pred.
    """
    diff = pred - target
    loss = np.mean(diff**2)
    dpred = 2.0 * diff / diff.shape[0]
    return float(loss), dpred
