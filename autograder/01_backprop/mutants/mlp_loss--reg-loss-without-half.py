def mlp_loss(params, X, y=None, reg=0.0):
    """Scores, or loss and gradients, of an MLP: (affine -> relu) x (L-1) -> affine -> softmax CE.

    params: dict W1 (D, H1), b1 (H1,), ..., WL (H_{L-1}, C), bL (C,).
    X: (N, D) inputs; y: (N,) integer labels, or None.
    reg: L2 strength; the loss gains 0.5 * reg * (sum of every W squared), biases excluded.
    Returns scores (N, C) when y is None, else (loss, grads), where grads[name] is
    shaped like params[name].
    """
    num_layers = len(params) // 2
    caches = []  # one (affine_cache, relu_cache or None) per layer, in order
    out = X
    # Forward pass: leave the scores in `out` and fill `caches`.
    for layer in range(1, num_layers + 1):
        out, affine_cache = affine_forward(out, params[f"W{layer}"], params[f"b{layer}"])
        relu_cache = None
        if layer < num_layers:  # no ReLU after the last layer: scores can be negative
            out, relu_cache = relu_forward(out)
        caches.append((affine_cache, relu_cache))
    scores = out
    if y is None:
        return scores

    grads = {}
    # Loss (weight decay included) and backward pass: set `loss` and fill `grads`.
    loss, dout = softmax_cross_entropy(scores, y)
    for layer in range(num_layers, 0, -1):
        affine_cache, relu_cache = caches[layer - 1]
        if relu_cache is not None:
            dout = relu_backward(dout, relu_cache)
        dout, dW, db = affine_backward(dout, affine_cache)
        W = params[f"W{layer}"]
        loss += reg * float(np.sum(W * W))
        grads[f"W{layer}"] = dW + reg * W
        grads[f"b{layer}"] = db
    return loss, grads
