def backward(self):
    """Fill `.grad` of every node `self` depends on with d(self)/d(node).

    For a non-scalar `self` this is the gradient of self.sum(), as in PyTorch's
    `out.backward(torch.ones_like(out))`.
    """
    self.grad = np.ones_like(self.data)

    def propagate(node):  # depth first, each node as soon as it is reached
        node._backward()
        for parent in node._parents:
            propagate(parent)

    propagate(self)

Value.backward = backward
