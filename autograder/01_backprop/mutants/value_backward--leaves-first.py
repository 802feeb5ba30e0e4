def backward(self):
    """Fill `.grad` of every node `self` depends on with d(self)/d(node).

    For a non-scalar `self` this is the gradient of self.sum(), as in PyTorch's
    `out.backward(torch.ones_like(out))`.
    """
    order, visited = [], set()

    def visit(node):
        if node in visited:
            return
        visited.add(node)
        for parent in node._parents:
            visit(parent)
        order.append(node)  # after all its parents: a topological order

    visit(self)
    self.grad = np.ones_like(self.data)
    for node in order:
        node._backward()


Value.backward = backward
