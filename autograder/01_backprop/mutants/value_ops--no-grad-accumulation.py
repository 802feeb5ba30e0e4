class Value:
    """A node of a computation graph: an array, its gradient, and how it was made.

    data: float64 NumPy array (shape () for a scalar).
    grad: d(output)/d(this node), same shape as data; filled in by backward().
    Every operation returns a new Value that remembers its parents and sets
    `_backward`, which adds this node's share of the gradient to its parents.
    """

    def __init__(self, data, parents=(), op="", name=""):
        self.data = np.asarray(data, dtype=np.float64)
        self.grad = np.zeros_like(self.data)
        self._parents = tuple(parents)
        self._op = op
        self.name = name
        self._backward = lambda: None  # a leaf passes nothing on

    @property
    def shape(self):
        return self.data.shape

    def __repr__(self):
        label = f"{self.name!r}, " if self.name else ""
        return f"Value({label}op={self._op or 'input'!r}, shape={self.shape})"

    # ---- elementwise operations (with broadcasting) ----
    def __add__(self, other):
        other = as_value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward():
            self.grad = unbroadcast(out.grad, self.shape)
            other.grad = unbroadcast(out.grad, other.shape)

        out._backward = _backward
        return out

    def __mul__(self, other):
        other = as_value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward():
            self.grad = unbroadcast(other.data * out.grad, self.shape)
            other.grad = unbroadcast(self.data * out.grad, other.shape)

        out._backward = _backward
        return out

    def __pow__(self, exponent):
        assert isinstance(exponent, (int, float)), "only a constant exponent is supported"
        out = Value(self.data**exponent, (self,), f"**{exponent}")

        def _backward():
            self.grad = exponent * self.data ** (exponent - 1) * out.grad

        out._backward = _backward
        return out

    def exp(self):
        out = Value(np.exp(self.data), (self,), "exp")

        def _backward():
            self.grad = out.data * out.grad

        out._backward = _backward
        return out

    def log(self):
        out = Value(np.log(self.data), (self,), "log")

        def _backward():
            self.grad = out.grad / self.data

        out._backward = _backward
        return out

    def tanh(self):
        out = Value(np.tanh(self.data), (self,), "tanh")

        def _backward():
            self.grad = (1.0 - out.data**2) * out.grad

        out._backward = _backward
        return out

    def relu(self):
        out = Value(np.maximum(self.data, 0.0), (self,), "relu")

        def _backward():
            self.grad = (self.data > 0) * out.grad

        out._backward = _backward
        return out

    # ---- reductions and matrix product ----
    def sum(self, axis=None, keepdims=False):
        """Sum over `axis` (None: all elements), like np.sum."""
        out = Value(self.data.sum(axis=axis, keepdims=keepdims), (self,), "sum")

        def _backward():
            # Hint: without keepdims the summed axes are gone from out.grad;
            # np.expand_dims puts them back, then broadcasting copies the gradient.
            grad = out.grad
            if axis is not None and not keepdims:
                grad = np.expand_dims(grad, axis)
            self.grad = np.broadcast_to(grad, self.shape)

        out._backward = _backward
        return out

    def __matmul__(self, other):
        """Matrix product of two 2-D Values: (n, k) @ (k, m) -> (n, m)."""
        other = as_value(other)
        out = Value(self.data @ other.data, (self, other), "@")

        def _backward():
            self.grad = out.grad @ other.data.T
            other.grad = self.data.T @ out.grad

        out._backward = _backward
        return out

    # ---- built from the operations above: nothing to write ----
    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        return self + (-as_value(other))

    def __truediv__(self, other):
        return self * as_value(other) ** -1

    def mean(self, axis=None, keepdims=False):
        axes = range(self.data.ndim) if axis is None else np.atleast_1d(axis)
        count = int(np.prod([self.shape[a] for a in axes]))
        return self.sum(axis=axis, keepdims=keepdims) * (1.0 / count)

    # A number on the left (2 * v, 1 - v, 1 / v) lands here.
    def __radd__(self, other):
        return as_value(other) + self

    def __rmul__(self, other):
        return as_value(other) * self

    def __rsub__(self, other):
        return as_value(other) - self

    def __rtruediv__(self, other):
        return as_value(other) / self


def as_value(x):
    """A Value stays itself; a number or array becomes a constant leaf."""
    return x if isinstance(x, Value) else Value(x)
