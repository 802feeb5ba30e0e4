# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Backpropagation from scratch, checked against PyTorch
#
# **Expected work:** about 8 hours. **GPU:** not needed (Parts 1 to 4 are NumPy, which runs on
# the CPU even in Colab; a GPU only shortens Part 5's small PyTorch training, by well under a minute).
#
# Every deep-learning library computes gradients with one algorithm:
# **backpropagation**, the chain rule applied to a computation graph from the
# output back to the inputs. In this assignment you write it yourself, twice:
#
# 1. a tiny **autograd engine** (a `Value` that records the operations applied to
#    it, and a `backward()` that walks the graph), compared with `torch.autograd`;
# 2. **layers** as forward/backward pairs in NumPy, each checked against a
#    *numerical* gradient;
# 3. an **MLP** with L2 weight decay, the update rules **SGD, momentum, Adam,
#    RMSProp and AdamW** (decoupled weight decay, told apart from L2) and a
#    **cosine learning-rate schedule**, each checked against `torch.optim`;
# 4. training that MLP on **MNIST**: four update rules side by side, then
#    loss curves and the digits it gets wrong;
# 5. the same MLP in **PyTorch**, and a proof that your gradients equal PyTorch's.
#
# **How grading works.** Fill in the cells marked `YOUR CODE HERE`. The cells
# with `assert`s are tests; the ones you see are there to help you, the grader
# adds hidden tests of the same functions (edge cases: a batch of one,
# broadcasting, large logits, a node used twice). A test cell gives its points
# when it runs to the end without an error, and prints one line when it passes.
# Two written questions are graded by hand. Run the notebook top to bottom before
# you hand it in.
#
# **Running time** (estimates, not measured on your machine). The executed
# solution ran offline, on the small MNIST subset the data cell prints, where
# Run All takes a few minutes on a 2-core CPU and Part 4's MLP training prints
# its own time. With full MNIST (what Colab downloads, 15 times as many images)
# that training alone should take about 5 to 15 minutes, on a laptop CPU and in
# Colab alike, since NumPy runs on the CPU.

# %%
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import dlcourse
from dlcourse.checks import assert_close, assert_rel_error, assert_shape, assert_true
from dlcourse.gradcheck import numerical_gradient, rel_error
from dlcourse.plots import plot_history, show_images
from dlcourse.selfcheck import require_written

dlcourse.seed_everything(0)
device = dlcourse.get_device()
print("device:", device, "| grading run:", dlcourse.is_grading())

# %% [markdown]
# ## Part 1. A small autograd engine
#
# A computation is a graph: leaves are inputs, every other node is the result of
# one operation on its **parents**. For a final scalar $L$, each node $v$ wants
# $\partial L / \partial v$ (its `grad`). The chain rule says how to get it from
# the nodes that *use* $v$: if $c = f(a, b)$ then
#
# $$\frac{\partial L}{\partial a} \mathrel{+}= \frac{\partial L}{\partial c}\,\frac{\partial c}{\partial a}.$$
#
# Two things follow.
#
# * **Accumulate (`+=`), never assign.** A node used by two operations receives a
#   contribution from each; its gradient is their sum.
# * **Order matters.** A node may pass its gradient on only once it has received
#   *all* of it, i.e. after every node that uses it. A **topological order** of
#   the graph, walked backwards from $L$, guarantees that.
#
# Our `Value` holds a float64 NumPy array (a scalar is an array of shape `()`),
# so the same engine differentiates a whole MLP. NumPy **broadcasting** adds one
# subtlety: if `b` of shape `(3,)` was added to every row of `a` of shape `(4, 3)`,
# each element of `b` was *used 4 times*, so its gradient is the upstream gradient
# **summed** over the broadcast axis. `unbroadcast` below does exactly that; use it
# in the backward of every elementwise operation.

# %%
def unbroadcast(grad, shape):
    """Sum `grad` down to `shape`: the backward pass of NumPy broadcasting.

    grad: the upstream gradient, shaped like the broadcast result.
    shape: the shape of the operand before broadcasting.
    Returns an array of exactly `shape`.
    """
    # Broadcasting first prepends axes of size 1 to the shorter shape ...
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    # ... then stretches every axis of size 1 to the other operand's size.
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad


print(unbroadcast(np.ones((4, 3)), (3,)))    # each bias element was used 4 times
print(unbroadcast(np.ones((4, 3)), (4, 1)))  # each row value was used 3 times

# %% [markdown]
# ### Exercise 1.1: the operations
#
# Each operation below computes its result (given) and defines `_backward`, a
# closure that **adds** this node's contribution to its parents' `.grad`, using
# `out.grad` (the gradient of the final output with respect to `out`). Write the
# `_backward` of `+`, `*`, `**`, `exp`, `log`, `tanh`, `relu`, `sum` and `@`.
# Subtraction, negation, division and `mean` are built from those, so they come
# for free (and show up in the graph as the operations they are made of).
#
# | operation | local derivative |
# | --- | --- |
# | $c = a + b$ | $\partial c/\partial a = 1$, $\partial c/\partial b = 1$ |
# | $c = a\,b$ | $\partial c/\partial a = b$, $\partial c/\partial b = a$ |
# | $c = a^n$ ($n$ a constant) | $n\,a^{n-1}$ |
# | $c = e^a$ | $e^a = c$ |
# | $c = \log a$ | $1/a$ |
# | $c = \tanh a$ | $1 - c^2$ |
# | $c = \max(0, a)$ | $1$ where $a > 0$, else $0$ |
# | $c = \sum a$ | $1$ for every element (the gradient is copied back to every element summed) |
# | $C = A B$ (matrices) | $\partial L/\partial A = \frac{\partial L}{\partial C} B^\top$, $\partial L/\partial B = A^\top \frac{\partial L}{\partial C}$ |

# %% solution="value_ops"
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
            ### BEGIN SOLUTION
            self.grad += unbroadcast(out.grad, self.shape)
            other.grad += unbroadcast(out.grad, other.shape)
            ### END SOLUTION

        out._backward = _backward
        return out

    def __mul__(self, other):
        other = as_value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward():
            ### BEGIN SOLUTION
            self.grad += unbroadcast(other.data * out.grad, self.shape)
            other.grad += unbroadcast(self.data * out.grad, other.shape)
            ### END SOLUTION

        out._backward = _backward
        return out

    def __pow__(self, exponent):
        assert isinstance(exponent, (int, float)), "only a constant exponent is supported"
        out = Value(self.data**exponent, (self,), f"**{exponent}")

        def _backward():
            ### BEGIN SOLUTION
            self.grad += exponent * self.data ** (exponent - 1) * out.grad
            ### END SOLUTION

        out._backward = _backward
        return out

    def exp(self):
        out = Value(np.exp(self.data), (self,), "exp")

        def _backward():
            ### BEGIN SOLUTION
            self.grad += out.data * out.grad
            ### END SOLUTION

        out._backward = _backward
        return out

    def log(self):
        out = Value(np.log(self.data), (self,), "log")

        def _backward():
            ### BEGIN SOLUTION
            self.grad += out.grad / self.data
            ### END SOLUTION

        out._backward = _backward
        return out

    def tanh(self):
        out = Value(np.tanh(self.data), (self,), "tanh")

        def _backward():
            ### BEGIN SOLUTION
            self.grad += (1.0 - out.data**2) * out.grad
            ### END SOLUTION

        out._backward = _backward
        return out

    def relu(self):
        out = Value(np.maximum(self.data, 0.0), (self,), "relu")

        def _backward():
            ### BEGIN SOLUTION
            self.grad += (self.data > 0) * out.grad
            ### END SOLUTION

        out._backward = _backward
        return out

    # ---- reductions and matrix product ----
    def sum(self, axis=None, keepdims=False):
        """Sum over `axis` (None: all elements), like np.sum."""
        out = Value(self.data.sum(axis=axis, keepdims=keepdims), (self,), "sum")

        def _backward():
            # Hint: without keepdims the summed axes are gone from out.grad;
            # np.expand_dims puts them back, then broadcasting copies the gradient.
            ### BEGIN SOLUTION
            grad = out.grad
            if axis is not None and not keepdims:
                grad = np.expand_dims(grad, axis)
            self.grad += np.broadcast_to(grad, self.shape)
            ### END SOLUTION

        out._backward = _backward
        return out

    def __matmul__(self, other):
        """Matrix product of two 2-D Values: (n, k) @ (k, m) -> (n, m)."""
        other = as_value(other)
        out = Value(self.data @ other.data, (self, other), "@")

        def _backward():
            ### BEGIN SOLUTION
            self.grad += out.grad @ other.data.T
            other.grad += self.data.T @ out.grad
            ### END SOLUTION

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

# %% [markdown]
# ### Exercise 1.2: `backward()`
#
# Write `backward(self)`: build a topological order of every node `self`
# depends on (a depth-first search that appends a node after all its parents,
# visiting each node **once**), set `self.grad` to ones (the gradient of the
# output with respect to itself), then call every node's `_backward` in
# **reverse** topological order. The function is attached to `Value` after the
# cell, so `loss.backward()` works.
#
# `backward()` expects a freshly built graph whose grads are still zero (as in
# PyTorch, gradients would otherwise add up over several calls).

# %% solution="value_backward"
def backward(self):
    """Fill `.grad` of every node `self` depends on with d(self)/d(node).

    For a non-scalar `self` this is the gradient of self.sum(), as in PyTorch's
    `out.backward(torch.ones_like(out))`.
    """
    ### BEGIN SOLUTION
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
    for node in reversed(order):
        node._backward()
    ### END SOLUTION


Value.backward = backward

# %% [markdown]
# ### Looking at a graph
#
# `print_graph` prints the graph behind a value, output first, each node's
# parents indented below it. A node that appears a second time (it is used twice)
# is marked `(used again)`: that is a node whose gradient must be accumulated.

# %%
def print_graph(root, show_grad=True):
    """Print the computation graph that produced `root`, one node a line."""
    ids = {}

    def brief(array):
        return np.array2string(array, precision=4) if array.size <= 3 else f"array{array.shape}"

    def show(node, depth):
        seen = node in ids
        ids.setdefault(node, f"n{len(ids)}")
        text = f"{'    ' * depth}{ids[node]}: {node._op or 'input'}"
        text += f" {node.name}" if node.name else ""
        text += f"  data={brief(node.data)}"
        text += f"  grad={brief(node.grad)}" if show_grad else ""
        print(text + ("  (used again)" if seen else ""))
        if not seen:
            for parent in node._parents:
                show(parent, depth + 1)

    show(root, 0)

# %%
require_written(Value, backward)
x = Value(0.5, name="x")
w = Value(-1.5, name="w")
y = (x * w + x).tanh()  # x is used twice
y.backward()
print_graph(y)
print(f"dy/dx = {x.grad:.6f}   dy/dw = {w.grad:.6f}")

# %% [markdown]
# The same expression in PyTorch gives the same numbers:

# %%
x_t = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
w_t = torch.tensor(-1.5, dtype=torch.float64, requires_grad=True)
(x_t * w_t + x_t).tanh().backward()
print(f"dy/dx = {x_t.grad.item():.6f}   dy/dw = {w_t.grad.item():.6f}")

# %% [markdown]
# The tests run the same expression through your engine and through
# `torch.autograd` and compare every gradient. The test of Exercise 1.1 checks
# each operation alone: it sets `out.grad` to a random upstream gradient and
# calls `out._backward()` itself, so it does not need your `backward()`. The test
# of Exercise 1.2 (`compare_with_torch`) runs your `backward()` on graphs with
# shared nodes, on the operations built from others (`-`, `/`, `mean`) and on
# **random graphs** built from all the operations. You can call `compare_with_torch` on expressions of
# your own: the expression only uses operations both libraries have.

# %% tests="test_value_ops" points=4
def check_operation(operation, *arrays, name="operation"):
    """One operation of the engine against torch.autograd, for a random upstream gradient.

    The test calls the result's own `_backward()` once, so it grades the operations only:
    your `backward()` (Exercise 1.2) is not used here.
    """
    values = [Value(a) for a in arrays]
    out = operation(*values)
    upstream = np.array(rng.standard_normal(out.shape), dtype=np.float64)
    out.grad = upstream.copy()
    out._backward()
    tensors = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out_t = operation(*tensors)
    out_t.backward(torch.from_numpy(upstream))
    assert_close(out.data, out_t.detach().numpy(), name=f"{name}: output",
                 hint="the forward computations are given: did an edit change one of them?")
    for i, (v, t) in enumerate(zip(values, tensors)):
        assert_close(v.grad, t.grad.numpy(), name=f"{name}: grad of input {i}",
                     hint="_backward adds (+=) local derivative * out.grad (not ones: out.grad can be anything) "
                          "to each parent, summed over broadcast axes with unbroadcast")


rng = np.random.default_rng(0)
a, b = rng.uniform(0.5, 2.0, (3, 4)), rng.uniform(0.5, 2.0, (3, 4))
signed = rng.uniform(-2.0, 2.0, (3, 4))
left, right = rng.standard_normal((3, 5)), rng.standard_normal((5, 2))

check_operation(lambda p, q: p + q, a, b, name="a + b")
check_operation(lambda p, q: p * q, a, b, name="a * b")
check_operation(lambda p: p**3, a, name="a ** 3")
check_operation(lambda p: p**-0.5, a, name="a ** -0.5")
check_operation(lambda p: p.exp(), signed, name="exp")
check_operation(lambda p: p.log(), a, name="log")
check_operation(lambda p: p.tanh(), signed, name="tanh")
check_operation(lambda p: p.relu(), signed, name="relu")
check_operation(lambda p: p.sum(), signed, name="sum()")
check_operation(lambda p: p.sum(axis=1), signed, name="sum(axis=1)")
check_operation(lambda p, q: p @ q, left, right, name="a @ b")
# broadcasting: the smaller operand's grad is summed over the axes it was stretched along
check_operation(lambda p, q: p + q, a, rng.standard_normal(4), name="(3,4) + (4,)")
check_operation(lambda p, q: p * q, a, rng.standard_normal((3, 1)), name="(3,4) * (3,1)")
# a node used twice by one operation: both of its contributions must add up
check_operation(lambda p: p * p, signed, name="a * a")
print("Every operation matches torch.autograd, with broadcasting and a node used twice.")
### BEGIN HIDDEN TESTS
check_operation(lambda p, q: q + p, a, rng.standard_normal((1, 4)), name="(1,4) + (3,4)")
check_operation(lambda p, q: p * q, a, rng.uniform(1.0, 2.0, ()), name="(3,4) * scalar")
check_operation(lambda p: 2.0 * p, signed, name="number on the left")
# square matrices: a transposed matmul gradient has the right shape but the wrong values
square_a, square_b = rng.standard_normal((4, 4)), rng.standard_normal((4, 4))
check_operation(lambda p, q: p @ q, square_a, square_b, name="square @ square")
# a batch of one, and scalars
check_operation(lambda p, q: p @ q, rng.standard_normal((1, 5)), right, name="(1,5) @ (5,2)")
check_operation(lambda p, q: p * q, np.array(1.5), np.array(-0.5), name="scalars")
# a node used twice inside a single operation
check_operation(lambda p: p + p, signed, name="a + a")
check_operation(lambda p: p @ p, square_a, name="a @ a")
check_operation(lambda p: p.sum(axis=1, keepdims=True), signed, name="sum(axis=1, keepdims=True)")
check_operation(lambda p: p.sum(axis=(0, 1)), signed, name="sum(axis=(0, 1))")
check_operation(lambda p: p.sum(axis=0), rng.standard_normal((1, 3)), name="sum(axis=0) of one row")
### END HIDDEN TESTS

# %% tests="test_value_backward" points=4
def compare_with_torch(expression, *arrays, name="expression"):
    """Evaluate expression(*inputs) with Values and with float64 tensors; compare output and input grads."""
    values = [Value(a) for a in arrays]
    out = expression(*values)
    out.backward()
    tensors = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out_t = expression(*tensors)
    out_t.backward(torch.ones_like(out_t))
    assert_close(out.data, out_t.detach().numpy(), name=f"{name}: output",
                 hint="the forward computations are given: did an edit change one of them?")
    for i, (v, t) in enumerate(zip(values, tensors)):
        expected = t.grad.numpy() if t.grad is not None else np.zeros_like(v.data)  # None: input unused
        assert_close(v.grad, expected, name=f"{name}: grad of input {i}",
                     hint="each _backward adds (+=) local derivative * out.grad to its parents, summed over "
                          "broadcast axes (unbroadcast); backward() visits each node once, in reverse topological order")


def random_graph(seed, n_inputs=3, n_ops=14, shape=(2, 3)):
    """A random expression over the engine's operations, with inputs reused at random.

    Returns (expression, input_arrays); the expression works on Values and on tensors.
    """
    operations = [
        lambda p, q: p + q,
        lambda p, q: p * q,
        lambda p, q: p - q,
        lambda p, q: p / (q * q + 1.0),
        lambda p, q: (p * p + 1.0).log(),
        lambda p, q: p.tanh(),
        lambda p, q: p.tanh().exp(),
        lambda p, q: p.relu() * 0.5,
        lambda p, q: (0.5 * p - q) ** 2,
    ]
    rng = np.random.default_rng(seed)
    inputs = [rng.uniform(-1.5, 1.5, shape) for _ in range(n_inputs)]
    steps = [
        (rng.integers(len(operations)), rng.integers(n_inputs + k), rng.integers(n_inputs + k))
        for k in range(n_ops)
    ]

    def expression(*leaves):
        nodes = list(leaves)
        for op, i, j in steps:
            nodes.append(operations[op](nodes[i], nodes[j]))
        return (nodes[-1] * nodes[-2] + nodes[-3]).sum()

    return expression, inputs


# A diamond: x feeds two branches that meet again.
compare_with_torch(lambda x: (x * 2.0) * x.exp() + x * 2.0, np.array([0.3, -1.2]), name="diamond")
# A chain that reuses its input at every step.
def chain(x):
    y = x
    for _ in range(20):
        y = (y * 0.9).tanh() + x
    return y.sum()


compare_with_torch(chain, np.array([0.5, -0.4, 1.1]), name="chain reusing x")
# the operations built from others (several nodes each)
rng = np.random.default_rng(1)
a, b = rng.uniform(0.5, 2.0, (3, 4)), rng.uniform(0.5, 2.0, (3, 4))
compare_with_torch(lambda p, q: p - q, a, b, name="a - b")
compare_with_torch(lambda p, q: p / q, a, b, name="a / b")
compare_with_torch(lambda p: p.mean(axis=0), a, name="mean(axis=0)")
compare_with_torch(lambda p: 1.0 - 3.0 / p, a, name="1 - 3 / a")
for seed in range(3):
    expression, inputs = random_graph(seed)
    compare_with_torch(expression, *inputs, name=f"random graph {seed}")
# the gradient of the output with respect to itself is the seed: ones
root = Value(np.array([0.5, -1.0])).tanh()
root.backward()
assert_close(root.grad, np.ones(2), name="grad of the output itself",
             hint="backward() sets self.grad to ones before walking the graph")
print("backward() matches torch.autograd on shared nodes and random graphs.")
### BEGIN HIDDEN TESTS
for seed in range(3, 23):
    expression, inputs = random_graph(seed, n_inputs=2 + seed % 3, n_ops=8 + seed % 12)
    compare_with_torch(expression, *inputs, name=f"random graph {seed}")
# a node used twice, whose own parents are shared too
compare_with_torch(lambda x, y: ((x * y) * (x * y) + x).tanh(), np.array(0.7), np.array(-0.3), name="x*y twice")
# a non-scalar output: backward seeds ones (gradient of its sum)
compare_with_torch(lambda x: x.tanh() * x, np.array([[0.1, -2.0, 0.5]]), name="non-scalar output")
compare_with_torch(lambda p: p.mean(), a, name="mean()")
compare_with_torch(lambda p, q: p / q, a, np.array(1.7), name="(3,4) / scalar")
# a long chain (a few hundred nodes)
def long_chain(x):
    y = x
    for _ in range(100):
        y = y * 0.99 + x * 0.01
    return y.sum()


compare_with_torch(long_chain, np.array([1.0, 2.0]), name="long chain")
# the root's own grad is the seed
root = Value(np.array([1.0, 2.0])).tanh()
root.backward()
assert_close(root.grad, np.ones(2), name="grad of the output itself")
### END HIDDEN TESTS

# %% [markdown]
# ## Part 2. Layers as forward/backward pairs
#
# An engine that records every scalar operation is general but slow. Real
# networks are built from **layers** whose backward pass is written once, in
# matrix form. Each layer here is a pair:
#
# * `forward(inputs) -> (out, cache)`: the output, and whatever the backward pass
#   will need (the inputs, or the output);
# * `backward(dout, cache) -> gradients`: given $\partial L/\partial \text{out}$
#   (`dout`, shaped like `out`), the gradient with respect to each input, shaped
#   like that input.
#
# How do we know a backward pass is right? The **numerical gradient**: nudge
# each input element by $\pm h$ and watch the output,
#
# $$\frac{\partial L}{\partial x_i} \approx \frac{L(x + h e_i) - L(x - h e_i)}{2h},$$
#
# with $L = \sum \text{dout} \odot \text{out}$. `dlcourse.gradcheck.numerical_gradient`
# does exactly that. In float64 with $h = 10^{-5}$ a correct backward agrees to a
# **relative error** below $10^{-7}$; a bug gives something like $10^{-2}$ to $1$.
# (In float32 the round-off of $L(x+h) - L(x-h)$ swamps the difference, so always
# check in float64.)
#
# Every backward pass here is written **by hand**, in NumPy. The tests call your
# backward passes with PyTorch's autograd switched off (`dlcourse.shortcuts.by_hand`):
# a layer that hands its gradient to `torch.autograd` fails with a message naming the call.

# %% [markdown]
# ### Exercise 2.1: affine (fully connected) layer
#
# $\text{out} = x W + b$ with $x$ of shape $(N, D)$, $W$ of shape $(D, M)$, $b$
# of shape $(M,)$. The backward pass is the matrix form of the chain rule, and
# its shapes tell you where the transposes go.

# %% solution="affine"
def affine_forward(x, w, b):
    """Fully connected layer: out = x @ w + b.

    x: (N, D) inputs, w: (D, M) weights, b: (M,) biases.
    Returns out (N, M) and cache = (x, w, b).
    """
    ### BEGIN SOLUTION
    out = x @ w + b
    ### END SOLUTION
    return out, (x, w, b)


def affine_backward(dout, cache):
    """dout: (N, M) upstream gradient; cache from affine_forward.

    Returns dx (N, D), dw (D, M), db (M,).
    """
    x, w, b = cache
    ### BEGIN SOLUTION
    dx = dout @ w.T
    dw = x.T @ dout
    db = dout.sum(axis=0)
    ### END SOLUTION
    return dx, dw, db

# %% tests="test_affine" points=2
from dlcourse import shortcuts


def check_layer_gradient(name, analytic, numeric, hint="write the chain rule with shapes: (N, M) upstream, (N, D) input, (D, M) weights"):
    """Analytic vs numerical gradient: same shape, relative error below 1e-7."""
    assert_shape(analytic, numeric.shape, name=name, hint="a gradient has the shape of what it is the gradient of")
    assert_rel_error(analytic, numeric, tol=1e-7, name=name, hint=hint)


def check_affine(x, w, b, dout):
    out, cache = affine_forward(x, w, b)
    expected = F.linear(torch.from_numpy(x), torch.from_numpy(w).T, torch.from_numpy(b)).numpy()
    assert_close(out, expected, name="affine_forward output", hint="out = x @ w + b, with b added to every row")
    with shortcuts.by_hand("affine_backward", shortcuts.AUTOGRAD):  # by hand: PyTorch's autograd is not allowed inside
        dx, dw, db = affine_backward(dout, cache)
    check_layer_gradient("dx", dx, numerical_gradient(lambda x_: affine_forward(x_, w, b)[0], x, dout),
                         hint="dx has the shape of x: (N, D) = (N, M) @ (M, D)")
    check_layer_gradient("dw", dw, numerical_gradient(lambda w_: affine_forward(x, w_, b)[0], w, dout),
                         hint="dw has the shape of w: (D, M)")
    check_layer_gradient("db", db, numerical_gradient(lambda b_: affine_forward(x, w, b_)[0], b, dout),
                         hint="each bias is added to every row of the batch")


rng = np.random.default_rng(1)
check_affine(rng.standard_normal((4, 5)), rng.standard_normal((5, 3)), rng.standard_normal(3),
             rng.standard_normal((4, 3)))
print("affine layer: forward and backward are right.")
### BEGIN HIDDEN TESTS
# a batch of one
check_affine(rng.standard_normal((1, 6)), rng.standard_normal((6, 2)), rng.standard_normal(2),
             rng.standard_normal((1, 2)))
# square weights: a transposed gradient would have the right shape
check_affine(rng.standard_normal((3, 3)), rng.standard_normal((3, 3)), rng.standard_normal(3),
             rng.standard_normal((3, 3)))
check_affine(rng.standard_normal((7, 2)), rng.standard_normal((2, 9)), rng.standard_normal(9),
             rng.standard_normal((7, 9)))
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 2.2: activation functions
#
# ReLU $\max(0, x)$, sigmoid $\sigma(x) = 1/(1 + e^{-x})$ and $\tanh x$, all
# elementwise. The sigmoid and tanh derivatives are easiest to write with the
# **output**: $\sigma'(x) = \sigma(x)(1 - \sigma(x))$ and $\tanh'(x) = 1 - \tanh^2 x$,
# which is why their cache is the output.

# %% solution="relu"
def relu_forward(x):
    """ReLU: out = max(0, x). x: any shape; out: same shape; cache = x."""
    ### BEGIN SOLUTION
    out = np.maximum(x, 0.0)
    ### END SOLUTION
    return out, x


def relu_backward(dout, cache):
    """dout: upstream gradient shaped like x; returns dx shaped like x."""
    x = cache
    ### BEGIN SOLUTION
    dx = dout * (x > 0)
    ### END SOLUTION
    return dx

# %% solution="sigmoid"
def sigmoid_forward(x):
    """Sigmoid: out = 1 / (1 + exp(-x)). x: any shape; out: same shape; cache = out."""
    ### BEGIN SOLUTION
    out = 1.0 / (1.0 + np.exp(-x))
    ### END SOLUTION
    return out, out


def sigmoid_backward(dout, cache):
    """dout: upstream gradient shaped like x; returns dx shaped like x."""
    out = cache
    ### BEGIN SOLUTION
    dx = dout * out * (1.0 - out)
    ### END SOLUTION
    return dx

# %% solution="tanh"
def tanh_forward(x):
    """Tanh: out = tanh(x). x: any shape; out: same shape; cache = out."""
    ### BEGIN SOLUTION
    out = np.tanh(x)
    ### END SOLUTION
    return out, out


def tanh_backward(dout, cache):
    """dout: upstream gradient shaped like x; returns dx shaped like x."""
    out = cache
    ### BEGIN SOLUTION
    dx = dout * (1.0 - out**2)
    ### END SOLUTION
    return dx

# %% tests="test_relu" points=1
from dlcourse import shortcuts


def check_layer_gradient(name, analytic, numeric, hint="compare your formula with the one in the text, term by term"):
    """Analytic vs numerical gradient: same shape, relative error below 1e-7."""
    assert_shape(analytic, numeric.shape, name=name, hint="a gradient has the shape of what it is the gradient of")
    assert_rel_error(analytic, numeric, tol=1e-7, name=name, hint=hint)


def check_activation(name, forward, backward, reference, x, dout):
    """forward vs a PyTorch reference, backward vs the numerical gradient (float64)."""
    out, cache = forward(x)
    assert_close(out, reference(torch.from_numpy(x)).numpy(), name=f"{name} forward",
                 hint="elementwise, any shape: use NumPy functions that work on whole arrays")
    with shortcuts.by_hand(f"{name} backward", shortcuts.AUTOGRAD):
        dx = backward(dout, cache)
    check_layer_gradient(f"{name} backward dx", dx, numerical_gradient(lambda x_: forward(x_)[0], x, dout),
                         hint="dx = dout * (the local derivative), elementwise; the cache holds what it needs")


rng = np.random.default_rng(2)
# keep inputs away from 0, where ReLU has a kink the numerical gradient cannot see past
x = rng.uniform(0.1, 2.0, (4, 5)) * rng.choice([-1.0, 1.0], (4, 5))
check_activation("relu", relu_forward, relu_backward, torch.relu, x, rng.standard_normal((4, 5)))
# any shape: a 3-d input
x = rng.uniform(0.1, 2.0, (2, 3, 2)) * rng.choice([-1.0, 1.0], (2, 3, 2))
check_activation("relu (3-d input)", relu_forward, relu_backward, torch.relu, x, rng.standard_normal((2, 3, 2)))
print("relu: forward and backward are right.")
### BEGIN HIDDEN TESTS
x = rng.uniform(0.1, 2.0, (1, 3, 2)) * np.array([1.0, -1.0])
check_activation("relu", relu_forward, relu_backward, torch.relu, x, rng.standard_normal((1, 3, 2)))
x = np.array([[-3.0, 5.0]])
check_activation("relu", relu_forward, relu_backward, torch.relu, x, np.array([[2.0, -7.0]]))
### END HIDDEN TESTS

# %% tests="test_sigmoid" points=1
from dlcourse import shortcuts


def check_layer_gradient(name, analytic, numeric, hint="compare your formula with the one in the text, term by term"):
    """Analytic vs numerical gradient: same shape, relative error below 1e-7."""
    assert_shape(analytic, numeric.shape, name=name, hint="a gradient has the shape of what it is the gradient of")
    assert_rel_error(analytic, numeric, tol=1e-7, name=name, hint=hint)


def check_activation(name, forward, backward, reference, x, dout):
    """forward vs a PyTorch reference, backward vs the numerical gradient (float64)."""
    out, cache = forward(x)
    assert_close(out, reference(torch.from_numpy(x)).numpy(), name=f"{name} forward",
                 hint="elementwise, any shape: use NumPy functions that work on whole arrays")
    with shortcuts.by_hand(f"{name} backward", shortcuts.AUTOGRAD):
        dx = backward(dout, cache)
    check_layer_gradient(f"{name} backward dx", dx, numerical_gradient(lambda x_: forward(x_)[0], x, dout),
                         hint="dx = dout * (the local derivative), elementwise; the cache holds what it needs")


rng = np.random.default_rng(3)
check_activation("sigmoid", sigmoid_forward, sigmoid_backward, torch.sigmoid,
                 rng.standard_normal((4, 5)) * 2, rng.standard_normal((4, 5)))
print("sigmoid: forward and backward are right.")
### BEGIN HIDDEN TESTS
check_activation("sigmoid", sigmoid_forward, sigmoid_backward, torch.sigmoid,
                 rng.standard_normal((1, 7)) * 4, rng.standard_normal((1, 7)))
check_activation("sigmoid", sigmoid_forward, sigmoid_backward, torch.sigmoid,
                 np.array([0.0, 0.3, -0.8, 3.0]), np.array([1.0, -2.0, 0.5, 4.0]))
### END HIDDEN TESTS

# %% tests="test_tanh" points=1
from dlcourse import shortcuts


def check_layer_gradient(name, analytic, numeric, hint="compare your formula with the one in the text, term by term"):
    """Analytic vs numerical gradient: same shape, relative error below 1e-7."""
    assert_shape(analytic, numeric.shape, name=name, hint="a gradient has the shape of what it is the gradient of")
    assert_rel_error(analytic, numeric, tol=1e-7, name=name, hint=hint)


def check_activation(name, forward, backward, reference, x, dout):
    """forward vs a PyTorch reference, backward vs the numerical gradient (float64)."""
    out, cache = forward(x)
    assert_close(out, reference(torch.from_numpy(x)).numpy(), name=f"{name} forward",
                 hint="elementwise, any shape: use NumPy functions that work on whole arrays")
    with shortcuts.by_hand(f"{name} backward", shortcuts.AUTOGRAD):
        dx = backward(dout, cache)
    check_layer_gradient(f"{name} backward dx", dx, numerical_gradient(lambda x_: forward(x_)[0], x, dout),
                         hint="dx = dout * (the local derivative), elementwise; the cache holds what it needs")


rng = np.random.default_rng(4)
check_activation("tanh", tanh_forward, tanh_backward, torch.tanh,
                 rng.standard_normal((4, 5)), rng.standard_normal((4, 5)))
print("tanh: forward and backward are right.")
### BEGIN HIDDEN TESTS
check_activation("tanh", tanh_forward, tanh_backward, torch.tanh,
                 rng.standard_normal((1, 7)) * 2, rng.standard_normal((1, 7)))
check_activation("tanh", tanh_forward, tanh_backward, torch.tanh,
                 np.array([0.0, 0.3, -0.8, 1.7]), np.array([1.0, -2.0, 0.5, 4.0]))
### END HIDDEN TESTS

# %% [markdown]
# Both sigmoid and tanh flatten out for large $|x|$. Their derivatives show what
# that does to a gradient passing through them:

# %%
require_written(sigmoid_forward, sigmoid_backward, tanh_forward, tanh_backward)
grid = np.linspace(-6, 6, 241)
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
for name, forward, backward_pass in [("sigmoid", sigmoid_forward, sigmoid_backward),
                                     ("tanh", tanh_forward, tanh_backward)]:
    out, cache = forward(grid)
    axes[0].plot(grid, out, label=name)
    axes[1].plot(grid, backward_pass(np.ones_like(grid), cache), label=name)
axes[0].set_title("activation")
axes[1].set_title("derivative (backward of dout = 1)")
for ax in axes:
    ax.set_xlabel("x")
    ax.legend()
    ax.grid(alpha=0.3)
plt.tight_layout()
plt.show()

# %% [markdown]
# *Figure: sigmoid and tanh on $x \in [-6, 6]$ (left) and their derivatives as your backward
# passes compute them with `dout = 1` (right); no data involved.* Both derivatives peak at
# $x = 0$ and fall towards 0 on either side.

# %% [markdown]
# **Question 1 (written, 2 points).** What happens to the gradient that flows
# back through a sigmoid or tanh unit whose input is large in magnitude
# ("saturated")? What does that mean for training a deep network built from
# such units, and why does ReLU suffer less from it (and what is its own failure
# mode)? Answer in a few sentences in the cell below.

# %% [markdown] answer="q_saturation" points=2
# ### BEGIN SOLUTION
# The derivative of a saturated unit is almost zero: $\sigma'(x) = \sigma(x)(1-\sigma(x))$
# and $\tanh'(x) = 1 - \tanh^2 x$ both vanish as $|x|$ grows (about $e^{-|x|}$
# and $4e^{-2|x|}$), and even at best $\sigma' \le 1/4$. Backpropagation multiplies the
# upstream gradient by this derivative, so a saturated unit passes almost no
# gradient to its weights and to every layer below it. Stacked over many layers the
# factors multiply and the gradient **vanishes**: the early layers stop learning
# (large initial weights or large inputs make it worse, because they push units
# into saturation from the start). ReLU has derivative exactly 1 for every
# positive input, so it does not shrink the gradient where it is active; its
# failure mode is the opposite end: a unit whose input is negative for every
# example has derivative 0 everywhere and never recovers (a "dead" ReLU).
# ### END SOLUTION

# %% [markdown]
# ### Exercise 2.3: losses
#
# **Softmax cross-entropy.** For scores (logits) $s$ of shape $(N, C)$ and labels
# $y$, $p_{ij} = e^{s_{ij}} / \sum_k e^{s_{ik}}$ and
# $L = -\frac{1}{N}\sum_i \log p_{i y_i}$. Its gradient is remarkably simple:
#
# $$\frac{\partial L}{\partial s_{ij}} = \frac{1}{N}\left(p_{ij} - [j = y_i]\right).$$
#
# Computing $e^{s}$ directly overflows for logits above about 709 in float64
# ($e^{709.8}$ is the largest float64) and above about 88 in float32. Softmax does not change when a constant is subtracted from a
# row, so subtract each row's **maximum** first: the largest exponent is then
# $e^0 = 1$. Compute $\log p$ as `shifted - log(sum(exp(shifted)))` rather than
# `log(p)`, which would give `log(0) = -inf` for very unlikely classes.
#
# **Mean squared error**, as `torch.nn.functional.mse_loss`: the mean of
# $(\text{pred} - \text{target})^2$ over **all** elements.
#
# A loss ends the graph, so it returns the loss and the gradient of the loss
# with respect to its input directly (its `dout` is 1).

# %% solution="softmax_cross_entropy"
def softmax_cross_entropy(scores, y):
    """Mean softmax cross-entropy of scores against integer labels, and its gradient.

    scores: (N, C) logits; y: (N,) integer labels in [0, C).
    Returns loss (a float) and dscores (N, C) = d loss / d scores.
    Numerically stable: must work for logits of any size.
    """
    ### BEGIN SOLUTION
    num_examples = scores.shape[0]
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(num_examples)
    loss = -log_probs[rows, y].mean()
    dscores = np.exp(log_probs)
    dscores[rows, y] -= 1.0
    dscores /= num_examples
    ### END SOLUTION
    return float(loss), dscores

# %% solution="mse_loss"
def mse_loss(pred, target):
    """Mean squared error over all elements (as F.mse_loss), and its gradient.

    pred, target: arrays of the same shape.
    Returns loss (a float) and dpred (shaped like pred) = d loss / d pred.
    """
    ### BEGIN SOLUTION
    diff = pred - target
    loss = np.mean(diff**2)
    dpred = 2.0 * diff / diff.size
    ### END SOLUTION
    return float(loss), dpred

# %% tests="test_softmax_cross_entropy" points=2
from dlcourse import shortcuts


def check_layer_gradient(name, analytic, numeric, hint="compare your formula with the one in the text, term by term"):
    """Analytic vs numerical gradient: same shape, relative error below 1e-7."""
    assert_shape(analytic, numeric.shape, name=name, hint="a gradient has the shape of what it is the gradient of")
    assert_rel_error(analytic, numeric, tol=1e-7, name=name, hint=hint)


def check_softmax_cross_entropy(scores, y):
    with shortcuts.by_hand("softmax_cross_entropy", shortcuts.AUTOGRAD):
        loss, dscores = softmax_cross_entropy(scores, y)
    expected = F.cross_entropy(torch.from_numpy(scores), torch.from_numpy(y)).item()
    assert_close(loss, expected, name="softmax cross-entropy loss",
                 hint="the mean over the batch of -log p[label]; subtract each row's max first")
    numeric = numerical_gradient(lambda s: softmax_cross_entropy(s, y)[0], scores)
    check_layer_gradient("dscores", dscores, numeric, hint="(p - one_hot(y)) / N")


rng = np.random.default_rng(5)
check_softmax_cross_entropy(rng.standard_normal((6, 4)), rng.integers(0, 4, 6))
# logits of any size: around 1000, exp() alone would overflow to inf
huge = rng.standard_normal((3, 4)) * 10 + 1000.0
with shortcuts.by_hand("softmax_cross_entropy", shortcuts.AUTOGRAD):
    huge_loss, huge_dscores = softmax_cross_entropy(huge, np.array([0, 3, 1]))
assert_close(huge_loss, F.cross_entropy(torch.from_numpy(huge), torch.tensor([0, 3, 1])).item(),
             name="softmax cross-entropy loss for logits around 1000",
             hint="subtract each row's maximum before exp(); compute log p as shifted - log(sum(exp(shifted)))")
assert_true(np.isfinite(huge_dscores).all(), "dscores for logits around 1000 holds inf or nan",
            hint="subtract each row's maximum before exp()")
print("softmax cross-entropy: loss and gradient are right, also for huge logits.")
### BEGIN HIDDEN TESTS
# a batch of one
check_softmax_cross_entropy(rng.standard_normal((1, 10)), np.array([3]))
# large logits: only a max-shifted softmax stays finite
big = rng.standard_normal((5, 3)) * 10 + 1000.0
big_loss, big_dscores = softmax_cross_entropy(big, np.array([0, 1, 2, 0, 1]))
expected = F.cross_entropy(torch.from_numpy(big), torch.tensor([0, 1, 2, 0, 1])).item()
assert_close(big_loss, expected, name="loss for logits around 1000")
probs = torch.softmax(torch.from_numpy(big), dim=1).numpy()
probs[np.arange(5), [0, 1, 2, 0, 1]] -= 1.0
assert_close(big_dscores, probs / 5, name="dscores for logits around 1000")
very_negative = np.array([[-800.0, 0.0, 5.0], [0.0, -1000.0, 20.0]])
assert_close(softmax_cross_entropy(very_negative, np.array([0, 1]))[0],
             F.cross_entropy(torch.from_numpy(very_negative), torch.tensor([0, 1])).item(),
             name="loss for very unlikely labels")
# a perfectly confident right answer: loss 0, gradient 0
assert_close(softmax_cross_entropy(np.array([[0.0, 1000.0]]), np.array([1]))[0], 0.0, name="confident loss")
### END HIDDEN TESTS

# %% tests="test_mse_loss" points=1
from dlcourse import shortcuts


def check_layer_gradient(name, analytic, numeric, hint="compare your formula with the one in the text, term by term"):
    """Analytic vs numerical gradient: same shape, relative error below 1e-7."""
    assert_shape(analytic, numeric.shape, name=name, hint="a gradient has the shape of what it is the gradient of")
    assert_rel_error(analytic, numeric, tol=1e-7, name=name, hint=hint)


def check_mse(pred, target):
    with shortcuts.by_hand("mse_loss", shortcuts.AUTOGRAD):
        loss, dpred = mse_loss(pred, target)
    assert_close(loss, F.mse_loss(torch.from_numpy(pred), torch.from_numpy(target)).item(), name="mse loss",
                 hint="the mean of (pred - target) ** 2 over every element")
    check_layer_gradient("dpred", dpred, numerical_gradient(lambda p: mse_loss(p, target)[0], pred),
                         hint="the mean is over every element, not only the batch")


rng = np.random.default_rng(6)
check_mse(rng.standard_normal((5, 3)), rng.standard_normal((5, 3)))
check_mse(rng.standard_normal((2, 3, 2)), rng.standard_normal((2, 3, 2)))  # any shape
print("mse: loss and gradient are right.")
### BEGIN HIDDEN TESTS
check_mse(rng.standard_normal((1, 4)), rng.standard_normal((1, 4)))
check_mse(rng.standard_normal(7), rng.standard_normal(7))
check_mse(rng.standard_normal((3, 1, 4)), rng.standard_normal((3, 1, 4)))
### END HIDDEN TESTS

# %% [markdown]
# ## Part 3. An MLP, weight decay and update rules
#
# Stack the layers: affine → ReLU → affine → ReLU → … → affine → softmax
# cross-entropy. The parameters live in a dict, `W1, b1, W2, b2, ...`, and the
# number of layers is `len(params) // 2`.
#
# **L2 weight decay** adds $\frac{\lambda}{2}\sum_\ell \lVert W_\ell \rVert^2$ to the
# loss (weights only, not biases), so each weight gradient gains $\lambda W_\ell$.
# With the factor $\frac12$ this is exactly what `torch.optim`'s `weight_decay=λ`
# adds to a gradient.
#
# ### Exercise 3.1: `mlp_loss`
#
# Forward through the layers keeping every cache; with no labels return the
# scores. Otherwise compute the loss, then go **backward through the caches in
# reverse order**, collecting the gradient of every parameter, and add the weight
# decay to the loss and to the weight gradients.

# %%
def init_mlp(layer_sizes, weight_scale="he", seed=0, dtype=np.float32):
    """Parameters W1, b1, ..., WL, bL of an MLP with these layer sizes.

    layer_sizes: [input_dim, hidden_1, ..., num_classes].
    weight_scale: the std of the weights, or "he" for sqrt(2 / fan_in), which
        keeps the variance of ReLU activations the same from layer to layer.
    Biases start at zero.
    """
    rng = np.random.default_rng(seed)
    params = {}
    for layer, (fan_in, fan_out) in enumerate(zip(layer_sizes[:-1], layer_sizes[1:]), start=1):
        std = math.sqrt(2.0 / fan_in) if weight_scale == "he" else weight_scale
        params[f"W{layer}"] = (std * rng.standard_normal((fan_in, fan_out))).astype(dtype)
        params[f"b{layer}"] = np.zeros(fan_out, dtype=dtype)
    return params

# %% solution="mlp_loss"
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
    ### BEGIN SOLUTION
    for layer in range(1, num_layers + 1):
        out, affine_cache = affine_forward(out, params[f"W{layer}"], params[f"b{layer}"])
        relu_cache = None
        if layer < num_layers:  # no ReLU after the last layer: scores can be negative
            out, relu_cache = relu_forward(out)
        caches.append((affine_cache, relu_cache))
    ### END SOLUTION
    scores = out
    if y is None:
        return scores

    grads = {}
    # Loss (weight decay included) and backward pass: set `loss` and fill `grads`.
    ### BEGIN SOLUTION
    loss, dout = softmax_cross_entropy(scores, y)
    for layer in range(num_layers, 0, -1):
        affine_cache, relu_cache = caches[layer - 1]
        if relu_cache is not None:
            dout = relu_backward(dout, relu_cache)
        dout, dW, db = affine_backward(dout, affine_cache)
        W = params[f"W{layer}"]
        loss += 0.5 * reg * float(np.sum(W * W))
        grads[f"W{layer}"] = dW + reg * W
        grads[f"b{layer}"] = db
    ### END SOLUTION
    return loss, grads

# %% tests="test_mlp_loss" points=3
from dlcourse import shortcuts


def check_layer_gradient(name, analytic, numeric, hint="compare your formula with the one in the text, term by term"):
    """Analytic vs numerical gradient: same shape, relative error below 1e-7."""
    assert_shape(analytic, numeric.shape, name=name, hint="a gradient has the shape of what it is the gradient of")
    assert_rel_error(analytic, numeric, tol=1e-7, name=name, hint=hint)


def check_mlp_gradients(layer_sizes, batch, reg, seed):
    """mlp_loss's gradients vs numerical ones, float64."""
    rng = np.random.default_rng(seed)
    params = init_mlp(layer_sizes, weight_scale=0.5, seed=seed, dtype=np.float64)
    for name in params:
        if name.startswith("b"):
            params[name] = 0.1 * rng.standard_normal(params[name].shape)
    X = rng.standard_normal((batch, layer_sizes[0]))
    y = rng.integers(0, layer_sizes[-1], batch)
    scores = mlp_loss(params, X)
    assert_shape(scores, (batch, layer_sizes[-1]), name="scores (mlp_loss without labels)",
                 hint="with y=None return the scores of the last affine layer, (N, C)")
    with shortcuts.by_hand("mlp_loss", shortcuts.AUTOGRAD):
        loss, grads = mlp_loss(params, X, y, reg=reg)
    assert_true(set(grads) == set(params), f"grads has keys {sorted(grads)}, expected {sorted(params)}",
                hint="one gradient per parameter, under the parameter's name")
    for name in sorted(params):
        numeric = numerical_gradient(lambda p: mlp_loss(params, X, y, reg=reg)[0], params[name])
        check_layer_gradient(f"grads[{name!r}] (reg={reg})", grads[name], numeric,
                             hint="weight decay adds reg * W to each weight gradient, nothing to biases")
    return loss


check_mlp_gradients([5, 7, 3], batch=4, reg=0.0, seed=0)
check_mlp_gradients([5, 7, 3], batch=4, reg=0.3, seed=1)
check_mlp_gradients([4, 6, 5, 3], batch=3, reg=0.2, seed=6)  # any number of layers: here three
print("mlp_loss: gradients match the numerical gradient, with and without weight decay, for 2 and 3 layers.")
### BEGIN HIDDEN TESTS
check_mlp_gradients([4, 6, 5, 3], batch=5, reg=0.7, seed=2)
check_mlp_gradients([3, 4], batch=2, reg=0.2, seed=3)  # a single affine layer
check_mlp_gradients([6, 5, 2], batch=1, reg=0.1, seed=4)  # a batch of one
# the loss includes exactly 0.5 * reg * ||W||^2, and the scores are x @ W + b composed with ReLUs
params = init_mlp([4, 5, 3], weight_scale=0.7, seed=5, dtype=np.float64)
params["b2"] = np.array([-3.0, 0.5, -1.0])
X = np.random.default_rng(5).standard_normal((6, 4))
y = np.array([0, 1, 2, 0, 1, 2])
hidden = np.maximum(X @ params["W1"] + params["b1"], 0.0)
expected_scores = hidden @ params["W2"] + params["b2"]
assert_close(mlp_loss(params, X), expected_scores, name="scores")
plain = F.cross_entropy(torch.from_numpy(expected_scores), torch.from_numpy(y)).item()
penalty = 0.5 * 0.4 * (np.sum(params["W1"] ** 2) + np.sum(params["W2"] ** 2))
assert_close(mlp_loss(params, X, y, reg=0.4)[0], plain + penalty, name="loss with weight decay")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 3.2: update rules
#
# An update rule takes a parameter `w`, its gradient `dw` and a `config` dict
# (hyperparameters and the rule's state, one dict per parameter), and returns
# `(next_w, config)`. Write them exactly as `torch.optim` defines them, so the
# tests can compare step by step ($\eta$ the learning rate, $g$ the gradient,
# $t$ the step number starting at 1):
#
# * **SGD**: $w \leftarrow w - \eta\, g$.
# * **SGD with momentum** $\mu$ (`torch.optim.SGD(momentum=μ)`): the velocity
#   remembers past gradients, $v \leftarrow \mu v + g$, then $w \leftarrow w - \eta\, v$.
# * **Adam**: running means of the gradient and of its square,
#   $m \leftarrow \beta_1 m + (1-\beta_1) g$ and $v \leftarrow \beta_2 v + (1-\beta_2) g^2$;
#   both start at zero, so early on they are biased towards zero, which the bias
#   correction $\hat m = m / (1 - \beta_1^t)$, $\hat v = v / (1 - \beta_2^t)$ undoes;
#   then $w \leftarrow w - \eta\, \hat m / (\sqrt{\hat v} + \epsilon)$.

# %% solution="sgd"
def sgd(w, dw, config):
    """Plain SGD. config: 'learning_rate' (default 1e-2). Returns (next_w, config)."""
    config.setdefault("learning_rate", 1e-2)
    ### BEGIN SOLUTION
    next_w = w - config["learning_rate"] * dw
    ### END SOLUTION
    return next_w, config

# %% solution="sgd_momentum"
def sgd_momentum(w, dw, config):
    """SGD with momentum, as torch.optim.SGD(momentum=...) (no dampening, no Nesterov).

    config: 'learning_rate' (default 1e-2), 'momentum' (default 0.9),
    'velocity' (state, zeros like w at the first step). Returns (next_w, config).
    """
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("momentum", 0.9)
    config.setdefault("velocity", np.zeros_like(w))
    ### BEGIN SOLUTION
    velocity = config["momentum"] * config["velocity"] + dw
    next_w = w - config["learning_rate"] * velocity
    config["velocity"] = velocity
    ### END SOLUTION
    return next_w, config

# %% solution="adam"
def adam(w, dw, config):
    """Adam, as torch.optim.Adam (no weight decay, no amsgrad).

    config: 'learning_rate' (1e-3), 'beta1' (0.9), 'beta2' (0.999), 'epsilon' (1e-8),
    and the state: 'm', 'v' (zeros like w at first) and 't' (the number of steps taken, 0 at first).
    Returns (next_w, config).
    """
    config.setdefault("learning_rate", 1e-3)
    config.setdefault("beta1", 0.9)
    config.setdefault("beta2", 0.999)
    config.setdefault("epsilon", 1e-8)
    config.setdefault("m", np.zeros_like(w))
    config.setdefault("v", np.zeros_like(w))
    config.setdefault("t", 0)
    ### BEGIN SOLUTION
    beta1, beta2 = config["beta1"], config["beta2"]
    t = config["t"] + 1
    m = beta1 * config["m"] + (1 - beta1) * dw
    v = beta2 * config["v"] + (1 - beta2) * dw**2
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    next_w = w - config["learning_rate"] * m_hat / (np.sqrt(v_hat) + config["epsilon"])
    config.update(m=m, v=v, t=t)
    ### END SOLUTION
    return next_w, config

# %% tests="test_sgd" points=1
def compare_with_torch_optim(rule, config, make_optimizer, shape=(3, 4), steps=5, seed=0, grad_scale=1.0):
    """Run `rule` and a torch.optim optimizer on the same parameter and gradients; compare every step."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape)
    param = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    optimizer = make_optimizer([param])
    for step in range(1, steps + 1):
        dw = grad_scale * rng.standard_normal(shape)
        w, config = rule(w, dw, config)
        param.grad = torch.tensor(dw, dtype=torch.float64)
        optimizer.step()
        assert_close(w, param.detach().numpy(), name=f"{rule.__name__}: w after step {step}",
                     hint="write the update exactly as the formulas above; keep the rule's state in config "
                          "(a wrong step 1 is the update itself, a wrong step 2+ is the state)")


compare_with_torch_optim(sgd, {"learning_rate": 0.1}, lambda p: torch.optim.SGD(p, lr=0.1))
print("sgd matches torch.optim.SGD.")
### BEGIN HIDDEN TESTS
compare_with_torch_optim(sgd, {"learning_rate": 0.03}, lambda p: torch.optim.SGD(p, lr=0.03), shape=(1, 2), seed=1)
compare_with_torch_optim(sgd, {}, lambda p: torch.optim.SGD(p, lr=1e-2), shape=(5,), seed=2)
### END HIDDEN TESTS

# %% tests="test_sgd_momentum" points=2
def compare_with_torch_optim(rule, config, make_optimizer, shape=(3, 4), steps=5, seed=0, grad_scale=1.0):
    """Run `rule` and a torch.optim optimizer on the same parameter and gradients; compare every step."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape)
    param = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    optimizer = make_optimizer([param])
    for step in range(1, steps + 1):
        dw = grad_scale * rng.standard_normal(shape)
        w, config = rule(w, dw, config)
        param.grad = torch.tensor(dw, dtype=torch.float64)
        optimizer.step()
        assert_close(w, param.detach().numpy(), name=f"{rule.__name__}: w after step {step}",
                     hint="write the update exactly as the formulas above; keep the rule's state in config "
                          "(a wrong step 1 is the update itself, a wrong step 2+ is the state)")


compare_with_torch_optim(sgd_momentum, {"learning_rate": 0.1, "momentum": 0.9},
                         lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9))
print("sgd_momentum matches torch.optim.SGD(momentum=0.9).")
### BEGIN HIDDEN TESTS
compare_with_torch_optim(sgd_momentum, {"learning_rate": 0.05, "momentum": 0.5},
                         lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.5), shape=(1, 3), steps=8, seed=3)
compare_with_torch_optim(sgd_momentum, {}, lambda p: torch.optim.SGD(p, lr=1e-2, momentum=0.9),
                         shape=(4,), steps=6, seed=4)
# the state lives in config: two parameters do not share a velocity
config_a, config_b = {"learning_rate": 0.1}, {"learning_rate": 0.1}
sgd_momentum(np.zeros(2), np.ones(2), config_a)
sgd_momentum(np.zeros(2), -np.ones(2), config_b)
assert_close(config_a["velocity"], np.ones(2), name="velocity of parameter a")
### END HIDDEN TESTS

# %% tests="test_adam" points=2
def compare_with_torch_optim(rule, config, make_optimizer, shape=(3, 4), steps=5, seed=0, grad_scale=1.0):
    """Run `rule` and a torch.optim optimizer on the same parameter and gradients; compare every step."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape)
    param = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    optimizer = make_optimizer([param])
    for step in range(1, steps + 1):
        dw = grad_scale * rng.standard_normal(shape)
        w, config = rule(w, dw, config)
        param.grad = torch.tensor(dw, dtype=torch.float64)
        optimizer.step()
        assert_close(w, param.detach().numpy(), name=f"{rule.__name__}: w after step {step}",
                     hint="write the update exactly as the formulas above; keep the rule's state in config "
                          "(a wrong step 1 is the update itself, a wrong step 2+ is the state)")


compare_with_torch_optim(adam, {"learning_rate": 0.01}, lambda p: torch.optim.Adam(p, lr=0.01))
# small gradients and a large epsilon: epsilon is added to sqrt(v_hat), outside the square root
compare_with_torch_optim(adam, {"learning_rate": 0.05, "beta1": 0.5, "beta2": 0.9, "epsilon": 1e-3},
                         lambda p: torch.optim.Adam(p, lr=0.05, betas=(0.5, 0.9), eps=1e-3),
                         shape=(2, 3), steps=4, seed=8, grad_scale=1e-3)
print("adam matches torch.optim.Adam.")
### BEGIN HIDDEN TESTS
# small gradients and a large epsilon: where epsilon goes matters
compare_with_torch_optim(adam, {"learning_rate": 0.05, "beta1": 0.5, "beta2": 0.9, "epsilon": 1e-3},
                         lambda p: torch.optim.Adam(p, lr=0.05, betas=(0.5, 0.9), eps=1e-3),
                         shape=(2, 2), steps=10, seed=5, grad_scale=1e-3)
compare_with_torch_optim(adam, {}, lambda p: torch.optim.Adam(p), shape=(1,), steps=3, seed=6)
compare_with_torch_optim(adam, {"learning_rate": 0.1, "beta1": 0.0, "beta2": 0.99},
                         lambda p: torch.optim.Adam(p, lr=0.1, betas=(0.0, 0.99)), shape=(3,), steps=4, seed=7)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 3.3: RMSProp, decoupled weight decay (AdamW), and a learning-rate schedule
#
# * **RMSProp** (`torch.optim.RMSprop`) is Adam without the momentum and without the
#   bias correction: a running mean of the squared gradient,
#   $v \leftarrow \alpha v + (1-\alpha) g^2$ (the decay rate $\alpha$, 0.99 by default),
#   then $w \leftarrow w - \eta\, g / (\sqrt{v} + \epsilon)$.
# * **AdamW** (`torch.optim.AdamW`). Part 3's L2 penalty adds $\lambda w$ to the
#   gradient. With Adam that term is then divided by $\sqrt{\hat v}$ like the rest
#   of the gradient, so a weight with large gradients is barely pulled towards 0:
#   with Adam, an L2 penalty and weight decay are **not** the same thing. AdamW
#   *decouples* the decay from the gradient: first shrink the weight,
#   $w \leftarrow w - \eta \lambda w$, then take Adam's step with the plain gradient $g$
#   (no $\lambda w$ in it). The test checks both: your `adamw` matches `torch.optim.AdamW`
#   step by step, and it differs from Adam run on the L2 gradient $g + \lambda w$.
# * **A learning-rate schedule** changes $\eta$ during training: large steps early,
#   small steps to settle at the end. *Cosine annealing* over $T$ steps,
#   $\eta_t = \eta_{\min} + \tfrac12(\eta_0 - \eta_{\min})\,(1 + \cos(\pi t / T))$ for
#   $t = 0, \dots, T$, goes from $\eta_0$ to $\eta_{\min}$ along half a cosine. Write
#   `cosine_lr(step, total_steps, base_lr, min_lr)`; the test compares it with
#   `torch.optim.lr_scheduler.CosineAnnealingLR` at every step from 0 to $T$.

# %% solution="rmsprop"
def rmsprop(w, dw, config):
    """RMSProp, as torch.optim.RMSprop (no momentum, not centered).

    config: 'learning_rate' (1e-2), 'decay_rate' (0.99, torch's alpha), 'epsilon' (1e-8),
    and the state 'v' (zeros like w at first). Returns (next_w, config).
    """
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("decay_rate", 0.99)
    config.setdefault("epsilon", 1e-8)
    config.setdefault("v", np.zeros_like(w))
    ### BEGIN SOLUTION
    decay = config["decay_rate"]
    v = decay * config["v"] + (1 - decay) * dw**2
    next_w = w - config["learning_rate"] * dw / (np.sqrt(v) + config["epsilon"])
    config["v"] = v
    ### END SOLUTION
    return next_w, config

# %% solution="adamw"
def adamw(w, dw, config):
    """AdamW, as torch.optim.AdamW: decoupled weight decay, then Adam's step on dw.

    config: as adam's, plus 'weight_decay' (1e-2). Returns (next_w, config).
    """
    config.setdefault("weight_decay", 1e-2)
    config.setdefault("learning_rate", 1e-3)
    ### BEGIN SOLUTION
    decayed = w - config["learning_rate"] * config["weight_decay"] * w
    next_w, config = adam(decayed, dw, config)
    ### END SOLUTION
    return next_w, config

# %% solution="cosine_lr"
def cosine_lr(step, total_steps, base_lr, min_lr=0.0):
    """The cosine-annealed learning rate at `step` (0 <= step <= total_steps), a float."""
    ### BEGIN SOLUTION
    return min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(math.pi * step / total_steps))
    ### END SOLUTION

# %% tests="test_rmsprop" points=2
def compare_with_torch_optim(rule, config, make_optimizer, shape=(3, 4), steps=5, seed=0, grad_scale=1.0):
    """Run `rule` and a torch.optim optimizer on the same parameter and gradients; compare every step."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape)
    param = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    optimizer = make_optimizer([param])
    for step in range(1, steps + 1):
        dw = grad_scale * rng.standard_normal(shape)
        w, config = rule(w, dw, config)
        param.grad = torch.tensor(dw, dtype=torch.float64)
        optimizer.step()
        assert_close(w, param.detach().numpy(), name=f"{rule.__name__}: w after step {step}",
                     hint="write the update exactly as the formulas above; keep the rule's state in config "
                          "(a wrong step 1 is the update itself, a wrong step 2+ is the state)")


compare_with_torch_optim(rmsprop, {"learning_rate": 0.01}, lambda p: torch.optim.RMSprop(p, lr=0.01))
# small gradients and a large epsilon: epsilon is added to sqrt(v), outside the square root
compare_with_torch_optim(rmsprop, {"learning_rate": 0.05, "decay_rate": 0.9, "epsilon": 1e-3},
                         lambda p: torch.optim.RMSprop(p, lr=0.05, alpha=0.9, eps=1e-3),
                         shape=(2, 3), steps=4, seed=8, grad_scale=1e-3)
print("rmsprop matches torch.optim.RMSprop.")
### BEGIN HIDDEN TESTS
compare_with_torch_optim(rmsprop, {}, lambda p: torch.optim.RMSprop(p), shape=(4,), steps=6, seed=9)
compare_with_torch_optim(rmsprop, {"learning_rate": 0.1, "decay_rate": 0.5},
                         lambda p: torch.optim.RMSprop(p, lr=0.1, alpha=0.5), shape=(1, 2), steps=5, seed=10)
### END HIDDEN TESTS

# %% tests="test_adamw" points=2
def compare_with_torch_optim(rule, config, make_optimizer, shape=(3, 4), steps=5, seed=0, grad_scale=1.0):
    """Run `rule` and a torch.optim optimizer on the same parameter and gradients; compare every step."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape)
    param = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    optimizer = make_optimizer([param])
    for step in range(1, steps + 1):
        dw = grad_scale * rng.standard_normal(shape)
        w, config = rule(w, dw, config)
        param.grad = torch.tensor(dw, dtype=torch.float64)
        optimizer.step()
        assert_close(w, param.detach().numpy(), name=f"{rule.__name__}: w after step {step}",
                     hint="write the update exactly as the formulas above; keep the rule's state in config "
                          "(a wrong step 1 is the update itself, a wrong step 2+ is the state)")


compare_with_torch_optim(adamw, {"learning_rate": 0.1, "weight_decay": 0.5},
                         lambda p: torch.optim.AdamW(p, lr=0.1, weight_decay=0.5))
# decoupled is not L2: Adam on the L2 gradient dw + weight_decay * w lands elsewhere
w, dw = np.array([2.0, -3.0]), np.array([0.1, 10.0])
decoupled, _ = adamw(w.copy(), dw, {"learning_rate": 0.1, "weight_decay": 0.5})
coupled, _ = adam(w.copy(), dw + 0.5 * w, {"learning_rate": 0.1})
assert_true(not np.allclose(decoupled, coupled),
            "adamw gave the same step as Adam on the L2 gradient dw + weight_decay * w",
            hint="shrink w by learning_rate * weight_decay * w first, then take Adam's step on dw alone")
print("adamw matches torch.optim.AdamW, and differs from Adam with an L2 penalty.")
### BEGIN HIDDEN TESTS
compare_with_torch_optim(adamw, {}, lambda p: torch.optim.AdamW(p), shape=(3,), steps=6, seed=11)
compare_with_torch_optim(adamw, {"learning_rate": 0.05, "weight_decay": 0.0},
                         lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.0), shape=(2, 2), steps=4, seed=12)
### END HIDDEN TESTS

# %% tests="test_cosine_lr" points=1
def check_cosine_lr(total_steps, base_lr, min_lr):
    """cosine_lr at steps 0..total_steps against torch's CosineAnnealingLR."""
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=base_lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps, eta_min=min_lr)
    for step in range(total_steps + 1):
        assert_close(cosine_lr(step, total_steps, base_lr, min_lr), scheduler.get_last_lr()[0], atol=1e-12,
                     name=f"cosine_lr(step={step}, total_steps={total_steps}, base_lr={base_lr}, min_lr={min_lr})",
                     hint="eta_min + 0.5 * (eta_0 - eta_min) * (1 + cos(pi * step / total_steps))")
        optimizer.step()
        scheduler.step()


check_cosine_lr(total_steps=10, base_lr=0.3, min_lr=0.01)
print("cosine_lr matches torch.optim.lr_scheduler.CosineAnnealingLR.")
### BEGIN HIDDEN TESTS
check_cosine_lr(total_steps=7, base_lr=1.0, min_lr=0.0)
check_cosine_lr(total_steps=1, base_lr=0.5, min_lr=0.1)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 4. Training on MNIST
#
# MNIST: 28×28 grey-scale handwritten digits, 10 classes. `dlcourse.data.load_mnist`
# gives the full data set (60,000 training images) when it can download or find it
# in its cache; without a network, and always under the grader, it gives a small
# offline subset of real MNIST digits and says so. We flatten each image to a
# vector of 784 pixels in $[0, 1]$ and hold out part of the training set for
# validation.

# %%
from dlcourse.data import is_offline_subset, load_mnist


def dataset_to_numpy(dataset):
    """A whole image dataset as X (N, 784) float32 in [0, 1] and y (N,) int64 arrays."""
    images, labels = dataset.as_tensors()
    return images.flatten(1).numpy().astype(np.float32), labels.numpy().astype(np.int64)


mnist_train = load_mnist(train=True)
X_all, y_all = dataset_to_numpy(mnist_train)
X_test, y_test = dataset_to_numpy(load_mnist(train=False))
print(f"MNIST source: {mnist_train.source}")
num_val = len(X_all) // 10
shuffle = np.random.default_rng(0).permutation(len(X_all))
X_val, y_val = X_all[shuffle[:num_val]], y_all[shuffle[:num_val]]
X_train, y_train = X_all[shuffle[num_val:]], y_all[shuffle[num_val:]]
print(f"train {X_train.shape}, validation {X_val.shape}, test {X_test.shape}")
# What the plots say about their data: the offline subset is real MNIST, but far smaller.
mnist_note = f" (offline MNIST subset: {len(X_train):,} training images)" if is_offline_subset(mnist_train) else ""

# %% [markdown]
# ### Sanity checks before training
#
# Two cheap checks catch most bugs before a long run:
#
# 1. **The initial loss.** With small random weights the scores are all close to
#    0, the softmax is nearly uniform over the 10 classes, and the loss is about
#    $-\log(1/10) = \log 10 \approx 2.303$. Much more means the initial scores are
#    too large; much less means something is leaking the labels.
# 2. **Overfitting a tiny set.** A network with enough parameters must be able to
#    memorise 50 examples: 100% training accuracy within 100 steps. If it
#    cannot, the gradients or the update are wrong.
#
# `train_mlp` below is the training loop: minibatches, one update of every
# parameter per step with its own `config`, the accuracies after every epoch.

# %%
def accuracy(params, X, y, batch_size=2000):
    """Fraction of examples whose highest score is the right class."""
    correct = 0
    for start in range(0, len(X), batch_size):
        scores = mlp_loss(params, X[start:start + batch_size])
        correct += int((scores.argmax(axis=1) == y[start:start + batch_size]).sum())
    return correct / len(X)


def train_mlp(params, X, y, update_rule, learning_rate, reg=0.0, epochs=1, batch_size=128,
              X_val=None, y_val=None, seed=0, verbose=True):
    """Minibatch training of mlp_loss's MLP in place; returns a history of losses and accuracies."""
    rng = np.random.default_rng(seed)
    configs = {name: {"learning_rate": learning_rate} for name in params}
    history = {"loss": [], "train_acc": [], "val_acc": []}
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(X))
        for start in range(0, len(X), batch_size):
            batch = order[start:start + batch_size]
            loss, grads = mlp_loss(params, X[batch], y[batch], reg=reg)
            for name in params:
                params[name], configs[name] = update_rule(params[name], grads[name], configs[name])
            history["loss"].append(loss)
        history["train_acc"].append(accuracy(params, X[:5000], y[:5000]))
        if X_val is not None:
            history["val_acc"].append(accuracy(params, X_val, y_val))
        if verbose:
            val = f", validation accuracy {history['val_acc'][-1]:.3f}" if X_val is not None else ""
            print(f"epoch {epoch}: loss {np.mean(history['loss'][-20:]):.3f}, "
                  f"train accuracy {history['train_acc'][-1]:.3f}{val}")
    return history


X_tiny, y_tiny = X_train[:50].astype(np.float64), y_train[:50]

# %%
require_written(affine_forward, affine_backward, relu_forward, relu_backward, softmax_cross_entropy, mlp_loss, adam)
tiny_params = init_mlp([784, 100, 10], weight_scale=1e-3, dtype=np.float64)
print(f"initial loss {mlp_loss(tiny_params, X_tiny, y_tiny)[0]:.4f}   (log 10 = {math.log(10):.4f})")
history = train_mlp(tiny_params, X_tiny, y_tiny, adam, learning_rate=3e-3, epochs=100,
                    batch_size=50, verbose=False)
print(f"after {len(history['loss'])} steps: loss {history['loss'][-1]:.4f}, "
      f"training accuracy {history['train_acc'][-1]:.0%}")

# %% tests="test_sanity_checks" points=1
X_tiny, y_tiny = X_train[:50].astype(np.float64), y_train[:50]
params = init_mlp([784, 100, 10], weight_scale=1e-3, seed=1, dtype=np.float64)
initial_loss = mlp_loss(params, X_tiny, y_tiny)[0]
assert_true(abs(initial_loss - math.log(10)) < 0.05,
            f"the initial loss is {initial_loss:.3f}, expected about log(10) = {math.log(10):.3f}",
            hint="with tiny weights every class should get probability ~1/10")
history = train_mlp(params, X_tiny, y_tiny, adam, learning_rate=3e-3, epochs=100, batch_size=50, verbose=False)
assert_true(history["train_acc"][-1] == 1.0,
            f"after 100 Adam steps the MLP fits {history['train_acc'][-1]:.0%} of 50 examples, expected 100%",
            hint="a network that cannot memorise 50 examples has a bug in its gradients or updates")
print("Sanity checks passed: initial loss ~ log(10), 50 examples memorised.")

# %% [markdown]
# ### The initial weight scale
#
# The initial loss check used tiny weights (std $10^{-3}$), which is fine for a
# shallow network. In a deep one the scale decides whether a signal survives the
# trip through the layers at all. Below, random inputs go through 8 affine+ReLU
# layers of width 256 for three weight scales: watch the standard deviation of
# the activations layer by layer.

# %%
def activation_stds(weight_scale, depth=8, width=256, seed=0):
    """Std of the activations after each affine+ReLU layer of a random deep MLP."""
    params = init_mlp([784] + [width] * depth, weight_scale=weight_scale, seed=seed)
    h = X_train[:500]
    stds = []
    for layer in range(1, depth + 1):
        h = np.maximum(h @ params[f"W{layer}"] + params[f"b{layer}"], 0.0)
        stds.append(float(h.std()))
    return stds


for scale in [0.01, "he", 0.2]:
    label = "He: sqrt(2/fan_in)" if scale == "he" else f"std {scale}"
    plt.semilogy(range(1, 9), activation_stds(scale), marker="o", label=label)
plt.xlabel("layer")
plt.ylabel("std of activations (log scale)")
plt.title("8 random affine+ReLU layers, 500 MNIST training images")
plt.legend()
plt.grid(alpha=0.3)
plt.show()

# %% [markdown]
# *Figure: the standard deviation (log scale) of the activations after each of 8 untrained
# affine+ReLU layers of width 256, for three initial weight scales, on 500 training images
# of the MNIST data loaded above.*

# %% [markdown]
# **Question 2 (written, 2 points).** Using the plot above and what you know
# about backpropagation: what goes wrong in training when the initial weights are
# too small, and when they are too large? Why does the He scale
# $\sqrt{2/\text{fan\_in}}$ fix it for ReLU layers? Answer in the cell below.

# %% [markdown] answer="q_init_scale" points=2
# ### BEGIN SOLUTION
# Each layer multiplies the activations by its weights, so their scale changes by
# about a constant factor per layer: $\text{std}(W)\sqrt{\text{fan\_in}/2}$ for ReLU. With
# weights too small the activations shrink geometrically with depth (std 0.01:
# ~10x per layer) and so do the gradients, which are products of the same
# weights on the way back: the deep layers output almost nothing, the early layers
# get vanishing gradients and learn very slowly; the scores are ~0, so the loss
# starts at log 10 but stays there. With weights too large activations and
# gradients grow geometrically: huge scores, a huge initial loss, exploding
# gradients and unstable updates (and saturated units if sigmoid/tanh are used).
# He initialisation picks $\text{Var}(W) = 2/\text{fan\_in}$ so that
# $\text{fan\_in}\cdot\text{Var}(W)\cdot\frac12 = 1$ (ReLU zeroes half of its inputs):
# the variance of activations, and of gradients, stays about constant across
# layers, so every layer learns from the start.
# ### END SOLUTION

# %% [markdown]
# ### SGD, momentum or Adam?
#
# Exercises 3.2 and 3.3 wrote four update rules; here they race. The same 784-256-10 MLP starts
# from the same initial weights and sees the same minibatches of 64 images in the same
# order for the same number of steps: only the update rule differs. Each rule gets a
# learning rate usual for it: 0.1 for SGD; 0.01 for momentum with $\mu = 0.9$, whose
# velocity adds up past gradients to about $1/(1-\mu) = 10$ times one gradient, so its
# steady step is that of SGD at 0.1; $10^{-3}$ for Adam and RMSProp, whose step is about $\eta$ for
# every weight whatever its gradient's scale. (A fair race would tune each learning rate;
# these are the usual starting points.)

# %%
require_written(affine_forward, affine_backward, relu_forward, relu_backward, softmax_cross_entropy, mlp_loss,
                sgd, sgd_momentum, adam, rmsprop)
race_steps = dlcourse.budget(full=400, grading=10)
race_batches = np.random.default_rng(1).integers(0, len(X_train), (race_steps, 64))
race_rules = {
    "SGD, lr 0.1": (sgd, {"learning_rate": 0.1}),
    "momentum 0.9, lr 0.01": (sgd_momentum, {"learning_rate": 0.01, "momentum": 0.9}),
    "Adam, lr 1e-3": (adam, {"learning_rate": 1e-3}),
    "RMSProp, lr 1e-3": (rmsprop, {"learning_rate": 1e-3}),
}
race_losses = {}
for label, (rule, hyperparameters) in race_rules.items():
    race_params = init_mlp([784, 256, 10], seed=0)  # the same initial weights for every rule
    configs = {name: dict(hyperparameters) for name in race_params}
    losses = []
    for batch in race_batches:  # the same minibatches, in the same order
        loss, grads = mlp_loss(race_params, X_train[batch], y_train[batch])
        for name in race_params:
            race_params[name], configs[name] = rule(race_params[name], grads[name], configs[name])
        losses.append(loss)
    race_losses[label] = losses
    print(f"{label:>22}: training loss {np.mean(losses[-50:]):.3f} (mean of the last 50 steps), "
          f"validation accuracy {accuracy(race_params, X_val, y_val):.1%} after {race_steps} steps")
print(f"{len(y_val):,} validation digits: one digit is {1 / len(y_val):.2%} of the validation accuracy")

window = min(20, race_steps)
plt.figure(figsize=(7, 3.5))
for label, losses in race_losses.items():
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    plt.plot(np.arange(window, len(losses) + 1), smooth, label=label)
plt.yscale("log")
plt.xlabel("step (minibatch of 64)")
plt.ylabel(f"training loss (mean of {window} steps)")
plt.title("one MLP, same initial weights and minibatches" + mnist_note)
plt.legend()
plt.grid(alpha=0.3)
plt.show()

# %% [markdown]
# *Figure: training loss (log scale, mean of 20 steps) of the same 784-256-10 MLP trained
# with SGD, momentum and Adam on the same MNIST minibatches: the offline subset in the
# executed solution, full MNIST in Colab.*

# %% [markdown]
# In the run printed above (the executed solution's, on the offline subset: your
# numbers on full MNIST will differ) the training losses of Adam and RMSProp end
# well under half of SGD's and momentum's, while SGD and momentum end nearly level
# (momentum starts slower, while its velocity builds up). That is what the learning rates predict:
# momentum's steady step, $\eta/(1-\mu)$, was set equal to SGD's, and its
# advantage, a step that keeps its direction where the gradient wobbles from one
# minibatch to the next, does not show at this step size on this problem (it is
# expected on long narrow valleys of a loss, where plain SGD must take small steps
# not to bounce between the walls; this race has none to show). Adam divides
# each weight's step by the running size of its own gradient, so weights with
# small gradients (the rarely active hidden units, the biases) move as fast as
# the rest; RMSProp does the same without momentum, and here that is enough.
# Training loss is not the goal, though: the validation accuracies printed above
# are much closer than the losses (the last line says what one digit is worth).
# Which rule wins depends on the learning rates; to compare rules fairly, tune
# each one's learning rate on the validation split.

# %% [markdown]
# ### Training the MLP
#
# A 784-256-10 network trained with Adam and a little weight decay. On full MNIST
# we expect about 98% test accuracy after a few epochs, and at least 97% is the
# target (an estimate for a Colab run with full data: the executed solution was
# not run on it). On the offline subset expect a few percent less, since it has
# far fewer training images. Under the grader this cell trains for a moment only.

# %%
require_written(affine_forward, affine_backward, relu_forward, relu_backward, softmax_cross_entropy, mlp_loss, adam)
epochs = dlcourse.budget(full=15, grading=1)
num_train = dlcourse.budget(full=len(X_train), grading=min(1000, len(X_train)))
mnist_params = init_mlp([784, 256, 10], seed=0)
started = time.perf_counter()
mnist_history = train_mlp(mnist_params, X_train[:num_train], y_train[:num_train], adam,
                          learning_rate=1e-3, reg=1e-4, epochs=epochs, batch_size=128,
                          X_val=X_val, y_val=y_val)
# the test set once, at the end: the choices above were made on the validation split
test_accuracy = accuracy(mnist_params, X_test, y_test)
print(f"trained in {time.perf_counter() - started:.1f} s; test accuracy {test_accuracy:.2%}{mnist_note}")

# %%
require_written(affine_forward, affine_backward, relu_forward, relu_backward, softmax_cross_entropy, mlp_loss, adam)
fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.5))
ax_loss.plot(mnist_history["loss"], alpha=0.4, label="minibatch")
window = 20
if len(mnist_history["loss"]) > window:
    smooth = np.convolve(mnist_history["loss"], np.ones(window) / window, mode="valid")
    ax_loss.plot(np.arange(window - 1, len(mnist_history["loss"])), smooth, label=f"mean of {window}")
ax_loss.set(xlabel="step", ylabel="loss", title="training loss" + mnist_note, yscale="log")
ax_loss.legend()
epochs_axis = np.arange(1, len(mnist_history["train_acc"]) + 1)
ax_acc.plot(epochs_axis, mnist_history["train_acc"], marker="o", label="train")
ax_acc.plot(epochs_axis, mnist_history["val_acc"], marker="o", label="validation")
ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
ax_acc.legend()
for ax in (ax_loss, ax_acc):
    ax.grid(alpha=0.3)
plt.tight_layout()
plt.show()

# %% [markdown]
# *Figure: the MLP's minibatch training loss (left) and its training and validation
# accuracy after each epoch (right), on the MNIST data printed above (the offline
# subset in the executed solution).* In the executed run training accuracy keeps
# climbing towards 100% while validation accuracy levels off after about epoch 8
# (the epoch lines printed above): past that point the network fits its training
# images better without getting better on new ones, the start of over-fitting.

# %% [markdown]
# Which digits does it get wrong? We look at the validation digits (the test set
# stays for the one final number above).

# %%
require_written(affine_forward, relu_forward, mlp_loss)
predictions = mlp_loss(mnist_params, X_val).argmax(axis=1)
wrong = np.flatnonzero(predictions != y_val)[:32]
print(f"{np.sum(predictions != y_val)} of {len(y_val)} validation digits misclassified; the first {len(wrong)}:")
show_images(
    torch.from_numpy(X_val[wrong]).reshape(-1, 1, 28, 28),
    titles=[f"pred {predictions[i]}, true {y_val[i]}" for i in wrong],
    nrow=8,
)

# %% [markdown]
# *Figure: the first misclassified validation digits of the MLP above, each titled with
# its predicted and true label (the offline MNIST subset in the executed solution).*
# Most of them are easy for a person to read: a one-hidden-layer MLP that sees pixels,
# not strokes, still confuses digits whose shapes overlap in pixel space (a slanted 1
# and a 7, an open 4 and a 9).

# %% [markdown]
# ## Part 5. The same MLP in PyTorch
#
# PyTorch provides every piece we wrote: `nn.Linear` is the affine layer,
# `F.relu` the ReLU, `F.cross_entropy` the stable softmax cross-entropy, autograd
# the backward pass and `torch.optim` the update rules. One difference in layout:
# `nn.Linear(D, M)` stores its weight as `(M, D)`, the transpose of our `W`
# (`copy_numpy_params` below transposes when it copies).
#
# ### Exercise 5.1
#
# Write `TorchMLP(layer_sizes)`: `nn.Linear` layers with ReLU between them and
# nothing after the last; `forward` flattens its input first, so it takes
# `(N, 784)` vectors and `(N, 1, 28, 28)` images alike. Then write
# `torch_mlp_loss(model, x, y, reg)`, the same loss as `mlp_loss`: mean
# cross-entropy plus `0.5 * reg` times the sum of every squared **weight** (not
# bias).

# %% solution="torch_mlp"
class TorchMLP(nn.Module):
    """(Linear -> ReLU) x (L-1) -> Linear, for layer_sizes [D, H1, ..., C]."""

    def __init__(self, layer_sizes):
        super().__init__()
        ### BEGIN SOLUTION
        self.layers = nn.ModuleList(
            nn.Linear(fan_in, fan_out) for fan_in, fan_out in zip(layer_sizes[:-1], layer_sizes[1:])
        )
        ### END SOLUTION

    def forward(self, x):
        x = x.flatten(1)
        ### BEGIN SOLUTION
        for layer in self.layers[:-1]:
            x = F.relu(layer(x))
        return self.layers[-1](x)
        ### END SOLUTION


def torch_mlp_loss(model, x, y, reg=0.0):
    """Mean cross-entropy of model(x) against y plus 0.5 * reg * sum of squared Linear weights."""
    ### BEGIN SOLUTION
    loss = F.cross_entropy(model(x), y)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            loss = loss + 0.5 * reg * (module.weight**2).sum()
    return loss
    ### END SOLUTION

# %%
def linear_layers(model):
    """The nn.Linear layers of a model, in order."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def copy_numpy_params(model, params):
    """Copy W1, b1, ... into the model's Linear layers (nn.Linear keeps W transposed)."""
    layers = linear_layers(model)
    assert len(layers) == len(params) // 2, f"the model has {len(layers)} Linear layers, params {len(params) // 2}"
    with torch.no_grad():
        for index, layer in enumerate(layers, start=1):
            layer.weight.copy_(torch.from_numpy(params[f"W{index}"]).T)
            layer.bias.copy_(torch.from_numpy(params[f"b{index}"]))
    return model

# %% tests="test_torch_mlp" points=3
def check_torch_matches_numpy(layer_sizes, batch, reg, seed, test_device=None):
    """Same weights, same batch: PyTorch's scores, loss and gradients equal mlp_loss's (float64)."""
    test_device = test_device or torch.device("cpu")
    rng = np.random.default_rng(seed)
    params = init_mlp(layer_sizes, weight_scale=0.5, seed=seed, dtype=np.float64)
    for name in params:
        if name.startswith("b"):
            params[name] = 0.2 * rng.standard_normal(params[name].shape)
    X = rng.standard_normal((batch, layer_sizes[0]))
    y = rng.integers(0, layer_sizes[-1], batch)
    model = TorchMLP(layer_sizes)
    layers = linear_layers(model)
    assert_true(len(layers) == len(layer_sizes) - 1,
                f"TorchMLP({layer_sizes}) has {len(layers)} Linear layers, expected {len(layer_sizes) - 1}",
                hint="one nn.Linear per pair of consecutive sizes, kept in an nn.ModuleList")
    model = copy_numpy_params(model.double(), params).to(test_device)
    x_t = torch.from_numpy(X).to(test_device)
    y_t = torch.from_numpy(y).to(test_device)
    assert_close(model(x_t), mlp_loss(params, X), name="TorchMLP scores",
                 hint="Linear -> ReLU -> ... -> Linear, with no ReLU after the last layer")
    loss_t = torch_mlp_loss(model, x_t, y_t, reg=reg)
    loss_t.backward()
    loss, grads = mlp_loss(params, X, y, reg=reg)
    assert_close(loss_t, loss, name=f"torch_mlp_loss (reg={reg})",
                 hint="F.cross_entropy plus 0.5 * reg * the sum of every squared Linear weight, biases excluded")
    for index, layer in enumerate(linear_layers(model), start=1):
        assert_close(layer.weight.grad.T, grads[f"W{index}"], name=f"PyTorch's gradient of W{index}",
                     hint="autograd differentiates your loss: a wrong gradient means a wrong term in torch_mlp_loss")
        assert_close(layer.bias.grad, grads[f"b{index}"], name=f"PyTorch's gradient of b{index}",
                     hint="the weight decay must not include the biases")


check_torch_matches_numpy([6, 5, 4], batch=8, reg=0.0, seed=0)
check_torch_matches_numpy([6, 5, 4], batch=8, reg=0.3, seed=1)
check_torch_matches_numpy([7, 6, 5, 3], batch=4, reg=0.5, seed=2)  # any number of layers: here three
print("TorchMLP and torch_mlp_loss give exactly the gradients of mlp_loss, for 2 and 3 layers.")
### BEGIN HIDDEN TESTS
check_torch_matches_numpy([4, 3], batch=1, reg=0.2, seed=3)
check_torch_matches_numpy([5, 8, 2], batch=3, reg=0.1, seed=4, test_device=device if device.type == "cuda" else None)
# images go in as (N, 1, 28, 28)
scores = TorchMLP([784, 16, 10])(torch.zeros(2, 1, 28, 28))
assert_shape(scores, (2, 10), name="TorchMLP scores for images")
### END HIDDEN TESTS

# %% [markdown]
# ### The gradient check on real data
#
# The trained NumPy weights, copied into a `TorchMLP`, on a batch of real
# validation digits: the two implementations must agree to float64 round-off.

# %%
require_written(affine_forward, affine_backward, relu_forward, relu_backward, softmax_cross_entropy, mlp_loss,
                TorchMLP, torch_mlp_loss)
check_params = {name: value.astype(np.float64) for name, value in mnist_params.items()}
check_model = copy_numpy_params(TorchMLP([784, 256, 10]).double(), check_params)
batch_x, batch_y = X_val[:64].astype(np.float64), y_val[:64]
loss_t = torch_mlp_loss(check_model, torch.from_numpy(batch_x), torch.from_numpy(batch_y), reg=1e-4)
loss_t.backward()
loss_np, grads_np = mlp_loss(check_params, batch_x, batch_y, reg=1e-4)
print(f"loss: from scratch {loss_np:.12f}, PyTorch {loss_t.item():.12f}")
for index, layer in enumerate(linear_layers(check_model), start=1):
    print(f"W{index}: relative error {rel_error(layer.weight.grad.T, grads_np[f'W{index}']):.1e}   "
          f"b{index}: relative error {rel_error(layer.bias.grad, grads_np[f'b{index}']):.1e}")

# %% [markdown]
# ### Training it the PyTorch way
#
# With autograd and `torch.optim` the training loop is a few lines
# (`dlcourse.train.fit` holds them, with a progress bar). `Adam(weight_decay=λ)`
# adds $\lambda W$ to each gradient, i.e. the same L2 penalty as our loss; we
# give it to the weights only, through two parameter groups. (With Adam an L2
# penalty is not the same as *weight decay*: Adam divides the penalty's gradient
# by each weight's running gradient size like any other gradient, so weights with
# large gradients are barely decayed. `AdamW`, which 04 uses, decays every weight
# directly, $w \leftarrow w - \eta\lambda w$, outside the adaptive step:
# "decoupled" weight decay.) (`nn.Linear` starts
# from a smaller random scale than our He initialisation, so it needs a few more
# epochs to reach the same accuracy.)

# %%
require_written(TorchMLP)
from torch.utils.data import DataLoader, TensorDataset

from dlcourse.train import evaluate, fit

dlcourse.seed_everything(0)
torch_epochs = dlcourse.budget(full=5, grading=1)
train_loader = DataLoader(TensorDataset(torch.from_numpy(X_train[:num_train]), torch.from_numpy(y_train[:num_train])),
                          batch_size=128, shuffle=True)
val_loader = DataLoader(TensorDataset(torch.from_numpy(X_val), torch.from_numpy(y_val)), batch_size=1000)
test_loader = DataLoader(TensorDataset(torch.from_numpy(X_test), torch.from_numpy(y_test)), batch_size=1000)
torch_model = TorchMLP([784, 256, 10]).to(device)
weights = [p for n, p in torch_model.named_parameters() if n.endswith("weight")]
biases = [p for n, p in torch_model.named_parameters() if n.endswith("bias")]
optimizer = torch.optim.Adam([{"params": weights, "weight_decay": 1e-4}, {"params": biases}], lr=1e-3)
torch_history = fit(torch_model, train_loader, optimizer, F.cross_entropy, epochs=torch_epochs,
                    device=device, val_loader=val_loader)
# the test set once, at the end: the curves are on the validation split
_, torch_test_accuracy = evaluate(torch_model, test_loader, F.cross_entropy, device)
print(f"PyTorch MLP: test accuracy {torch_test_accuracy:.2%} after {torch_epochs} epochs{mnist_note}")
plot_history(torch_history, title="PyTorch MLP: train and validation" + mnist_note)

# %% [markdown]
# *Figure: the PyTorch MLP's loss and accuracy after each epoch, on the training and
# validation splits of the MNIST data loaded above (the offline subset in the executed
# solution).*

# %% [markdown]
# ## What you built
#
# * An autograd engine: every operation knows its local derivative; `backward`
#   visits the graph in reverse topological order and **accumulates** gradients.
# * Layers whose backward passes you proved right against numerical gradients,
#   a stable softmax cross-entropy, an MLP with weight decay, and SGD, momentum,
#   Adam, RMSProp, AdamW and a cosine schedule identical to `torch.optim`.
# * A network trained on MNIST, and the proof that PyTorch computes exactly the
#   same gradients. From the next assignment on, autograd does this work for you:
#   now you know what it does.
