# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Recurrent networks and LSTMs
#
# **Expected work:** about 12 hours. **GPU:** helps for part 5 only (the language model on tiny
# Shakespeare: a larger LSTM for 3,000 steps); parts 1 to 4, 6 and the project are small and run on a CPU.
#
# A recurrent network reads a sequence one element at a time and carries a
# *hidden state* from step to step: a summary of everything it has read so far.
# In this assignment you
#
# 1. write a vanilla (tanh) RNN by hand, forward and backward, for one step and
#    then for a whole sequence (*backpropagation through time*), and check it
#    against numerical gradients and against `torch.nn.RNN`;
# 2. watch gradients **vanish** (and explode) as sequences get longer, and write
#    **gradient clipping**;
# 3. build an **LSTM** by hand, forward **and backward**, check it against
#    `torch.nn.LSTM` and numerical gradients, see with your own backward pass why
#    its gradient survives where the RNN's vanishes, and write a **GRU** step,
#    forward and backward;
# 4. classify **sequences of different lengths**: is a name real, or the same
#    letters shuffled? You pad, pack and mask, write a masked mean that padding
#    cannot change, and compare RNN, GRU and LSTM on a validation split, with the
#    test split used once at the end;
# 5. train a **character-level language model** with truncated backpropagation
#    through time, carrying the hidden state from batch to batch, and measure
#    what carrying the state is worth;
# 6. build an **encoder-decoder with attention** that writes numbers in words
#    (`4207` → `four thousand two hundred seven`): write additive attention,
#    greedy decoding and beam search, check beam search against exhaustive
#    search, and compare the two decoders and look at where the model attends;
#
# and end with a **project**: RNN, GRU and LSTM language models at the same
# parameter count and step budget, tuned on validation, tested once.
#
# **How this notebook is graded.** Fill in every cell marked `# YOUR CODE HERE`
# (delete the `raise NotImplementedError(...)` line). The cell after each one holds
# tests: the visible ones run here, and hidden ones (more cases of the same
# requirements, such as a batch of one or a sequence of length one) run when the
# notebook is graded. Three written questions and the project's write-up are graded by hand. Under the grader
# the whole notebook runs again on a CPU with tiny training budgets
# (`dlcourse.budget`), so no grade depends on how well your models train; your
# training runs are for you.
#
# Every test cell prints one line when it passes. Run the cells in order, top to
# bottom. A training or plotting cell that needs an exercise you have not written
# yet stops with one line naming it.
#
# **Time.** Run All takes 3 to 6 minutes on a 2-core CPU (the executed solution,
# offline, on a busy machine: four name classifiers for 6 epochs each in under 3
# minutes, a language model for 500 steps in under a minute, and the number
# translator of section 6 for 100 steps, then decoded 3,000 times, in about a
# minute, and the project's six runs of 100 steps in under a minute; the training
# and decoding cells print their times). On a Colab T4 (estimates: this notebook was not timed on a T4) sections
# 1 to 4 take about 2 minutes, section 5 about 5 minutes with tiny
# Shakespeare, whose larger model trains for 3,000 steps, and section 6 about a
# minute (beam search decodes one number at a time).

# %%
import itertools
import math
import random
import time

import matplotlib.pyplot as plt
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, pad_sequence

import dlcourse
from dlcourse.checks import assert_close, assert_shape
from dlcourse.data import is_offline_subset, load_text
from dlcourse.gradcheck import numerical_gradient, rel_error
from dlcourse.selfcheck import require_written
from dlcourse.shortcuts import AUTOGRAD, by_hand

device = dlcourse.get_device()
dlcourse.deterministic()  # no TF32: the float64 comparisons below need exact arithmetic
dlcourse.seed_everything(0)
if device.type == "cpu":
    # the models here are small and step through time one small matrix product at a time:
    # on a CPU, extra threads cost more in synchronisation than they bring
    torch.set_num_threads(1)
print("device:", device)

# %% [markdown]
# ## 1. A vanilla RNN by hand
#
# At time step $t$ a tanh RNN combines the input $x_t$ with the previous hidden
# state $h_{t-1}$:
#
# $$h_t = \tanh\left(x_t W_x + h_{t-1} W_h + b\right)$$
#
# For a minibatch, $x_t$ is $(N, D)$, $h_t$ is $(N, H)$, $W_x$ is $(D, H)$,
# $W_h$ is $(H, H)$ and $b$ is $(H,)$. The **same** weights are used at every
# step; that is what lets one small network read a sequence of any length.
#
# As in the backprop assignment, every layer is a pair
# `forward(...) -> (out, cache)` / `backward(dout, cache) -> gradients`, written
# with plain tensor operations (no autograd). The tests enforce it: they run your
# backward passes (here and for the LSTM in section 3) with PyTorch's autograd
# switched off (`dlcourse.shortcuts.by_hand`), so a backward pass that calls
# `.backward()`, `torch.autograd.grad` or `torch.func` fails with a message naming
# the call. Backward needs one fact:
# $\frac{d}{dz}\tanh(z) = 1 - \tanh(z)^2$, and $\tanh(z)$ is exactly the $h_t$ the
# forward pass already computed.
#
# ### 1a. One step

# %% solution="rnn_step_forward"
def rnn_step_forward(x, h_prev, Wx, Wh, b):
    """One time step of a tanh RNN.

    Args:
        x: input at this step, (N, D).
        h_prev: hidden state of the previous step, (N, H).
        Wx: input-to-hidden weights, (D, H).
        Wh: hidden-to-hidden weights, (H, H).
        b: bias, (H,).

    Returns:
        h_next: the new hidden state, (N, H).
        cache: whatever rnn_step_backward needs (your choice).
    """
    h_next, cache = None, None
    ### BEGIN SOLUTION
    h_next = torch.tanh(x @ Wx + h_prev @ Wh + b)
    cache = (x, h_prev, Wx, Wh, h_next)
    ### END SOLUTION
    return h_next, cache


# %% [markdown]
# The tests compare your step with `torch.nn.RNNCell`. PyTorch stores weights the
# other way round, `weight_ih` is $(H, D)$ and computes $x W_{ih}^\top$, and it has
# two biases that are simply added; the helpers below copy our weights in.

# %%
def torch_parameters(module):
    """(weight_ih, weight_hh, bias_ih, bias_hh) of a cell, or of layer 0 of an nn.RNN/nn.LSTM."""
    suffix = "_l0" if isinstance(module, (nn.RNN, nn.LSTM)) else ""
    return [getattr(module, name + suffix) for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]


def with_our_weights(module, Wx, Wh, b):
    """`module` set to compute our layer: weights transposed, b in bias_ih, bias_hh zero."""
    module.to(device=Wx.device, dtype=Wx.dtype)
    weight_ih, weight_hh, bias_ih, bias_hh = torch_parameters(module)
    with torch.no_grad():
        weight_ih.copy_(Wx.T)
        weight_hh.copy_(Wh.T)
        bias_ih.copy_(b)
        bias_hh.zero_()
    return module


def torch_rnn_cell_with_weights(Wx, Wh, b):
    """An nn.RNNCell (tanh) computing exactly tanh(x @ Wx + h @ Wh + b)."""
    return with_our_weights(nn.RNNCell(*Wx.shape, nonlinearity="tanh"), Wx, Wh, b)


def torch_rnn_with_weights(Wx, Wh, b):
    """A one-layer nn.RNN (tanh, batch_first) computing our recurrence."""
    return with_our_weights(nn.RNN(*Wx.shape, nonlinearity="tanh", batch_first=True), Wx, Wh, b)


def random_rnn_params(D, H, dtype=torch.float64, scale=0.5):
    """Random (Wx, Wh, b) on `device`."""
    return (
        scale * torch.randn(D, H, dtype=dtype, device=device),
        scale * torch.randn(H, H, dtype=dtype, device=device),
        scale * torch.randn(H, dtype=dtype, device=device),
    )


# %% tests="test_rnn_step_forward" points=2
torch.manual_seed(1)
N, D, H = 3, 4, 5
x = torch.randn(N, D, dtype=torch.float64, device=device)
h_prev = torch.randn(N, H, dtype=torch.float64, device=device)
Wx, Wh, b = random_rnn_params(D, H)
h_next, _ = rnn_step_forward(x, h_prev, Wx, Wh, b)
assert_shape(h_next, (N, H), name="h_next", hint="the docstring gives the shape of every input and output")
with torch.no_grad():
    expected = torch_rnn_cell_with_weights(Wx, Wh, b)(x, h_prev)
assert_close(h_next, expected, name="h_next", hint="compare with nn.RNNCell: check which side each weight multiplies on")
print("rnn_step_forward matches nn.RNNCell.")
### BEGIN HIDDEN TESTS
# batch of one, and a non-square input/hidden pair with a large bias (saturating tanh)
x1 = torch.randn(1, 7, dtype=torch.float64, device=device)
h1 = torch.randn(1, 2, dtype=torch.float64, device=device)
Wx1, Wh1, b1 = random_rnn_params(7, 2, scale=2.0)
with torch.no_grad():
    expected1 = torch_rnn_cell_with_weights(Wx1, Wh1, b1)(x1, h1)
assert_close(rnn_step_forward(x1, h1, Wx1, Wh1, b1)[0], expected1, name="h_next (batch of one)")
# zero previous state: only the input path matters
h0 = torch.zeros(N, H, dtype=torch.float64, device=device)
with torch.no_grad():
    expected0 = torch_rnn_cell_with_weights(Wx, Wh, b)(x, h0)
assert_close(rnn_step_forward(x, h0, Wx, Wh, b)[0], expected0, name="h_next (zero state)")
### END HIDDEN TESTS

# %% solution="rnn_step_backward"
def rnn_step_backward(dh_next, cache):
    """Backward pass of one RNN step.

    Args:
        dh_next: upstream gradient dLoss/dh_next, (N, H).
        cache: what rnn_step_forward returned.

    Returns:
        dx (N, D), dh_prev (N, H), dWx (D, H), dWh (H, H), db (H,).
    """
    dx, dh_prev, dWx, dWh, db = None, None, None, None, None
    ### BEGIN SOLUTION
    x, h_prev, Wx, Wh, h_next = cache
    dz = dh_next * (1 - h_next**2)  # through the tanh
    dx = dz @ Wx.T
    dh_prev = dz @ Wh.T
    dWx = x.T @ dz
    dWh = h_prev.T @ dz
    db = dz.sum(dim=0)
    ### END SOLUTION
    return dx, dh_prev, dWx, dWh, db


# %% [markdown]
# The test below checks every gradient against centered differences
# (`dlcourse.gradcheck.numerical_gradient`) in float64. A relative error below
# about `1e-7` means the gradient is right.

# %% tests="test_rnn_step_backward" points=3
torch.manual_seed(2)
N, D, H = 2, 3, 4
x = torch.randn(N, D, dtype=torch.float64, device=device)
h_prev = torch.randn(N, H, dtype=torch.float64, device=device)
Wx, Wh, b = random_rnn_params(D, H)
h_next, cache = rnn_step_forward(x, h_prev, Wx, Wh, b)
dh_next = torch.randn_like(h_next)
with by_hand("rnn_step_backward", AUTOGRAD):  # autograd is switched off while your backward runs
    grads = rnn_step_backward(dh_next, cache)
names = ["dx", "dh_prev", "dWx", "dWh", "db"]
numeric = [
    numerical_gradient(lambda v: rnn_step_forward(v, h_prev, Wx, Wh, b)[0], x, dh_next),
    numerical_gradient(lambda v: rnn_step_forward(x, v, Wx, Wh, b)[0], h_prev, dh_next),
    numerical_gradient(lambda v: rnn_step_forward(x, h_prev, v, Wh, b)[0], Wx, dh_next),
    numerical_gradient(lambda v: rnn_step_forward(x, h_prev, Wx, v, b)[0], Wh, dh_next),
    numerical_gradient(lambda v: rnn_step_forward(x, h_prev, Wx, Wh, v)[0], b, dh_next),
]
for name, mine, num in zip(names, grads, numeric):
    assert_shape(mine, tuple(num.shape), name=name, hint="the docstring gives the shape of every input and output")
    error = rel_error(mine, num)
    print(f"{name:8s} relative error {error:.1e}")
    assert error < 1e-6, (f"{name}: relative error {error:.1e} against the numerical gradient is too large; "
                          "hint: dz = dh_next * (1 - h_next**2), then the affine layer's gradients")
print("rnn_step_backward passes the gradient check.")
### BEGIN HIDDEN TESTS
# batch of one, compared with autograd through nn.RNNCell (all five gradients)
x1 = torch.randn(1, 5, dtype=torch.float64, device=device, requires_grad=True)
h1 = torch.randn(1, 3, dtype=torch.float64, device=device, requires_grad=True)
Wx1, Wh1, b1 = random_rnn_params(5, 3, scale=1.0)
cell = torch_rnn_cell_with_weights(Wx1, Wh1, b1)
out1 = cell(x1, h1)
dout1 = torch.randn_like(out1)
out1.backward(dout1)
_, cache1 = rnn_step_forward(x1.detach(), h1.detach(), Wx1, Wh1, b1)
with by_hand("rnn_step_backward", AUTOGRAD):
    dx1, dh1, dWx1, dWh1, db1 = rnn_step_backward(dout1, cache1)
assert_close(dx1, x1.grad, name="dx (batch of one)")
assert_close(dh1, h1.grad, name="dh_prev (batch of one)")
assert_close(dWx1, cell.weight_ih.grad.T, name="dWx (batch of one)")
assert_close(dWh1, cell.weight_hh.grad.T, name="dWh (batch of one)")
assert_close(db1, cell.bias_ih.grad, name="db (batch of one)")
### END HIDDEN TESTS

# %% [markdown]
# ### 1b. A whole sequence: backpropagation through time
#
# Running the step over $t = 1, \dots, T$ unrolls the RNN into a deep network
# whose layers share weights. Its backward pass, **backpropagation through time
# (BPTT)**, walks the steps in reverse. Two things make it different from an
# ordinary deep network:
#
# * the hidden state $h_t$ is used twice, as an output of step $t$ (its
#   upstream gradient `dh[:, t]`) *and* as the input of step $t+1$, so its total
#   gradient is the sum of both paths;
# * the weights are shared, so their gradient is the **sum** over all steps.
#
# Inputs are batch-first, as in `nn.RNN(batch_first=True)`: `x` is $(N, T, D)$
# and the hidden states `h` are $(N, T, H)$.

# %% solution="rnn_forward"
def rnn_forward(x, h0, Wx, Wh, b):
    """Run the tanh RNN over a whole sequence.

    Args:
        x: inputs, (N, T, D).
        h0: initial hidden state, (N, H).
        Wx (D, H), Wh (H, H), b (H,): the weights, shared by all steps.

    Returns:
        h: hidden states of every step, (N, T, H); h[:, -1] is the final state.
        cache: whatever rnn_backward needs.
    """
    h, cache = None, None
    ### BEGIN SOLUTION
    states, cache = [], []
    h_t = h0
    for t in range(x.shape[1]):
        h_t, step_cache = rnn_step_forward(x[:, t], h_t, Wx, Wh, b)
        states.append(h_t)
        cache.append(step_cache)
    h = torch.stack(states, dim=1)
    ### END SOLUTION
    return h, cache


# %% tests="test_rnn_forward" points=3
torch.manual_seed(3)
N, T, D, H = 2, 6, 3, 4
x = torch.randn(N, T, D, dtype=torch.float64, device=device)
h0 = torch.randn(N, H, dtype=torch.float64, device=device)
Wx, Wh, b = random_rnn_params(D, H)
h, _ = rnn_forward(x, h0, Wx, Wh, b)
assert_shape(h, (N, T, H), name="h", hint="the docstring gives the shape of every input and output")
with torch.no_grad():
    expected_h, expected_last = torch_rnn_with_weights(Wx, Wh, b)(x, h0.unsqueeze(0))
assert_close(h, expected_h, name="hidden states h", hint="compare with nn.RNN: is the state carried from step to step?")
assert_close(h[:, -1], expected_last[0], name="final hidden state h[:, -1]", hint="h[:, t] is the state after step t")
print("rnn_forward matches nn.RNN (all hidden states and the final one).")
### BEGIN HIDDEN TESTS
rnn = torch_rnn_with_weights(Wx, Wh, b)
with torch.no_grad():
    # a sequence of length one
    h_one, _ = rnn_forward(x[:, :1], h0, Wx, Wh, b)
    assert_close(h_one, rnn(x[:, :1], h0.unsqueeze(0))[0], name="h (sequence of length one)")
    # a batch of one
    h_b1, _ = rnn_forward(x[:1], h0[:1], Wx, Wh, b)
    assert_close(h_b1, rnn(x[:1], h0[:1].unsqueeze(0))[0], name="h (batch of one)")
    # a zero initial state versus a given one: both must match nn.RNN, and differ from each other
    zeros = torch.zeros_like(h0)
    h_zero, _ = rnn_forward(x, zeros, Wx, Wh, b)
    assert_close(h_zero, rnn(x)[0], name="h (zero initial state)")
    assert (h_zero - h).abs().max() > 1e-3, "the initial state h0 must change the hidden states"
### END HIDDEN TESTS

# %% solution="rnn_backward"
def rnn_backward(dh, cache):
    """Backpropagation through time.

    Args:
        dh: upstream gradients of every hidden state, (N, T, H) (dLoss/dh[:, t]).
        cache: what rnn_forward returned.

    Returns:
        dx (N, T, D), dh0 (N, H), dWx (D, H), dWh (H, H), db (H,).
    """
    dx, dh0, dWx, dWh, db = None, None, None, None, None
    ### BEGIN SOLUTION
    N, T, H = dh.shape
    dx_steps = [None] * T
    dWx, dWh, db = 0, 0, 0
    dh_carry = torch.zeros_like(dh[:, 0])  # gradient reaching h_t from step t+1
    for t in reversed(range(T)):
        dx_t, dh_carry, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t] + dh_carry, cache[t])
        dx_steps[t] = dx_t
        dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
    dx = torch.stack(dx_steps, dim=1)
    dh0 = dh_carry
    ### END SOLUTION
    return dx, dh0, dWx, dWh, db


# %% [markdown]
# Two checks: numerical gradients on a tiny problem, and autograd through
# `nn.RNN` with the same weights, where `dh` is the gradient of
# `(output * dout).sum()` for a random `dout`.

# %% tests="test_rnn_backward" points=4
torch.manual_seed(4)
N, T, D, H = 2, 3, 3, 4
x = torch.randn(N, T, D, dtype=torch.float64, device=device)
h0 = torch.randn(N, H, dtype=torch.float64, device=device)
Wx, Wh, b = random_rnn_params(D, H)
h, cache = rnn_forward(x, h0, Wx, Wh, b)
dh = torch.randn_like(h)
with by_hand("rnn_backward", AUTOGRAD):  # autograd is switched off while your backward runs
    dx, dh0, dWx, dWh, db = rnn_backward(dh, cache)
for name, mine, num, hint in [
    ("dx", dx, numerical_gradient(lambda v: rnn_forward(v, h0, Wx, Wh, b)[0], x, dh),
     "h[:, t] gets gradient from dh[:, t] and from step t+1"),
    ("dh0", dh0, numerical_gradient(lambda v: rnn_forward(x, v, Wx, Wh, b)[0], h0, dh),
     "dh0 is the gradient that leaves the first step towards h0"),
    ("dWh", dWh, numerical_gradient(lambda v: rnn_forward(x, h0, Wx, v, b)[0], Wh, dh),
     "the weights are shared: sum their gradient over all steps"),
]:
    assert_shape(mine, tuple(num.shape), name=name, hint="the docstring gives the shape of every input and output")
    error = rel_error(mine, num)
    print(f"{name:4s} relative error {error:.1e}")
    assert error < 1e-6, (f"{name}: relative error {error:.1e} against the numerical gradient is too large; "
                          f"hint: {hint}")

# the same weights in nn.RNN; autograd gives the reference gradients (h0 included)
x_ref = x.clone().requires_grad_(True)
h0_ref = h0.clone().requires_grad_(True)
rnn = torch_rnn_with_weights(Wx, Wh, b)
out, _ = rnn(x_ref, h0_ref.unsqueeze(0))
out.backward(dh)
assert_close(dx, x_ref.grad, name="dx vs nn.RNN", hint="add the gradient from the next step to dh[:, t]")
assert_close(dh0, h0_ref.grad, name="dh0 vs nn.RNN", hint="return the gradient that flows out of the first step")
assert_close(dWx, rnn.weight_ih_l0.grad.T, name="dWx vs nn.RNN", hint="sum over all steps")
assert_close(dWh, rnn.weight_hh_l0.grad.T, name="dWh vs nn.RNN", hint="the weights are shared: sum their gradient over all steps")
assert_close(db, rnn.bias_ih_l0.grad, name="db vs nn.RNN", hint="sum over the batch and over all steps")
print("rnn_backward matches the numerical gradients and nn.RNN (dx, dh0 and the weights).")
### BEGIN HIDDEN TESTS
def _rnn_reference_grads(x, h0, Wx, Wh, b, dout):
    x_ref = x.clone().requires_grad_(True)
    h0_ref = h0.clone().requires_grad_(True)
    rnn = torch_rnn_with_weights(Wx, Wh, b)
    out, _ = rnn(x_ref, h0_ref.unsqueeze(0))
    out.backward(dout)
    return x_ref.grad, h0_ref.grad, rnn.weight_ih_l0.grad.T, rnn.weight_hh_l0.grad.T, rnn.bias_ih_l0.grad


def _check_rnn_backward(x, h0, Wx, Wh, b, label):
    h, cache = rnn_forward(x, h0, Wx, Wh, b)
    dout = torch.randn_like(h)
    with by_hand("rnn_backward", AUTOGRAD):
        mine = rnn_backward(dout, cache)
    ref = _rnn_reference_grads(x, h0, Wx, Wh, b, dout)
    for name, m, r in zip(["dx", "dh0", "dWx", "dWh", "db"], mine, ref):
        assert_close(m, r, name=f"{name} ({label})")


# gradient flowing into the initial state, on a longer sequence
x5 = torch.randn(3, 7, D, dtype=torch.float64, device=device)
h05 = torch.randn(3, H, dtype=torch.float64, device=device)
_check_rnn_backward(x5, h05, Wx, Wh, b, "longer sequence, dh0")
# sequence of length one, batch of one
_check_rnn_backward(x[:, :1], h0, Wx, Wh, b, "sequence of length one")
_check_rnn_backward(x[:1], h0[:1], Wx, Wh, b, "batch of one")
# a loss on the last hidden state only: the gradient must travel back through every step
h_last, cache_last = rnn_forward(x5, h05, Wx, Wh, b)
d_last = torch.zeros_like(h_last)
d_last[:, -1] = torch.randn_like(h_last[:, -1])
with by_hand("rnn_backward", AUTOGRAD):
    mine_last = rnn_backward(d_last, cache_last)
ref_last = _rnn_reference_grads(x5, h05, Wx, Wh, b, d_last)
assert_close(mine_last[0], ref_last[0], name="dx (loss on the last state only)")
assert_close(mine_last[1], ref_last[1], name="dh0 (loss on the last state only)")
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Vanishing and exploding gradients
#
# By the chain rule, the gradient that reaches an early input goes through every
# later step:
#
# $$\frac{\partial h_T}{\partial h_1} = \prod_{t=2}^{T} \frac{\partial h_t}{\partial h_{t-1}}
#   = \prod_{t=2}^{T} \operatorname{diag}\!\left(1 - h_t^2\right) W_h^\top .$$
#
# A product of $T-1$ matrices behaves like a power: if their typical gain is
# below one the gradient shrinks **exponentially** with $T$ (vanishing), above one
# it can grow exponentially (exploding). A vanishing gradient means the network
# cannot learn that something early in the sequence matters for a loss much later.
#
# The cell below measures $\lVert \partial (\textstyle\sum h_T) / \partial x_1 \rVert$
# (how much the last output depends on the first input) for sequences of growing
# length, for
#
# * an RNN with PyTorch's default initialisation;
# * the same RNN with $W_h$ multiplied by 3 (a large recurrent gain);
# * an LSTM with default initialisation;
# * an LSTM whose forget-gate bias starts at 3, so that $f_t \approx 0.95$
#   (you will see why in section 3).

# %%
def early_input_grad_norm(model, seq_len, input_size, trials=3):
    """Mean over a few random sequences of ||d sum(output at the last step) / d x_1||."""
    norms = []
    for trial in range(trials):
        generator = torch.Generator().manual_seed(trial)
        x = torch.randn(1, seq_len, input_size, generator=generator, dtype=torch.float64)
        x = x.to(device).requires_grad_(True)
        out, _ = model(x)
        out[:, -1].sum().backward()
        norms.append(x.grad[0, 0].norm().item())
    return sum(norms) / len(norms)


input_size, hidden_size = 16, 64
torch.manual_seed(0)
models = {
    "RNN (default init)": nn.RNN(input_size, hidden_size, batch_first=True),
    "RNN, W_h x 3": nn.RNN(input_size, hidden_size, batch_first=True),
    "LSTM (default init)": nn.LSTM(input_size, hidden_size, batch_first=True),
    "LSTM, forget bias 3": nn.LSTM(input_size, hidden_size, batch_first=True),
}
with torch.no_grad():
    models["RNN, W_h x 3"].weight_hh_l0.mul_(3.0)
    forget = slice(hidden_size, 2 * hidden_size)  # PyTorch's gate order is i, f, g, o
    models["LSTM, forget bias 3"].bias_ih_l0[forget] = 3.0
    models["LSTM, forget bias 3"].bias_hh_l0[forget] = 0.0

seq_lens = dlcourse.budget(full=[1, 2, 5, 10, 20, 50, 100, 200], grading=[1, 5, 20, 50])
trials = dlcourse.budget(full=3, grading=1)
curves = {}
for label, net in models.items():
    net.to(device=device, dtype=torch.float64)
    curves[label] = [early_input_grad_norm(net, T, input_size, trials) for T in seq_lens]

plt.figure(figsize=(6, 4))
for label, norms in curves.items():
    plt.semilogy(seq_lens, norms, marker="o", label=label)
plt.xlabel("sequence length T")
plt.ylabel(r"$\|\partial \sum h_T / \partial x_1\|$")
plt.title("How much the last output feels the first input")
plt.legend()
plt.grid(True, which="major", alpha=0.3)
plt.show()
for label, norms in curves.items():
    print(f"{label:22s} T=1: {norms[0]:.1e}   T={seq_lens[-1]}: {norms[-1]:.1e}")

# %% [markdown]
# *Figure: the norm of the gradient reaching the first input from a loss on the
# last hidden state, against the sequence length T (log scale), for the four
# models listed above, with random inputs and PyTorch's modules (mean of 3 draws).*
#
# Read the plot: the default RNN's gradient falls by many orders of magnitude
# within a few dozen steps (the printed lines give T=1 and T=200): far back in
# the sequence, the first input has no measurable influence on learning. With a large recurrent gain the RNN's gradient instead
# *grows* with $T$ (until tanh saturates). A default LSTM vanishes too, but more
# slowly, and an LSTM whose forget gate starts open keeps a gradient of order one
# over hundreds of steps: its cell state is an additive path through time.
#
# ### Gradient clipping
#
# Vanishing gradients need a better architecture; **exploding** gradients have a
# simple fix. One huge gradient (a rare sequence, a steep cliff in the loss)
# makes one huge optimiser step that can wreck a model that trained well so far.
# *Clipping by global norm* rescales all gradients together when their combined
# norm is too large:
#
# $$g \leftarrow g \cdot \min\!\left(1, \frac{\text{max\_norm}}{\lVert g \rVert + \epsilon}\right),
#   \qquad \lVert g \rVert = \sqrt{\textstyle\sum_{p} \sum_i g_{p,i}^2}$$
#
# where the norm runs over **all** parameters' gradients at once. The direction of
# the update is unchanged, only its length is capped. Write it (PyTorch has it as
# `torch.nn.utils.clip_grad_norm_`; the test compares with it).

# %% solution="clip_grad_norm"
def clip_grad_norm(parameters, max_norm, eps=1e-6):
    """Clip the gradients of `parameters` in place to a global norm of at most `max_norm`.

    Args:
        parameters: an iterable of tensors (e.g. model.parameters()); skip those whose .grad is None.
        max_norm: the largest allowed global norm.
        eps: added to the norm before dividing, so a zero gradient is safe.

    Returns:
        The global norm of the gradients *before* clipping, as a Python float.
    """
    ### BEGIN SOLUTION
    grads = [p.grad for p in parameters if p.grad is not None]
    total_norm = math.sqrt(sum(float((g.detach().double() ** 2).sum()) for g in grads))
    scale = max_norm / (total_norm + eps)
    if scale < 1:
        for g in grads:
            g.mul_(scale)
    return total_norm
    ### END SOLUTION


# %% tests="test_clip_grad_norm" points=2
def _params_with_grads(scale, seed):
    generator = torch.Generator().manual_seed(seed)
    shapes = [(4, 3), (3,), (2, 5)]
    params = [torch.zeros(s, dtype=torch.float64, device=device, requires_grad=True) for s in shapes]
    for p in params:
        p.grad = (scale * torch.randn(p.shape, generator=generator, dtype=torch.float64)).to(device)
    return params


mine = _params_with_grads(scale=10.0, seed=0)
reference = _params_with_grads(scale=10.0, seed=0)
norm_before = clip_grad_norm(mine, max_norm=1.0)
expected_norm = torch.nn.utils.clip_grad_norm_(reference, max_norm=1.0)
assert abs(float(norm_before) - float(expected_norm)) < 1e-6 * float(expected_norm), (
    f"clip_grad_norm returned {float(norm_before):.6g}, expected the global norm before clipping, "
    f"{float(expected_norm):.6g}; hint: the square root of the sum of squares over all parameters' gradients"
)
for i, (p, q) in enumerate(zip(mine, reference)):
    assert_close(p.grad, q.grad, name=f"clipped gradient of parameter {i}", hint="one scale for all parameters together")
global_after = math.sqrt(sum(float((p.grad**2).sum()) for p in mine))
# below max_norm nothing changes; a parameter whose .grad is None is skipped (and a generator works)
small = _params_with_grads(scale=0.01, seed=3)
small_before = [p.grad.clone() for p in small]
no_grad_param = torch.zeros(2, dtype=torch.float64, device=device, requires_grad=True)
clip_grad_norm((p for p in small + [no_grad_param]), max_norm=1.0)
for i, (p, g) in enumerate(zip(small, small_before)):
    assert_close(p.grad, g, name=f"gradient {i} whose global norm is below max_norm",
                 hint="scale only when the norm exceeds max_norm (min(1, max_norm / norm))")
assert no_grad_param.grad is None, ("clip_grad_norm gave a gradient to a parameter that had none; "
                                    "hint: skip parameters whose .grad is None")
print(f"global norm {float(norm_before):.3f} -> {global_after:.3f} after clipping to 1.0; "
      "small gradients and missing ones left alone.")
### BEGIN HIDDEN TESTS
# below the threshold nothing changes
small = _params_with_grads(scale=0.01, seed=1)
before = [p.grad.clone() for p in small]
clip_grad_norm(small, max_norm=1.0)
for i, (p, g) in enumerate(zip(small, before)):
    assert_close(p.grad, g, name=f"gradient {i} below max_norm (must be unchanged)")
# parameters without a gradient are skipped; a generator is accepted
with_none = _params_with_grads(scale=5.0, seed=2)
reference = _params_with_grads(scale=5.0, seed=2)
frozen = torch.zeros(3, device=device, dtype=torch.float64, requires_grad=True)  # .grad is None
norm_mine = clip_grad_norm((p for p in with_none + [frozen]), max_norm=2.0)
norm_ref = torch.nn.utils.clip_grad_norm_(reference, max_norm=2.0)
assert abs(float(norm_mine) - float(norm_ref)) < 1e-6 * float(norm_ref), "global norm with a parameter whose grad is None"
for i, (p, q) in enumerate(zip(with_none, reference)):
    assert_close(p.grad, q.grad, name=f"clipped gradient {i} (generator input, one grad None)")
assert frozen.grad is None, ("clip_grad_norm gave a gradient to a parameter that had none; "
                             "hint: skip parameters whose .grad is None")
### END HIDDEN TESTS

# %% [markdown]
# What clipping changes, on the exploding RNN from the plot: the global gradient
# norm of its weights for a loss on the last step of a 100-step sequence, before
# and after clipping to 1. The cosine between the two gradients is 1: clipping
# shortens the step without turning it.

# %%
require_written(clip_grad_norm)
exploding = models["RNN, W_h x 3"]
for T in [10, 50, 100]:
    exploding.zero_grad()
    x = torch.randn(1, T, input_size, dtype=torch.float64, device=device)
    out, _ = exploding(x)
    out[:, -1].sum().backward()
    before = torch.cat([p.grad.flatten() for p in exploding.parameters()]).clone()
    norm = clip_grad_norm(exploding.parameters(), max_norm=1.0)
    after = torch.cat([p.grad.flatten() for p in exploding.parameters()])
    cosine = F.cosine_similarity(before, after, dim=0).item()
    print(f"T={T:3d}: gradient norm {norm:10.2f} -> {after.norm().item():.2f}   cosine(before, after) = {cosine:.4f}")

# %% [markdown]
# ## 3. An LSTM by hand, forward and backward
#
# A Long Short-Term Memory cell keeps a second state, the **cell state** $c_t$,
# and changes it only through *gates*: vectors in $(0, 1)$ that decide, element
# by element, how much to let through. From the input and the previous hidden
# state it computes four pre-activations at once,
#
# $$a = x_t W_x + h_{t-1} W_h + b \in \mathbb{R}^{N \times 4H},$$
#
# splits them into four blocks of $H$ columns **in PyTorch's order $i, f, g, o$**,
# and applies
#
# $$\begin{aligned}
# i &= \sigma(a_i) && \text{input gate: how much new content to write}\\
# f &= \sigma(a_f) && \text{forget gate: how much of the old cell to keep}\\
# g &= \tanh(a_g) && \text{candidate content}\\
# o &= \sigma(a_o) && \text{output gate: how much of the cell to show}\\
# c_t &= f \odot c_{t-1} + i \odot g\\
# h_t &= o \odot \tanh(c_t)
# \end{aligned}$$
#
# The update of $c_t$ is additive: $\partial c_t / \partial c_{t-1} = \operatorname{diag}(f)$,
# with no weight matrix and no squashing in between. That is the path along which
# the gradient survived in the plot above.
#
# As for the RNN, the forward step returns `(h_next, c_next, cache)`, with tensor
# operations only; you write the backward pass by hand in 3b. The tests of the
# forward pass compare values **and** autograd's gradients with PyTorch's
# `nn.LSTMCell` and `nn.LSTM`. As before `Wx` is $(D, 4H)$, `Wh` is $(H, 4H)$ and
# `b` is $(4H,)$.
#
# ### 3a. Forward

# %% solution="lstm_step_forward"
def lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b):
    """One LSTM step (gate order i, f, g, o, as in PyTorch).

    Args:
        x: (N, D); h_prev, c_prev: (N, H); Wx: (D, 4H); Wh: (H, 4H); b: (4H,).

    Returns:
        h_next, c_next: (N, H) each.
        cache: whatever lstm_step_backward needs (your choice).
    """
    h_next, c_next, cache = None, None, None
    ### BEGIN SOLUTION
    a = x @ Wx + h_prev @ Wh + b
    a_i, a_f, a_g, a_o = a.chunk(4, dim=1)
    i, f, o = torch.sigmoid(a_i), torch.sigmoid(a_f), torch.sigmoid(a_o)
    g = torch.tanh(a_g)
    c_next = f * c_prev + i * g
    tanh_c = torch.tanh(c_next)
    h_next = o * tanh_c
    cache = (x, h_prev, c_prev, Wx, Wh, i, f, g, o, tanh_c)
    ### END SOLUTION
    return h_next, c_next, cache


# %%
def torch_lstm_cell_with_weights(Wx, Wh, b):
    """An nn.LSTMCell computing our LSTM step with the given weights."""
    D, H4 = Wx.shape
    return with_our_weights(nn.LSTMCell(D, H4 // 4), Wx, Wh, b)


def torch_lstm_with_weights(Wx, Wh, b):
    """A one-layer nn.LSTM (batch_first) computing our LSTM with the given weights."""
    D, H4 = Wx.shape
    return with_our_weights(nn.LSTM(D, H4 // 4, batch_first=True), Wx, Wh, b)


def random_lstm_params(D, H, dtype=torch.float64, requires_grad=True):
    """Random (Wx, Wh, b) on `device` (requiring grad unless told otherwise)."""
    return [
        (0.5 * torch.randn(*shape, dtype=dtype, device=device)).requires_grad_(requires_grad)
        for shape in [(D, 4 * H), (H, 4 * H), (4 * H,)]
    ]


def assert_lstm_cell_grads(module, params, label=""):
    """Compare the .grad of our (Wx, Wh, b) with those of the nn.LSTMCell/nn.LSTM copy."""
    weight_ih, weight_hh, bias_ih, _ = torch_parameters(module)
    for name, mine, ref in zip(["dWx", "dWh", "db"], params, [weight_ih.grad.T, weight_hh.grad.T, bias_ih.grad]):
        assert_close(mine.grad, ref, name=f"{name} {label}",
                     hint="a wrong gate order or nonlinearity shows here first; the weights are shared by all steps")


# %% tests="test_lstm_step_forward" points=3
torch.manual_seed(5)
N, D, H = 3, 4, 5
x = torch.randn(N, D, dtype=torch.float64, device=device, requires_grad=True)
h_prev = torch.randn(N, H, dtype=torch.float64, device=device, requires_grad=True)
c_prev = torch.randn(N, H, dtype=torch.float64, device=device, requires_grad=True)
Wx, Wh, b = random_lstm_params(D, H)
h_next, c_next, _ = lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b)
assert_shape(h_next, (N, H), name="h_next", hint="the docstring gives the shape of every input and output")
assert_shape(c_next, (N, H), name="c_next", hint="the docstring gives the shape of every input and output")

cell = torch_lstm_cell_with_weights(Wx.detach(), Wh.detach(), b.detach())
x_ref, h_ref, c_ref = (t.detach().clone().requires_grad_(True) for t in (x, h_prev, c_prev))
h_expected, c_expected = cell(x_ref, (h_ref, c_ref))
hint = "gate order is i, f, g, o; g uses tanh, the other three sigmoid"
assert_close(h_next, h_expected, name="h_next", hint=hint)
assert_close(c_next, c_expected, name="c_next", hint=hint)

dh, dc = torch.randn_like(h_next), torch.randn_like(c_next)
((h_next * dh).sum() + (c_next * dc).sum()).backward()
((h_expected * dh).sum() + (c_expected * dc).sum()).backward()
assert_close(x.grad, x_ref.grad, name="dx (autograd through your step)", hint=hint)
assert_close(h_prev.grad, h_ref.grad, name="dh_prev (autograd through your step)", hint=hint)
assert_close(c_prev.grad, c_ref.grad, name="dc_prev (autograd through your step)", hint="c_next = f * c_prev + i * g")
assert_lstm_cell_grads(cell, [Wx, Wh, b])
print("lstm_step_forward matches nn.LSTMCell: values and gradients.")
### BEGIN HIDDEN TESTS
# batch of one, non-square sizes, and a zero previous state
x1 = torch.randn(1, 6, dtype=torch.float64, device=device)
zeros = torch.zeros(1, 2, dtype=torch.float64, device=device)
Wx1, Wh1, b1 = random_lstm_params(6, 2)
with torch.no_grad():
    h1, c1, _ = lstm_step_forward(x1, zeros, zeros, Wx1, Wh1, b1)
    h1_ref, c1_ref = torch_lstm_cell_with_weights(Wx1, Wh1, b1)(x1, (zeros, zeros))
assert_close(h1, h1_ref, name="h_next (batch of one, zero state)")
assert_close(c1, c1_ref, name="c_next (batch of one, zero state)")
# a large forget-gate pre-activation must keep the old cell almost entirely
with torch.no_grad():
    b_keep = torch.zeros(4 * H, dtype=torch.float64, device=device)
    b_keep[H : 2 * H] = 20.0  # f ~ 1
    b_keep[:H] = -20.0  # i ~ 0
    _, c_keep, _ = lstm_step_forward(x.detach(), h_prev.detach(), c_prev.detach(), 0 * Wx, 0 * Wh, b_keep)
assert_close(c_keep, c_prev.detach(), name="c_next with forget gate open, input gate closed", atol=1e-6, rtol=0)
### END HIDDEN TESTS

# %% [markdown]
# Now run the step over a sequence. Like `nn.LSTM`, `lstm_forward` takes an
# optional initial state `(h0, c0)`; `None` means zeros. Both $h$ **and** $c$
# are carried from one step to the next. It returns the hidden states of every
# step, the final state `(h_T, c_T)`, and a cache for `lstm_backward`.

# %% solution="lstm_forward"
def lstm_forward(x, Wx, Wh, b, state=None):
    """Run the LSTM over a sequence.

    Args:
        x: inputs, (N, T, D).
        Wx (D, 4H), Wh (H, 4H), b (4H,): the weights.
        state: None (zeros) or a tuple (h0, c0) of (N, H) tensors.

    Returns:
        h: hidden states of every step, (N, T, H).
        (h_T, c_T): the final hidden and cell states, (N, H) each.
        cache: whatever lstm_backward needs.
    """
    h, final, cache = None, None, None
    ### BEGIN SOLUTION
    N, T, _ = x.shape
    H = Wh.shape[0]
    if state is None:
        zeros = torch.zeros(N, H, dtype=x.dtype, device=x.device)
        state = (zeros, zeros)
    h_t, c_t = state
    states, cache = [], []
    for t in range(T):
        h_t, c_t, step_cache = lstm_step_forward(x[:, t], h_t, c_t, Wx, Wh, b)
        states.append(h_t)
        cache.append(step_cache)
    h = torch.stack(states, dim=1)
    final = (h_t, c_t)
    ### END SOLUTION
    return h, final, cache


# %% tests="test_lstm_forward" points=4
torch.manual_seed(6)
N, T, D, H = 2, 5, 3, 4
x = torch.randn(N, T, D, dtype=torch.float64, device=device, requires_grad=True)
Wx, Wh, b = random_lstm_params(D, H)
h, (h_T, c_T), _ = lstm_forward(x, Wx, Wh, b)
assert_shape(h, (N, T, H), name="h", hint="the docstring gives the shape of every input and output")
assert_shape(c_T, (N, H), name="c_T", hint="the docstring gives the shape of every input and output")

lstm = torch_lstm_with_weights(Wx.detach(), Wh.detach(), b.detach())
x_ref = x.detach().clone().requires_grad_(True)
h_expected, (h_T_expected, c_T_expected) = lstm(x_ref)
hint = "carry both h and c from step to step; state=None starts from zeros"
assert_close(h, h_expected, name="hidden states h (state=None)", hint=hint)
assert_close(h_T, h_T_expected[0], name="final hidden state h_T", hint=hint)
assert_close(c_T, c_T_expected[0], name="final cell state c_T", hint=hint)

dh, dc = torch.randn_like(h), torch.randn_like(c_T)
((h * dh).sum() + (c_T * dc).sum()).backward()
((h_expected * dh).sum() + (c_T_expected[0] * dc).sum()).backward()
assert_close(x.grad, x_ref.grad, name="dx (autograd through your forward)", hint=hint)
assert_lstm_cell_grads(lstm, [Wx, Wh, b])

# a given initial state (h0, c0): values and the gradient that reaches it
h0 = torch.randn(N, H, dtype=torch.float64, device=device, requires_grad=True)
c0 = torch.randn(N, H, dtype=torch.float64, device=device, requires_grad=True)
h0_ref, c0_ref = (s.detach().clone().unsqueeze(0).requires_grad_(True) for s in (h0, c0))
with torch.no_grad():
    h_plain, _, _ = lstm_forward(x.detach(), Wx, Wh, b)
h_given, (_, c_T_given), _ = lstm_forward(x.detach(), Wx, Wh, b, (h0, c0))
h_given_ref, (_, c_T_given_ref) = lstm(x.detach(), (h0_ref, c0_ref))
hint_state = "start from the given (h0, c0) when state is not None"
assert_close(h_given, h_given_ref, name="hidden states h from a given (h0, c0)", hint=hint_state)
assert_close(c_T_given, c_T_given_ref[0], name="c_T from a given (h0, c0)", hint=hint_state)
assert (h_given - h_plain).abs().max() > 1e-3, (
    "the hidden states with a given (h0, c0) equal those from zeros; hint: " + hint_state)
((h_given * dh).sum()).backward()
((h_given_ref * dh).sum()).backward()
assert h0.grad is not None and c0.grad is not None, (
    "no gradient reached the initial state (h0, c0); hint: use the given tensors themselves, not copies")
assert_close(h0.grad, h0_ref.grad[0], name="gradient reaching h0", hint=hint_state)
assert_close(c0.grad, c0_ref.grad[0], name="gradient reaching c0", hint=hint_state)
print("lstm_forward matches nn.LSTM: values and gradients, from zeros and from a given (h0, c0).")
### BEGIN HIDDEN TESTS
def _check_lstm_forward(x, state, label):
    """Values and gradients (inputs, weights and the initial state) against nn.LSTM."""
    Wx, Wh, b = random_lstm_params(x.shape[2], H)
    lstm = torch_lstm_with_weights(Wx.detach(), Wh.detach(), b.detach())
    x_mine = x.clone().requires_grad_(True)
    x_ref = x.clone().requires_grad_(True)
    zero_start = state is None
    if zero_start:
        h, (h_T, c_T), _ = lstm_forward(x_mine, Wx, Wh, b)
        h_r, (h_T_r, c_T_r) = lstm(x_ref)
        state_mine = state_ref = None
    else:
        state_mine = tuple(s.clone().requires_grad_(True) for s in state)
        state_ref = tuple(s.clone().unsqueeze(0).requires_grad_(True) for s in state)
        h, (h_T, c_T), _ = lstm_forward(x_mine, Wx, Wh, b, state_mine)
        h_r, (h_T_r, c_T_r) = lstm(x_ref, state_ref)
    assert_close(h, h_r, name=f"h ({label})")
    assert_close(h_T, h_T_r[0], name=f"h_T ({label})")
    assert_close(c_T, c_T_r[0], name=f"c_T ({label})")
    dh, dhT, dcT = torch.randn_like(h), torch.randn_like(h_T), torch.randn_like(c_T)
    ((h * dh).sum() + (h_T * dhT).sum() + (c_T * dcT).sum()).backward()
    ((h_r * dh).sum() + (h_T_r[0] * dhT).sum() + (c_T_r[0] * dcT).sum()).backward()
    assert_close(x_mine.grad, x_ref.grad, name=f"dx ({label})")
    assert_lstm_cell_grads(lstm, [Wx, Wh, b], label=f"({label})")
    if not zero_start:
        assert state_mine[0].grad is not None and state_mine[1].grad is not None, (
            f"no gradient reached the initial state ({label}): use the given (h0, c0)"
        )
        assert_close(state_mine[0].grad, state_ref[0].grad[0], name=f"dh0 ({label})")
        assert_close(state_mine[1].grad, state_ref[1].grad[0], name=f"dc0 ({label})")
    return h


x0 = torch.randn(3, 6, 2, dtype=torch.float64, device=device)
given = (torch.randn(3, H, dtype=torch.float64, device=device), torch.randn(3, H, dtype=torch.float64, device=device))
_check_lstm_forward(x0, given, "given initial state, gradient into it")
_check_lstm_forward(x0, None, "no initial state")
_check_lstm_forward(x0[:, :1], given, "sequence of length one")
_check_lstm_forward(x0[:1], tuple(s[:1] for s in given), "batch of one")
# None means zeros
torch.manual_seed(7)
Wx2, Wh2, b2 = random_lstm_params(2, H)
with torch.no_grad():
    h_none, (_, c_none), _ = lstm_forward(x0, Wx2, Wh2, b2)
    zeros = torch.zeros(3, H, dtype=torch.float64, device=device)
    h_zero, (_, c_zero), _ = lstm_forward(x0, Wx2, Wh2, b2, (zeros, zeros))
assert_close(h_none, h_zero, name="h with state=None vs explicit zeros")
assert_close(c_none, c_zero, name="c_T with state=None vs explicit zeros")
### END HIDDEN TESTS

# %% [markdown]
# ### 3b. Backward, by hand
#
# Now the backward pass of one step, without autograd. A step has two outputs,
# so it receives two upstream gradients, `dh_next` $= \partial L/\partial h_t$ and
# `dc_next` $= \partial L/\partial c_t$, and returns the gradients of its five
# inputs plus `dc_prev`. Walk the forward equations backwards:
#
# 1. $h_t = o \odot \tanh(c_t)$ gives $\;do = dh_t \odot \tanh(c_t)$, and a
#    second path into the cell: the **total** cell gradient is
#    $dc = dc_t + dh_t \odot o \odot (1 - \tanh^2(c_t))$.
# 2. $c_t = f \odot c_{t-1} + i \odot g$ gives $\;df = dc \odot c_{t-1}$,
#    $\;di = dc \odot g$, $\;dg = dc \odot i$, $\;dc_{t-1} = dc \odot f$.
# 3. Through the nonlinearities: $\sigma'(a) = \sigma(a)(1-\sigma(a))$ for
#    $i, f, o$ and $\tanh'(a) = 1 - \tanh^2(a)$ for $g$. Put the four results side
#    by side, **in the order $i, f, g, o$**, to get $da$ of shape $(N, 4H)$.
# 4. $a = x W_x + h_{t-1} W_h + b$ is an affine layer: $dx = da\,W_x^\top$,
#    $dh_{t-1} = da\,W_h^\top$, $dW_x = x^\top da$, $dW_h = h_{t-1}^\top da$,
#    $db = \sum_n da$.
#
# Step 2 is the heart of the LSTM: $dc_{t-1} = dc \odot f$, the gradient passes
# to the previous cell multiplied by the forget gate only.

# %% solution="lstm_step_backward"
def lstm_step_backward(dh_next, dc_next, cache):
    """Backward pass of one LSTM step.

    Args:
        dh_next: dLoss/dh_next, (N, H).
        dc_next: dLoss/dc_next, (N, H) (from the next step's cell; zeros after the last step).
        cache: what lstm_step_forward returned.

    Returns:
        dx (N, D), dh_prev (N, H), dc_prev (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,).
    """
    dx, dh_prev, dc_prev, dWx, dWh, db = None, None, None, None, None, None
    ### BEGIN SOLUTION
    x, h_prev, c_prev, Wx, Wh, i, f, g, o, tanh_c = cache
    do = dh_next * tanh_c
    dc = dc_next + dh_next * o * (1 - tanh_c**2)  # both paths into the cell
    df, di, dg = dc * c_prev, dc * g, dc * i
    dc_prev = dc * f
    da = torch.cat([di * i * (1 - i), df * f * (1 - f), dg * (1 - g**2), do * o * (1 - o)], dim=1)
    dx = da @ Wx.T
    dh_prev = da @ Wh.T
    dWx = x.T @ da
    dWh = h_prev.T @ da
    db = da.sum(dim=0)
    ### END SOLUTION
    return dx, dh_prev, dc_prev, dWx, dWh, db


# %% [markdown]
# The test checks all six gradients against centered differences of
# $\sum (h_t \odot dh_t) + \sum (c_t \odot dc_t)$ (both outputs at once: the
# function passed to `numerical_gradient` returns them side by side), and against
# autograd through `nn.LSTMCell` with the same weights.

# %% tests="test_lstm_step_backward" points=4
torch.manual_seed(11)
N, D, H = 2, 3, 4
x = torch.randn(N, D, dtype=torch.float64, device=device)
h_prev = torch.randn(N, H, dtype=torch.float64, device=device)
c_prev = torch.randn(N, H, dtype=torch.float64, device=device)
Wx, Wh, b = random_lstm_params(D, H, requires_grad=False)
h_next, c_next, cache = lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b)
dh_next, dc_next = torch.randn_like(h_next), torch.randn_like(c_next)
with by_hand("lstm_step_backward", AUTOGRAD):  # autograd is switched off while your backward runs
    grads = lstm_step_backward(dh_next, dc_next, cache)
assert isinstance(grads, tuple) and len(grads) == 6, (
    "lstm_step_backward must return six gradients; hint: dx, dh_prev, dc_prev, dWx, dWh, db")


def both_outputs(*args):
    """h_next and c_next side by side, (N, 2H): one function of all inputs for numerical_gradient."""
    h, c, _ = lstm_step_forward(*args)
    return torch.cat([h, c], dim=1)


inputs = [x, h_prev, c_prev, Wx, Wh, b]
upstream = torch.cat([dh_next, dc_next], dim=1)
names = ["dx", "dh_prev", "dc_prev", "dWx", "dWh", "db"]
hints = {
    "dx": "da @ Wx.T, with da in the gate order i, f, g, o",
    "dh_prev": "da @ Wh.T",
    "dc_prev": "dc_prev = dc * f, where dc includes dc_next AND the path through h = o * tanh(c)",
    "dWx": "x.T @ da",
    "dWh": "h_prev.T @ da",
    "db": "sum da over the batch",
}
for k, (name, mine) in enumerate(zip(names, grads)):
    def f_k(v, k=k):
        return both_outputs(*[v if j == k else inputs[j] for j in range(6)])
    num = numerical_gradient(f_k, inputs[k], upstream)
    assert_shape(mine, tuple(num.shape), name=name, hint="the docstring gives the shape of every input and output")
    error = rel_error(mine, num)
    print(f"{name:8s} relative error {error:.1e}")
    assert error < 1e-6, (f"{name}: relative error {error:.1e} against the numerical gradient is too large; "
                          f"hint: {hints[name]}")

# the same step in nn.LSTMCell, gradients by autograd
cell = torch_lstm_cell_with_weights(Wx, Wh, b)
x_ref, h_ref, c_ref = (t.clone().requires_grad_(True) for t in (x, h_prev, c_prev))
h_out, c_out = cell(x_ref, (h_ref, c_ref))
((h_out * dh_next).sum() + (c_out * dc_next).sum()).backward()
weight_ih, weight_hh, bias_ih, _ = torch_parameters(cell)
for name, mine, ref in zip(names, grads, [x_ref.grad, h_ref.grad, c_ref.grad, weight_ih.grad.T, weight_hh.grad.T,
                                          bias_ih.grad]):
    assert_close(mine, ref, name=f"{name} vs nn.LSTMCell", hint=hints[name])
print("lstm_step_backward passes the gradient check and matches autograd through nn.LSTMCell.")
### BEGIN HIDDEN TESTS
# batch of one, non-square sizes, large weights (saturated gates), against nn.LSTMCell
x1 = torch.randn(1, 5, dtype=torch.float64, device=device)
h1 = torch.randn(1, 3, dtype=torch.float64, device=device)
c1 = torch.randn(1, 3, dtype=torch.float64, device=device)
Wx1, Wh1, b1 = (2 * p for p in random_lstm_params(5, 3, requires_grad=False))
_, _, cache1 = lstm_step_forward(x1, h1, c1, Wx1, Wh1, b1)
dh1, dc1 = torch.randn(1, 3, dtype=torch.float64, device=device), torch.randn(1, 3, dtype=torch.float64, device=device)
with by_hand("lstm_step_backward", AUTOGRAD):
    mine1 = lstm_step_backward(dh1, dc1, cache1)
cell1 = torch_lstm_cell_with_weights(Wx1, Wh1, b1)
refs = [t.clone().requires_grad_(True) for t in (x1, h1, c1)]
ho, co = cell1(refs[0], (refs[1], refs[2]))
((ho * dh1).sum() + (co * dc1).sum()).backward()
wi, wh, bi, _ = torch_parameters(cell1)
for name, m, r in zip(names, mine1, [refs[0].grad, refs[1].grad, refs[2].grad, wi.grad.T, wh.grad.T, bi.grad]):
    assert_close(m, r, name=f"{name} (batch of one, saturated gates)")
# only dc_next (dh_next = 0): the cell path alone
with by_hand("lstm_step_backward", AUTOGRAD):
    mine2 = lstm_step_backward(torch.zeros_like(dh1), dc1, cache1)
refs2 = [t.clone().requires_grad_(True) for t in (x1, h1, c1)]
cell1.zero_grad()
_, co2 = cell1(refs2[0], (refs2[1], refs2[2]))
(co2 * dc1).sum().backward()
assert_close(mine2[2], refs2[2].grad, name="dc_prev from dc_next alone")
assert_close(mine2[0], refs2[0].grad, name="dx from dc_next alone")
### END HIDDEN TESTS

# %% [markdown]
# Over a sequence, backpropagation through time runs the step backward in
# reverse order, as `rnn_backward` did, now with **two** gradients carried from
# step $t+1$ to step $t$: the one into $h_t$ (added to the upstream `dh[:, t]`)
# and the one into $c_t$ (which has no upstream gradient of its own: the loss
# sees only $h$). At the last step nothing comes from the future: both start at
# zero. The weights are shared, so their gradients are summed over the steps.
# `lstm_backward` also returns `dh0` and `dc0`, the gradients reaching the
# initial state.

# %% solution="lstm_backward"
def lstm_backward(dh, cache):
    """Backpropagation through time for the LSTM.

    Args:
        dh: upstream gradients of every hidden state, (N, T, H) (the loss depends on h only).
        cache: what lstm_forward returned.

    Returns:
        dx (N, T, D), dh0 (N, H), dc0 (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,).
    """
    dx, dh0, dc0, dWx, dWh, db = None, None, None, None, None, None
    ### BEGIN SOLUTION
    N, T, H = dh.shape
    dx_steps = [None] * T
    dWx, dWh, db = 0, 0, 0
    dh_carry = torch.zeros_like(dh[:, 0])  # gradient reaching h_t from step t+1
    dc_carry = torch.zeros_like(dh[:, 0])  # gradient reaching c_t from step t+1
    for t in reversed(range(T)):
        dx_t, dh_carry, dc_carry, dWx_t, dWh_t, db_t = lstm_step_backward(dh[:, t] + dh_carry, dc_carry, cache[t])
        dx_steps[t] = dx_t
        dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
    dx = torch.stack(dx_steps, dim=1)
    dh0, dc0 = dh_carry, dc_carry
    ### END SOLUTION
    return dx, dh0, dc0, dWx, dWh, db


# %% tests="test_lstm_backward" points=4
torch.manual_seed(12)
N, T, D, H = 2, 4, 3, 3
x = torch.randn(N, T, D, dtype=torch.float64, device=device)
h0 = torch.randn(N, H, dtype=torch.float64, device=device)
c0 = torch.randn(N, H, dtype=torch.float64, device=device)
Wx, Wh, b = random_lstm_params(D, H, requires_grad=False)
h, _, cache = lstm_forward(x, Wx, Wh, b, (h0, c0))
dh = torch.randn_like(h)
with by_hand("lstm_backward", AUTOGRAD):  # autograd is switched off while your backward runs
    grads = lstm_backward(dh, cache)
assert isinstance(grads, tuple) and len(grads) == 6, (
    "lstm_backward must return six gradients; hint: dx, dh0, dc0, dWx, dWh, db")
dx, dh0, dc0, dWx, dWh, db = grads
for name, mine, num, hint in [
    ("dx", dx, numerical_gradient(lambda v: lstm_forward(v, Wx, Wh, b, (h0, c0))[0], x, dh),
     "add the gradient carried from step t+1 to dh[:, t]; carry dc too"),
    ("dc0", dc0, numerical_gradient(lambda v: lstm_forward(x, Wx, Wh, b, (h0, v))[0], c0, dh),
     "the cell gradient must be carried from step to step (dc_prev of step t is dc_next of step t-1)"),
    ("dWh", dWh, numerical_gradient(lambda v: lstm_forward(x, Wx, v, b, (h0, c0))[0], Wh, dh),
     "the weights are shared: sum their gradient over all steps"),
]:
    assert_shape(mine, tuple(num.shape), name=name, hint="the docstring gives the shape of every input and output")
    error = rel_error(mine, num)
    print(f"{name:4s} relative error {error:.1e}")
    assert error < 1e-6, (f"{name}: relative error {error:.1e} against the numerical gradient is too large; "
                          f"hint: {hint}")

# the same weights and initial state in nn.LSTM; autograd gives the reference gradients
lstm = torch_lstm_with_weights(Wx, Wh, b)
x_ref = x.clone().requires_grad_(True)
h0_ref, c0_ref = (s.clone().unsqueeze(0).requires_grad_(True) for s in (h0, c0))
out, _ = lstm(x_ref, (h0_ref, c0_ref))
out.backward(dh)
weight_ih, weight_hh, bias_ih, _ = torch_parameters(lstm)
for name, mine, ref, hint in [
    ("dx", dx, x_ref.grad, "carry dh and dc backwards through time"),
    ("dh0", dh0, h0_ref.grad[0], "dh0 is the h-gradient that leaves the first step"),
    ("dc0", dc0, c0_ref.grad[0], "dc0 is the c-gradient that leaves the first step"),
    ("dWx", dWx, weight_ih.grad.T, "sum over all steps"),
    ("dWh", dWh, weight_hh.grad.T, "sum over all steps"),
    ("db", db, bias_ih.grad, "sum over all steps"),
]:
    assert_close(mine, ref, name=f"{name} vs nn.LSTM", hint=hint)
print("lstm_backward matches the numerical gradients and nn.LSTM (dx, dh0, dc0 and the weights).")
### BEGIN HIDDEN TESTS
def _check_lstm_backward(x, h0, c0, dout, label):
    Wx, Wh, b = random_lstm_params(x.shape[2], h0.shape[1], requires_grad=False)
    h, _, cache = lstm_forward(x, Wx, Wh, b, (h0, c0))
    with by_hand("lstm_backward", AUTOGRAD):
        mine = lstm_backward(dout, cache)
    lstm = torch_lstm_with_weights(Wx, Wh, b)
    xr = x.clone().requires_grad_(True)
    hr, cr = (s.clone().unsqueeze(0).requires_grad_(True) for s in (h0, c0))
    out, _ = lstm(xr, (hr, cr))
    out.backward(dout)
    wi, wh, bi, _ = torch_parameters(lstm)
    for name, m, r in zip(["dx", "dh0", "dc0", "dWx", "dWh", "db"], mine,
                          [xr.grad, hr.grad[0], cr.grad[0], wi.grad.T, wh.grad.T, bi.grad]):
        assert_close(m, r, name=f"{name} ({label})")


x7 = torch.randn(3, 7, 2, dtype=torch.float64, device=device)
s7 = [torch.randn(3, 4, dtype=torch.float64, device=device) for _ in range(2)]
_check_lstm_backward(x7, *s7, torch.randn(3, 7, 4, dtype=torch.float64, device=device), "longer sequence")
_check_lstm_backward(x7[:, :1], *s7, torch.randn(3, 1, 4, dtype=torch.float64, device=device), "length one")
_check_lstm_backward(x7[:1], *(s[:1] for s in s7), torch.randn(1, 7, 4, dtype=torch.float64, device=device),
                     "batch of one")
last_only = torch.zeros(3, 7, 4, dtype=torch.float64, device=device)
last_only[:, -1] = torch.randn(3, 4, dtype=torch.float64, device=device)
_check_lstm_backward(x7, *s7, last_only, "loss on the last state only")
### END HIDDEN TESTS

# %% [markdown]
# ### 3c. Where the gradient goes: your RNN and your LSTM side by side
#
# With both backward passes written by hand we can look inside BPTT. Below, a
# loss depends on the **last** hidden state only ($dh$ is zero except at step
# $T$), and we plot how large the gradient reaching each input $x_t$ is, from
# your `rnn_backward` and `lstm_backward`, for $T = 60$: the RNN with weights of
# the scale PyTorch initialises with, a default LSTM (forget-gate bias 0, so
# $f \approx 0.5$) and an LSTM whose forget-gate bias is 3 ($f \approx 0.95$).

# %%
require_written(rnn_forward, rnn_backward, lstm_forward, lstm_backward)
T_long, D_in, H_hid = 60, 8, 32
generator = torch.Generator().manual_seed(0)


def uniform(*shape, bound):
    """Uniform(-bound, bound) on `device`, float64: PyTorch's initialisation of RNN weights."""
    return ((2 * torch.rand(*shape, generator=generator, dtype=torch.float64) - 1) * bound).to(device)


bound = 1 / math.sqrt(H_hid)
x_long = torch.randn(4, T_long, D_in, generator=generator, dtype=torch.float64).to(device)
zeros_state = torch.zeros(4, H_hid, dtype=torch.float64, device=device)
per_step = {}

h_rnn, cache_rnn = rnn_forward(x_long, zeros_state, uniform(D_in, H_hid, bound=bound),
                               uniform(H_hid, H_hid, bound=bound), uniform(H_hid, bound=bound))
d_last = torch.zeros_like(h_rnn)
d_last[:, -1].fill_(1.0)  # a loss on the last hidden state only: sum(h_T)
per_step["RNN"] = rnn_backward(d_last, cache_rnn)[0].norm(dim=2).mean(dim=0)

Wx_l, Wh_l = uniform(D_in, 4 * H_hid, bound=bound), uniform(H_hid, 4 * H_hid, bound=bound)
for label, forget_bias in [("LSTM, forget bias 0", 0.0), ("LSTM, forget bias 3", 3.0)]:
    b_l = torch.zeros(4 * H_hid, dtype=torch.float64, device=device)
    b_l[H_hid : 2 * H_hid] = forget_bias
    h_lstm, _, cache_lstm = lstm_forward(x_long, Wx_l, Wh_l, b_l)
    per_step[label] = lstm_backward(d_last, cache_lstm)[0].norm(dim=2).mean(dim=0)

plt.figure(figsize=(6.5, 4))
steps = torch.arange(1, T_long + 1)
for label, norms in per_step.items():
    plt.semilogy(steps, norms.cpu(), label=label)
plt.xlabel("time step t of the input")
plt.ylabel(r"$\|\partial \sum h_T / \partial x_t\|$ (mean over 4 sequences)")
plt.title(f"Gradient reaching each input from a loss at step T={T_long}\n(your rnn_backward and lstm_backward)")
plt.legend()
plt.grid(True, which="major", alpha=0.3)
plt.show()
for label, norms in per_step.items():
    print(f"{label:20s} at t=T: {norms[-1].item():.1e}   at t=1: {norms[0].item():.1e}   "
          f"ratio {norms[0].item() / norms[-1].item():.1e}")

# %% [markdown]
# *Figure: the norm of the gradient reaching each input $x_t$ from a loss on the
# last hidden state ($T = 60$, random inputs and weights), computed by your
# `rnn_backward` and `lstm_backward`; log scale.*
#
# Read from right to left (backwards in time): each step back multiplies the
# RNN's gradient by $\operatorname{diag}(1-h_t^2)W_h^\top$, and the curve is a
# straight line on the log scale, an exponential decay. The default LSTM decays
# too, because $dc_{t-1} = dc_t \odot f$ with $f \approx 0.5$ halves the cell
# path every step. With $f \approx 0.95$ the cell path loses only about 5% per
# step, and the gradient from 60 steps away is still of the same order as the
# last step's (the printed ratios give the numbers): the first input can still
# be learned from a loss 60 steps later.
#
# ### 3d. A GRU step
#
# A Gated Recurrent Unit merges the cell and hidden state and uses two gates.
# In PyTorch's convention (`nn.GRUCell`, gate order $r, z, n$), with
# $a^x = x W_x + b_x$ and $a^h = h_{t-1} W_h + b_h$ (each $(N, 3H)$, split in three
# blocks of $H$ columns):
#
# $$r = \sigma(a^x_r + a^h_r),\quad z = \sigma(a^x_z + a^h_z),\quad
#   n = \tanh\!\left(a^x_n + r \odot a^h_n\right),\quad
#   h_t = (1 - z) \odot n + z \odot h_{t-1}.$$
#
# Two details matter: the reset gate $r$ multiplies $a^h_n$, which **includes its
# bias** $b_{h,n}$ (this is why a GRU has two biases), and $z$ weighs the **old**
# state ($z = 1$ copies $h_{t-1}$). The GRU needs no separate cell: the
# interpolation $z \odot h_{t-1}$ is its additive path through time. Write the
# forward step here and its backward pass by hand in 3e (section 4 trains GRUs
# with PyTorch's `nn.GRU`). The test compares values and gradients with
# `nn.GRUCell`.

# %% solution="gru_step_forward"
def gru_step_forward(x, h_prev, Wx, Wh, bx, bh):
    """One GRU step (gate order r, z, n, as in PyTorch).

    Args:
        x: (N, D); h_prev: (N, H); Wx: (D, 3H); Wh: (H, 3H); bx, bh: (3H,).

    Returns:
        h_next: (N, H).
    """
    h_next = None
    ### BEGIN SOLUTION
    ax_r, ax_z, ax_n = (x @ Wx + bx).chunk(3, dim=1)
    ah_r, ah_z, ah_n = (h_prev @ Wh + bh).chunk(3, dim=1)
    r = torch.sigmoid(ax_r + ah_r)
    z = torch.sigmoid(ax_z + ah_z)
    n = torch.tanh(ax_n + r * ah_n)
    h_next = (1 - z) * n + z * h_prev
    ### END SOLUTION
    return h_next


# %% tests="test_gru_step_forward" points=2
torch.manual_seed(8)
N, D, H = 3, 4, 5
x = torch.randn(N, D, dtype=torch.float64, device=device, requires_grad=True)
h_prev = torch.randn(N, H, dtype=torch.float64, device=device, requires_grad=True)
gru = nn.GRUCell(D, H).to(device=device, dtype=torch.float64)
with torch.no_grad():
    gru.bias_hh.normal_()  # a bias inside the reset product that a wrong formula cannot hide
Wx, Wh, bx, bh = (p.detach().clone().requires_grad_(True)
                  for p in (gru.weight_ih.T, gru.weight_hh.T, gru.bias_ih, gru.bias_hh))
mine = gru_step_forward(x, h_prev, Wx, Wh, bx, bh)
assert_shape(mine, (N, H), name="GRU h_next", hint="the docstring gives the shape of every input and output")
x_ref, h_ref = x.detach().clone().requires_grad_(True), h_prev.detach().clone().requires_grad_(True)
expected = gru(x_ref, h_ref)
hint = "gate order r, z, n; r multiplies (h_prev @ W_hn + b_hn); h_next = (1 - z) * n + z * h_prev"
assert_close(mine, expected, name="GRU h_next", hint=hint)
dout = torch.randn_like(mine)
(mine * dout).sum().backward()
(expected * dout).sum().backward()
assert_close(h_prev.grad, h_ref.grad, name="gradient reaching h_prev (autograd)", hint=hint)
assert_close(bh.grad, gru.bias_hh.grad, name="gradient of bh (autograd)", hint=hint)
print("gru_step_forward matches nn.GRUCell: values and gradients.")
### BEGIN HIDDEN TESTS
# batch of one, non-square sizes, large weights
gru1 = nn.GRUCell(6, 2).to(device=device, dtype=torch.float64)
with torch.no_grad():
    for p in gru1.parameters():
        p.normal_(0, 2)
x1 = torch.randn(1, 6, dtype=torch.float64, device=device)
h1 = torch.randn(1, 2, dtype=torch.float64, device=device)
with torch.no_grad():
    got = gru_step_forward(x1, h1, gru1.weight_ih.T, gru1.weight_hh.T, gru1.bias_ih, gru1.bias_hh)
    assert_close(got, gru1(x1, h1), name="GRU h_next (batch of one, large weights)")
    # z ~ 1 copies the old state
    bx_keep = torch.zeros(6, dtype=torch.float64, device=device)
    bx_keep[2:4] = 30.0
    kept = gru_step_forward(x1, h1, 0 * gru1.weight_ih.T, 0 * gru1.weight_hh.T, bx_keep,
                            torch.zeros(6, dtype=torch.float64, device=device))
    assert_close(kept, h1, name="GRU with z ~ 1 (must copy h_prev)", atol=1e-8, rtol=0)
### END HIDDEN TESTS


# %% [markdown]
# ### 3e. The GRU step backward, by hand
#
# `gru_step_forward` returns no cache, so `gru_step_backward` gets the step's
# inputs and recomputes the intermediate values it needs ($r$, $z$, $n$ and
# $a^h_n$; a recomputation costs one forward step). Then walk the equations
# backwards, with $dh = \partial L / \partial h_t$:
#
# 1. $h_t = (1 - z) \odot n + z \odot h_{t-1}$ gives $dn = dh \odot (1 - z)$,
#    $dz = dh \odot (h_{t-1} - n)$, and a **direct** path
#    $dh_{t-1} \mathrel{+}= dh \odot z$ (the GRU's additive path).
# 2. $n = \tanh(a^x_n + r \odot a^h_n)$: with $d\nu = dn \odot (1 - n^2)$ the
#    gradient of its pre-activation, $da^x_n = d\nu$, $da^h_n = d\nu \odot r$ and
#    $dr = d\nu \odot a^h_n$.
# 3. Through the sigmoids: $da_r = dr \odot r (1 - r)$ and $da_z = dz \odot z (1 - z)$;
#    they reach both $a^x$ and $a^h$ (the gates add the two).
# 4. $a^x = x W_x + b_x$ and $a^h = h_{t-1} W_h + b_h$ are two affine layers, with
#    $da^x = [da_r, da_z, da^x_n]$ and $da^h = [da_r, da_z, da^h_n]$ (gate order
#    $r, z, n$): $dx = da^x W_x^\top$, $dW_x = x^\top da^x$, $db_x = \sum_n da^x$, and
#    the same for $h_{t-1}$, $W_h$, $b_h$, where $dh_{t-1}$ also gets the direct path of step 1.
#
# The two biases get different gradients: $b_{h,n}$ sits inside the reset
# product, so its gradient carries the factor $r$ and $b_{x,n}$'s does not.
# As for the LSTM, the test runs your function with autograd switched off and
# compares all six gradients with autograd through `nn.GRUCell` in float64.

# %% solution="gru_step_backward"
def gru_step_backward(dh_next, x, h_prev, Wx, Wh, bx, bh):
    """Backward pass of one GRU step (gate order r, z, n), recomputing the forward values.

    Args:
        dh_next: dLoss/dh_next, (N, H).
        x, h_prev, Wx, Wh, bx, bh: the inputs of gru_step_forward.

    Returns:
        dx (N, D), dh_prev (N, H), dWx (D, 3H), dWh (H, 3H), dbx (3H,), dbh (3H,).
    """
    dx, dh_prev, dWx, dWh, dbx, dbh = None, None, None, None, None, None
    ### BEGIN SOLUTION
    ax_r, ax_z, ax_n = (x @ Wx + bx).chunk(3, dim=1)
    ah_r, ah_z, ah_n = (h_prev @ Wh + bh).chunk(3, dim=1)
    r = torch.sigmoid(ax_r + ah_r)
    z = torch.sigmoid(ax_z + ah_z)
    n = torch.tanh(ax_n + r * ah_n)
    dn = dh_next * (1 - z)
    dz = dh_next * (h_prev - n)
    d_pre_n = dn * (1 - n**2)  # gradient of n's pre-activation a^x_n + r * a^h_n
    dr = d_pre_n * ah_n
    da_r = dr * r * (1 - r)
    da_z = dz * z * (1 - z)
    dax = torch.cat([da_r, da_z, d_pre_n], dim=1)
    dah = torch.cat([da_r, da_z, d_pre_n * r], dim=1)
    dx = dax @ Wx.T
    dWx = x.T @ dax
    dbx = dax.sum(dim=0)
    dh_prev = dh_next * z + dah @ Wh.T  # the direct path and the path through the gates
    dWh = h_prev.T @ dah
    dbh = dah.sum(dim=0)
    ### END SOLUTION
    return dx, dh_prev, dWx, dWh, dbx, dbh


# %% tests="test_gru_step_backward" points=4
torch.manual_seed(15)
N, D, H = 3, 4, 5
gru = nn.GRUCell(D, H).to(device=device, dtype=torch.float64)
with torch.no_grad():
    gru.bias_hh.normal_()  # a bias inside the reset product that a wrong formula cannot hide
x = torch.randn(N, D, dtype=torch.float64, device=device)
h_prev = torch.randn(N, H, dtype=torch.float64, device=device)
weights = [p.detach().clone() for p in (gru.weight_ih.T, gru.weight_hh.T, gru.bias_ih, gru.bias_hh)]
dh_next = torch.randn(N, H, dtype=torch.float64, device=device)
with by_hand("gru_step_backward", AUTOGRAD):  # autograd is switched off while your backward runs
    grads = gru_step_backward(dh_next, x, h_prev, *weights)
assert isinstance(grads, tuple) and len(grads) == 6, (
    "gru_step_backward must return six gradients; hint: dx, dh_prev, dWx, dWh, dbx, dbh")

# the reference: autograd through nn.GRUCell with the same weights, in float64
x_ref, h_ref = x.clone().requires_grad_(True), h_prev.clone().requires_grad_(True)
(gru(x_ref, h_ref) * dh_next).sum().backward()
names = ["dx", "dh_prev", "dWx", "dWh", "dbx", "dbh"]
hints = {
    "dx": "dx = da^x @ Wx.T, with da^x = [da_r, da_z, d(pre-activation of n)] in the order r, z, n",
    "dh_prev": "dh_prev = dh_next * z (the direct path) + da^h @ Wh.T",
    "dWx": "x.T @ da^x",
    "dWh": "h_prev.T @ da^h, where the n block of da^h is multiplied by r",
    "dbx": "sum da^x over the batch",
    "dbh": "b_hn sits inside the reset product: its gradient is d(pre-activation of n) * r",
}
references = [x_ref.grad, h_ref.grad, gru.weight_ih.grad.T, gru.weight_hh.grad.T, gru.bias_ih.grad, gru.bias_hh.grad]
for name, mine, ref in zip(names, grads, references):
    assert_shape(mine, tuple(ref.shape), name=name, hint="the docstring gives the shape of every input and output")
    assert_close(mine, ref, name=f"{name} vs nn.GRUCell", hint=hints[name])
print("gru_step_backward matches autograd through nn.GRUCell (all six gradients).")
### BEGIN HIDDEN TESTS
# batch of one, non-square sizes, large weights (saturated gates)
gru1 = nn.GRUCell(6, 2).to(device=device, dtype=torch.float64)
with torch.no_grad():
    for p in gru1.parameters():
        p.normal_(0, 2)
x1 = torch.randn(1, 6, dtype=torch.float64, device=device)
h1 = torch.randn(1, 2, dtype=torch.float64, device=device)
dh1 = torch.randn(1, 2, dtype=torch.float64, device=device)
weights1 = [p.detach().clone() for p in (gru1.weight_ih.T, gru1.weight_hh.T, gru1.bias_ih, gru1.bias_hh)]
with by_hand("gru_step_backward", AUTOGRAD):
    mine1 = gru_step_backward(dh1, x1, h1, *weights1)
x1_ref, h1_ref = x1.clone().requires_grad_(True), h1.clone().requires_grad_(True)
(gru1(x1_ref, h1_ref) * dh1).sum().backward()
refs1 = [x1_ref.grad, h1_ref.grad, gru1.weight_ih.grad.T, gru1.weight_hh.grad.T, gru1.bias_ih.grad, gru1.bias_hh.grad]
for name, m, r in zip(names, mine1, refs1):
    assert_close(m, r, name=f"{name} (batch of one, large weights)")
### END HIDDEN TESTS
# %% [markdown]
# ## 4. Sequences of different lengths: real name or shuffled letters?
#
# Real data comes in different lengths: sentences, recordings, names. A batch
# is one rectangular tensor, so shorter sequences are **padded** to the length of
# the longest, and from then on every operation must make sure the padding
# changes nothing. This section does that on a small classification task with a
# twist:
#
# > Given a string of letters, is it a **real name** from the US census lists
# > (`jennifer`, `washington`), or the **same letters shuffled** (`fnenirej`)?
#
# A name and its shuffle contain exactly the same letters, so a model that only
# counts letters (a "bag of characters") can do no better than chance: the
# answer is entirely in the **order**, which is what a recurrent network reads.
# The data is the offline names corpus the course ships (`load_text("names")`:
# US census first and last names; the cell below prints how many), so the
# numbers below are real results, on any machine.
#
# Each name is used once, either as it is (label 1) or shuffled (label 0), with
# probability 1/2; names are split into **train** (for the weights),
# **validation** (to compare models and choose epochs) and **test** (used once,
# at the very end). Names shorter than 3 letters or made of one repeated letter
# are left out (they cannot be shuffled into something different).

# %%
names_text = load_text("names")
all_names = [n for n in names_text.split("\n") if len(n) >= 3 and len(set(n)) >= 2]
split_rng = random.Random(0)


def shuffle_letters(name, rng):
    """The letters of `name` in a random order that differs from the name."""
    while True:
        letters = list(name)
        rng.shuffle(letters)
        if "".join(letters) != name:
            return "".join(letters)


examples = [(n, 1) if split_rng.random() < 0.5 else (shuffle_letters(n, split_rng), 0) for n in all_names]
n_train = dlcourse.budget(full=24000, grading=256)
n_eval = dlcourse.budget(full=4000, grading=128)
train_set = examples[:n_train]
val_set = examples[n_train : n_train + n_eval]
test_set = examples[n_train + n_eval : n_train + 2 * n_eval]  # not looked at until the very end
print(f"{len(all_names):,} usable names; train {len(train_set):,}, validation {len(val_set):,}, "
      f"test {len(test_set):,} (each name in one split only)")
print("examples:", ", ".join(f"{s} ({'real' if y else 'shuffled'})" for s, y in train_set[:6]))

# %% [markdown]
# Letters become ids 1 to 26; id 0 is reserved for padding. `make_batch` pads a
# list of examples with `torch.nn.utils.rnn.pad_sequence` and returns the ids
# $(N, T_{\max})$, the true lengths $(N,)$ and the labels $(N,)$:

# %%
PAD = 0
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def encode_name(name):
    return torch.tensor([LETTERS.index(ch) + 1 for ch in name], dtype=torch.long)


def make_batch(batch_examples, extra_padding=0):
    """(ids (N, T_max + extra_padding), lengths (N,), labels (N,)); lengths and labels stay on the CPU."""
    seqs = [encode_name(s) for s, _ in batch_examples]
    ids = pad_sequence(seqs, batch_first=True, padding_value=PAD)
    if extra_padding:
        ids = F.pad(ids, (0, extra_padding), value=PAD)
    lengths = torch.tensor([len(s) for s in seqs])
    labels = torch.tensor([y for _, y in batch_examples])
    return ids, lengths, labels


demo_ids, demo_lengths, demo_labels = make_batch(train_set[:4])
print(demo_ids)
print("lengths:", demo_lengths.tolist(), " labels:", demo_labels.tolist())

# %% [markdown]
# ### 4a. A mean over the real steps only
#
# To turn a sequence of hidden states $(N, T, H)$ into one vector per sequence,
# a common choice is their mean over time. With padding, a plain
# `.mean(dim=1)` is wrong twice: it averages in the padded positions and it
# divides by $T_{\max}$ instead of the true length, so the same name gets a
# different vector depending on the longest name in its batch. The **masked
# mean** uses only the real steps $t < \ell_n$:
#
# $$\bar v_n = \frac{1}{\ell_n}\sum_{t=0}^{\ell_n - 1} v_{n,t}.$$
#
# The same function gives a **masked loss**: with per-step losses $(N, T)$
# (a model that predicts something at every step of a padded batch),
# `masked_mean(losses, lengths)` is each sequence's mean loss over its real steps.
#
# Write `masked_mean` for `values` of shape $(N, T)$ or $(N, T, \dots)$ and
# integer `lengths` $(N,)$ with $1 \le \ell_n \le T$. Requirements the tests
# check: whatever is stored in the padded positions (not necessarily zeros)
# must not change the result, nor must the number of padded columns; `lengths`
# may sit on the CPU while `values` are on the GPU (`pack_padded_sequence`
# wants CPU lengths); and no gradient may reach the padded positions. Build a
# boolean mask with `torch.arange(T) < lengths[:, None]` and use
# `torch.where`, without a Python loop over the batch.

# %% solution="masked_mean"
def masked_mean(values, lengths):
    """Mean over the real time steps of each sequence.

    Args:
        values: (N, T) or (N, T, ...) floats; positions t >= lengths[n] are padding (any values).
        lengths: (N,) integers, 1 <= lengths[n] <= T, on any device.

    Returns:
        (N,) or (N, ...), the dtype of values: values[n, :lengths[n]].mean(dim=0) for every n.
    """
    ### BEGIN SOLUTION
    lengths = lengths.to(values.device)
    mask = torch.arange(values.shape[1], device=values.device)[None, :] < lengths[:, None]  # (N, T)
    extra = (1,) * (values.dim() - 2)
    mask = mask.view(*mask.shape, *extra)
    total = torch.where(mask, values, torch.zeros((), dtype=values.dtype, device=values.device)).sum(dim=1)
    return total / lengths.view(-1, *extra).to(values.dtype)
    ### END SOLUTION


# %% tests="test_masked_mean" points=3
torch.manual_seed(13)
lengths = torch.tensor([3, 1, 5, 2])  # on the CPU, as pack_padded_sequence wants them
N, T, H = 4, 5, 3
values = torch.randn(N, T, H, dtype=torch.float64, device=device)
for n, length in enumerate(lengths.tolist()):
    values[n, length:] = 100.0 * torch.randn(T - length, H, dtype=torch.float64, device=device)  # garbage padding
got = masked_mean(values, lengths)
assert_shape(got, (N, H), name="masked_mean of (N, T, H)", hint="the docstring gives the shape of every input and output")
expected = torch.stack([values[n, :length].mean(dim=0) for n, length in enumerate(lengths.tolist())])
hint = "use only t < lengths[n], and divide by lengths[n], not by T"
assert_close(got, expected, name="masked_mean vs a loop over the real lengths", hint=hint)

# more padding columns (with other garbage) change nothing
wider = torch.cat([values, 50.0 * torch.randn(N, 4, H, dtype=torch.float64, device=device)], dim=1)
assert_close(masked_mean(wider, lengths), expected, name="masked_mean with 4 more padded columns", hint=hint)

# a masked loss: per-step losses (N, T), mean over the real steps of each sequence
losses = torch.rand(N, T, dtype=torch.float64, device=device)
losses[0, 3:] = float(1e6)
loss_expected = torch.stack([losses[n, :length].mean() for n, length in enumerate(lengths.tolist())])
assert_close(masked_mean(losses, lengths), loss_expected, name="masked loss on (N, T) values", hint=hint)

# no gradient reaches the padding
values_grad = values.clone().requires_grad_(True)
masked_mean(values_grad, lengths).sum().backward()
padded = torch.arange(T)[None, :] >= lengths[:, None]
assert float(values_grad.grad[padded.to(device)].abs().max()) == 0.0, (
    "a gradient reaches the padded positions; hint: select with torch.where (or multiply by the mask) "
    "before summing")
assert_close(values_grad.grad[0, 0], torch.full((H,), 1 / 3, dtype=torch.float64, device=device),
             name="gradient at a real step of a length-3 sequence", hint="each real step gets 1 / lengths[n]")
got32 = masked_mean(values.float(), lengths)
assert got32.dtype == torch.float32, (f"masked_mean of float32 values returned {got32.dtype}; "
                                      "hint: divide by the lengths converted to the values' dtype")
print("masked_mean: same result for any padding, a masked loss, and no gradient into the padding.")
### BEGIN HIDDEN TESTS
# every sequence full length (no padding): the plain mean
full = torch.randn(3, 4, 2, dtype=torch.float64, device=device)
assert_close(masked_mean(full, torch.tensor([4, 4, 4])), full.mean(dim=1), name="masked_mean without padding")
# length one everywhere: the first step
assert_close(masked_mean(full, torch.tensor([1, 1, 1])), full[:, 0], name="masked_mean with lengths 1")
# a batch of one, 4-D values, lengths on the same device as the values
four_d = torch.randn(1, 6, 2, 3, dtype=torch.float64, device=device)
assert_close(masked_mean(four_d, torch.tensor([4], device=device)), four_d[:, :4].mean(dim=1),
             name="masked_mean of (1, T, 2, 3) values")
# float32 values keep their dtype
f32 = torch.randn(2, 3, device=device)
out32 = masked_mean(f32, torch.tensor([2, 3]))
assert out32.dtype == torch.float32, "masked_mean must keep the dtype of the values"
assert_close(out32, torch.stack([f32[0, :2].mean(), f32[1].mean()]), name="masked_mean (float32, 2-D)")
### END HIDDEN TESTS

# %% [markdown]
# ### 4b. Packing: the recurrence must stop at the real end
#
# The mean is half of the problem. An RNN run over a padded batch keeps
# stepping through the padding, so its "final" state `out[:, -1]` is the state
# after reading several pad tokens, not after the last letter. PyTorch's
# answer is a **packed sequence**: `pack_padded_sequence(embedded, lengths,
# batch_first=True, enforce_sorted=False)` lays out only the real steps (sorted
# by length, so that each time step processes the sequences still running),
# `nn.RNN`, `nn.GRU` and `nn.LSTM` accept it directly, and their final state
# is then the state after each sequence's own last letter. `pad_packed_sequence(
# packed_out, batch_first=True, total_length=T)` turns the outputs back into a
# padded $(N, T, H)$ tensor, with zeros in the padding (and both restore the
# original order of the batch). The lengths must be a CPU tensor.
#
# Write `forward` of `NameClassifier`: embed the ids, pack, run `self.rnn`
# (an `nn.RNN`, `nn.GRU` or `nn.LSTM`, batch-first, one layer: an LSTM returns
# `(h_n, c_n)` as its state, the other two just `h_n`, each $(1, N, H)$), and
# classify the concatenation of two summaries of the sequence, $(N, 2H)$: the
# final hidden state $h_n$ and the `masked_mean` of the outputs over the real
# steps. The tests check, for all three cells, that the logits equal those of
# each name run **alone, without padding**, and that extra padding changes
# nothing.

# %% solution="NameClassifier"
class NameClassifier(nn.Module):
    """Embedding -> packed RNN/GRU/LSTM -> [final h, masked mean of the outputs] -> linear."""

    def __init__(self, vocab_size=27, num_classes=2, embed_dim=16, hidden_size=64, cell="lstm"):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        self.rnn = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cell](embed_dim, hidden_size, batch_first=True)
        self.head = nn.Linear(2 * hidden_size, num_classes)

    def forward(self, ids, lengths):
        """ids: (N, T) letter ids padded with PAD; lengths: (N,) true lengths, on any device (packing needs
        them on the CPU). Returns logits (N, num_classes)."""
        logits = None
        ### BEGIN SOLUTION
        packed = pack_padded_sequence(self.embedding(ids), lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed_out, hidden = self.rnn(packed)
        h_n = hidden[0] if isinstance(hidden, tuple) else hidden  # an LSTM's state is (h_n, c_n)
        out, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=ids.shape[1])
        features = torch.cat([h_n[-1], masked_mean(out, lengths)], dim=1)
        logits = self.head(features)
        ### END SOLUTION
        return logits


# %% tests="test_name_classifier" points=3
torch.manual_seed(14)
batch_names = [("ann", 1), ("bob", 0), ("christina", 1), ("dw", 0), ("eve", 1)]
for cell in ["rnn", "gru", "lstm"]:
    model = NameClassifier(cell=cell, embed_dim=5, hidden_size=6).to(device=device, dtype=torch.float64).eval()
    ids, lengths, _ = make_batch(batch_names)
    with torch.no_grad():
        logits = model(ids.to(device), lengths)
        assert_shape(logits, (len(batch_names), 2), name=f"logits ({cell})", hint="the docstring gives the shape of every input and output")
        # each name alone, no padding at all: the reference
        alone = []
        for name, _ in batch_names:
            out, hidden = model.rnn(model.embedding(encode_name(name).to(device)[None]))
            h_n = hidden[0] if cell == "lstm" else hidden
            alone.append(model.head(torch.cat([h_n[-1], out.mean(dim=1)], dim=1))[0])
        hint = ("pack with pack_padded_sequence(..., lengths.cpu(), batch_first=True, enforce_sorted=False); "
                "take h_n (for an LSTM the first element of its state) and the masked_mean of the outputs")
        assert_close(logits, torch.stack(alone), name=f"logits of a padded batch vs each name alone ({cell})",
                     hint=hint)
        ids_wide, lengths_wide, _ = make_batch(batch_names, extra_padding=3)
        # lengths on the model's device this time (packing needs a CPU copy)
        assert_close(model(ids_wide.to(device), lengths_wide.to(device)), logits,
                     name=f"logits with 3 more padded columns, lengths on {device} ({cell})", hint=hint)
print("NameClassifier: for RNN, GRU and LSTM, padding changes nothing and each name is read to its own end.")
### BEGIN HIDDEN TESTS
# a batch of one, lengths on the model's device, and a batch where every name has the same length
for cell in ["lstm", "gru"]:
    model = NameClassifier(cell=cell, embed_dim=4, hidden_size=3).to(device=device, dtype=torch.float64).eval()
    with torch.no_grad():
        one_ids, one_len, _ = make_batch([("margaret", 1)], extra_padding=2)
        out, hidden = model.rnn(model.embedding(encode_name("margaret").to(device)[None]))
        h_n = hidden[0] if cell == "lstm" else hidden
        ref = model.head(torch.cat([h_n[-1], out.mean(dim=1)], dim=1))
        assert_close(model(one_ids.to(device), one_len.to(device)), ref, name=f"batch of one, padded ({cell})")
        same_ids, same_len, _ = make_batch([("abc", 1), ("cab", 0), ("bca", 0)])
        outs, hid = model.rnn(model.embedding(same_ids.to(device)))
        h_last = hid[0] if cell == "lstm" else hid
        assert_close(model(same_ids.to(device), same_len), model.head(torch.cat([h_last[-1], outs.mean(1)], 1)),
                     name=f"equal lengths ({cell})")
### END HIDDEN TESTS

# %% [markdown]
# ### 4c. Training and choosing a model on the validation split
#
# We train four models for the same number of epochs on the same batches: a
# `NameClassifier` with each of the three cells, and a **bag-of-characters**
# baseline (the masked mean of the letter embeddings, then a linear layer: it
# sees which letters occur, not their order). After every epoch each model is
# scored on the **validation** split, and each keeps the weights of its best
# validation epoch. The model with the best validation accuracy is the one we
# report; the test split is not touched here.

# %%
class BagOfChars(nn.Module):
    """The order-blind baseline: masked mean of the letter embeddings -> linear."""

    def __init__(self, vocab_size=27, num_classes=2, embed_dim=16):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        self.head = nn.Linear(embed_dim, num_classes)

    def forward(self, ids, lengths):
        return self.head(masked_mean(self.embedding(ids), lengths))


def predict(model, data, batch_size=1000):
    """Predicted labels (CPU) for a list of (name, label) examples."""
    model.eval()
    predictions = []
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            ids, lengths, _ = make_batch(data[start : start + batch_size])
            predictions.append(model(ids.to(device), lengths).argmax(dim=1).cpu())
    model.train()
    return torch.cat(predictions)


def accuracy(model, data):
    return (predict(model, data) == torch.tensor([y for _, y in data])).double().mean().item()


def train_classifier(model, train_data, val_data, *, epochs, batch_size=128, lr=3e-3, seed=0):
    """Adam on the cross-entropy; keeps the weights of the best validation epoch. Returns the history."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    order_rng = random.Random(seed)
    history = {"epoch": [], "train_loss": [], "val_acc": []}
    best_acc, best_state = -1.0, None
    for epoch in range(1, epochs + 1):
        order = list(range(len(train_data)))
        order_rng.shuffle(order)
        total, count = 0.0, 0
        for start in range(0, len(order), batch_size):
            ids, lengths, labels = make_batch([train_data[i] for i in order[start : start + batch_size]])
            loss = F.cross_entropy(model(ids.to(device), lengths), labels.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * len(labels), count + len(labels)
        val_acc = accuracy(model, val_data)
        history["epoch"].append(epoch)
        history["train_loss"].append(total / count)
        history["val_acc"].append(val_acc)
        if val_acc > best_acc:
            best_acc, best_state = val_acc, {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return history


# %%
require_written(masked_mean, NameClassifier)
epochs = dlcourse.budget(full=6, grading=1)
classifiers = {
    "bag of characters": BagOfChars(),
    "RNN": NameClassifier(cell="rnn"),
    "GRU": NameClassifier(cell="gru"),
    "LSTM": NameClassifier(cell="lstm"),
}
histories = {}
started = time.perf_counter()
for label, clf in classifiers.items():
    dlcourse.seed_everything(0)
    clf.to(device)
    histories[label] = train_classifier(clf, train_set, val_set, epochs=epochs)
    print(f"{label:18s} best validation accuracy {max(histories[label]['val_acc']):.1%} "
          f"(epoch {histories[label]['val_acc'].index(max(histories[label]['val_acc'])) + 1} of {epochs})")
majority_label = int(sum(y for _, y in train_set) * 2 >= len(train_set))  # the most frequent label in train
majority_val = sum(y == majority_label for _, y in val_set) / len(val_set)
print(f"majority class ('{'real' if majority_label else 'shuffled'}' for every name), validation: {majority_val:.1%}")
print(f"4 models x {epochs} epochs in {time.perf_counter() - started:.0f} s on {device}")
chosen = max(["RNN", "GRU", "LSTM"], key=lambda k: max(histories[k]["val_acc"]))
print(f"chosen on validation accuracy: {chosen}")

# %%
require_written(masked_mean, NameClassifier)
fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 3.5))
for label, hist in histories.items():
    ax_loss.plot(hist["epoch"], hist["train_loss"], marker="o", label=label)
    ax_acc.plot(hist["epoch"], [100 * a for a in hist["val_acc"]], marker="o", label=label)
ax_acc.axhline(100 * majority_val, color="gray", ls="--", label="majority class")
ax_loss.set_xlabel("epoch")
ax_loss.set_ylabel("training cross-entropy (nats)")
ax_loss.set_title("real or shuffled name: training loss")
ax_acc.set_xlabel("epoch")
ax_acc.set_ylabel("validation accuracy (%)")
ax_acc.set_title("validation accuracy (held out from training)")
ax_acc.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# *Figure: training loss (left) and validation accuracy (right) per epoch of the
# four classifiers, on the real-or-shuffled names task (offline names corpus,
# 24,000 training and 4,000 validation names as printed above).*
#
# The bag of characters stays at the majority-class line, as it must: a name
# and its shuffle are the same bag. The three recurrent models separate real
# names from shuffles most of the time; what they use is order, such as which
# letters may follow which (`q` before `u`, vowels and consonants alternating,
# typical endings). Names are short (the per-length plot in 4e shows lengths 3
# to 12), so the vanishing gradient of section 2 has little room to hurt the
# plain RNN here; the gated cells still come out a little ahead (the printed
# best validation accuracies).
#
# ### 4d. What padding does to a model that ignores it
#
# The same trained weights, two ways of reading a padded batch: yours (packed,
# masked mean), and a naive one that runs the recurrent layer over the padded
# ids and takes `out[:, -1]` and `out.mean(dim=1)`. We pad the same validation
# names with $k$ extra padding columns and measure the validation accuracy.

# %%
require_written(masked_mean, NameClassifier)


def naive_logits(model, ids):
    """The chosen model's weights, padding ignored: the RNN runs over the pad tokens too."""
    out, _ = model.rnn(model.embedding(ids))
    return model.head(torch.cat([out[:, -1], out.mean(dim=1)], dim=1))


best_model = classifiers[chosen].eval()
probe = val_set[: dlcourse.budget(full=2000, grading=64)]
probe_labels = torch.tensor([y for _, y in probe])
extra_columns = dlcourse.budget(full=[0, 1, 2, 4, 8, 16, 32], grading=[0, 4])
packed_acc, naive_acc = [], []
with torch.no_grad():
    for k in extra_columns:
        ids, lengths, _ = make_batch(probe, extra_padding=k)
        ids = ids.to(device)
        packed_acc.append((best_model(ids, lengths).argmax(1).cpu() == probe_labels).double().mean().item())
        naive_acc.append((naive_logits(best_model, ids).argmax(1).cpu() == probe_labels).double().mean().item())
plt.figure(figsize=(6, 3.5))
plt.plot(extra_columns, [100 * a for a in packed_acc], marker="o", label="packed + masked mean (yours)")
plt.plot(extra_columns, [100 * a for a in naive_acc], marker="o", label="padding ignored (out[:, -1], plain mean)")
plt.axhline(100 * majority_val, color="gray", ls="--", label="majority class")
plt.xlabel("extra padding columns added to the batch")
plt.ylabel("validation accuracy (%)")
plt.title(f"Effect of padding on the trained {chosen}")
plt.legend()
plt.show()
print("extra columns:      ", extra_columns)
print("packed + masked (%):", [round(100 * a, 1) for a in packed_acc])
print("padding ignored (%):", [round(100 * a, 1) for a in naive_acc])

# %% [markdown]
# *Figure: validation accuracy of the chosen model against the number of extra
# padding columns, read your way (packed, masked mean) and naively (padded ids,
# `out[:, -1]` and a plain mean); same weights, same validation names.*
#
# Yours is a flat line: the prediction for a name does not depend on what else
# is in its batch. The naive reading is already worse with no extra columns (in
# a batch padded to its longest name, most names are followed by pad tokens) and
# drifts towards chance as padding grows, because the final state forgets the
# name while it reads pad tokens, and the plain mean is more and more made of
# padding.
#
# ### 4e. Where the errors are, and inside the LSTM
#
# Validation accuracy of the chosen model per class and per name length: short
# names have few possible orders, and some shuffles of a short name are
# themselves plausible names (or even real ones).

# %%
require_written(masked_mean, NameClassifier)
val_pred = predict(best_model, val_set)
val_true = torch.tensor([y for _, y in val_set])
val_len = torch.tensor([len(s) for s, _ in val_set])
fig, (ax_class, ax_len) = plt.subplots(1, 2, figsize=(11, 3.5), gridspec_kw={"width_ratios": [1, 3]})
class_acc = [(val_pred[val_true == c] == c).double().mean().item() for c in (0, 1)]
ax_class.bar(["shuffled", "real"], [100 * a for a in class_acc], color=["tab:orange", "tab:blue"])
ax_class.set_ylabel("validation accuracy (%)")
ax_class.set_title(f"{chosen}: per class")
lengths_seen = [L for L in range(3, 13) if int(((val_len == L)).sum()) >= 5]
for c, name, color, offset in [(0, "shuffled", "tab:orange", -0.2), (1, "real", "tab:blue", 0.2)]:
    accs = [(val_pred[(val_len == L) & (val_true == c)] == c).double().mean().item() * 100 for L in lengths_seen]
    ax_len.bar([L + offset for L in lengths_seen], accs, width=0.4, color=color, label=name)
ax_len.set_xticks(lengths_seen)
ax_len.set_xlabel("name length (letters)")
ax_len.set_title(f"{chosen}: per class and name length (validation)")
ax_len.legend(loc="lower right")
plt.tight_layout()
plt.show()
print(f"validation accuracy per class: shuffled {class_acc[0]:.1%}, real {class_acc[1]:.1%}")

# %% [markdown]
# *Figure: validation accuracy of the chosen model per class (left) and per class
# and name length (right), on the 4,000 validation names.* The shortest names
# are where it errs most, shuffled ones above all.
#
# Finally, your own LSTM code inside the trained model. `nn.LSTM` keeps the
# weights transposed and two biases; with `Wx = weight_ih_l0.T`,
# `Wh = weight_hh_l0.T` and `b = bias_ih_l0 + bias_hh_l0`, your `lstm_forward`
# computes exactly what the trained layer computes (the cell prints the largest
# difference). From its hidden states we recompute the gates at every letter
# and plot the mean input gate $i$ and forget gate $f$ over the units, for a
# real name and its shuffle.

# %%
require_written(lstm_forward, masked_mean, NameClassifier)
lstm_clf = classifiers["LSTM"].eval()
layer = lstm_clf.rnn
with torch.no_grad():
    Wx_t, Wh_t = layer.weight_ih_l0.T, layer.weight_hh_l0.T
    b_t = layer.bias_ih_l0 + layer.bias_hh_l0
    H_t = layer.hidden_size
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.2), sharey=True)
    for ax, word in zip(axes, ["washington", shuffle_letters("washington", random.Random(3))]):
        emb = lstm_clf.embedding(encode_name(word).to(device)[None])
        h_mine, _, _ = lstm_forward(emb, Wx_t, Wh_t, b_t)
        h_torch, _ = layer(emb)
        h_before = torch.cat([torch.zeros_like(h_mine[:, :1]), h_mine[:, :-1]], dim=1)
        gates = emb @ Wx_t + h_before @ Wh_t + b_t  # (1, T, 4H), order i, f, g, o
        i_gate, f_gate = torch.sigmoid(gates[0, :, :H_t]), torch.sigmoid(gates[0, :, H_t : 2 * H_t])
        p_real = torch.softmax(lstm_clf(encode_name(word).to(device)[None], torch.tensor([len(word)])), dim=1)[0, 1]
        ax.plot(i_gate.mean(dim=1).cpu(), marker="o", label="input gate i (mean over units)")
        ax.plot(f_gate.mean(dim=1).cpu(), marker="o", label="forget gate f (mean over units)")
        ax.set_xticks(range(len(word)), list(word))
        ax.set_title(f"'{word}': P(real) = {p_real.item():.2f}")
        print(f"{word}: largest difference between your lstm_forward and the trained nn.LSTM "
              f"{(h_mine - h_torch).abs().max().item():.1e}")
    axes[0].set_ylabel("gate activation")
    axes[0].legend()
    plt.suptitle("Gates of the trained LSTM classifier, recomputed with your lstm_forward")
    plt.tight_layout()
    plt.show()

# %% [markdown]
# *Figure: the input and forget gates of the trained LSTM classifier, averaged
# over its hidden units, at every letter of one real name and its shuffle
# (recomputed with your `lstm_forward`); the titles give the model's P(real).*
#
# The averages move from letter to letter, so the gates are not constant: the
# network decides at every step how much of what it has read to keep and how much
# of the new letter to write. An average over all units hides what single units
# do, so read no more into the two curves than that (and the example name may be
# one the model was trained on).
#
# ### 4f. The test split, once
#
# Everything above (the number of epochs kept, the choice between RNN, GRU and
# LSTM) was decided on the validation split. Only now, with the choice made, is
# the chosen model scored on the test split, once, beside the majority-class
# baseline on the same split. The test accuracy is the one number to report;
# going back to change the model after looking at it would turn the test split
# into a second validation split.

# %%
require_written(masked_mean, NameClassifier)
test_acc = accuracy(best_model, test_set)
majority_test = sum(y == majority_label for _, y in test_set) / len(test_set)
print(f"TEST (used once): {chosen} {test_acc:.1%} accuracy on {len(test_set):,} held-out names; "
      f"majority class {majority_test:.1%}; bag of characters {accuracy(classifiers['bag of characters'], test_set):.1%}")

# %% [markdown]
# ## 5. A character-level language model, trained with truncated BPTT
#
# A language model gives the probability of the next character given the ones
# before it, $p(x_{t+1} \mid x_1, \dots, x_t)$. Assignment 04 trains one with a
# transformer, on independent windows of a fixed size. A recurrent model can do
# something the transformer of 04 cannot: read an unbounded stream, carrying its
# **state** from one batch to the next, so that its context is not limited to
# the window it is trained on. (Transformers with a recurrent memory, such as
# Transformer-XL, carry state across windows too; 04's GPT does not.) This section is about that: how to batch a
# stream so that the state can be carried, how to carry it without carrying the
# whole computation graph, and what carrying it is worth. Our model has three
# parts:
#
# 1. an **embedding** maps each character id to a vector;
# 2. an **LSTM** reads the vectors and keeps a running summary in its state;
# 3. a **linear head** turns each hidden state into logits over the vocabulary.
#
# It is trained with the cross-entropy of the next character, measured in
# **nats per character** (natural log). $e^{\text{loss}}$ is the *perplexity*: the
# model is as unsure as if it picked uniformly among that many characters.
#
# ### The data
#
# `dlcourse.data.load_text("tiny_shakespeare")` returns the tiny-Shakespeare
# corpus (1.1 M characters of plays) when it can download it. Without a network
# (and always under the grader) it returns a smaller offline corpus instead: US
# census names, one per line, and says so. Everything below works on either;
# the executed solution ran offline, so its numbers are for the names corpus
# (a stand-in for tiny Shakespeare), as the printed lines and plot titles say.

# %%
text = load_text("tiny_shakespeare")
offline = is_offline_subset(text)
corpus_name = "offline names corpus (a stand-in for tiny Shakespeare)" if offline else "tiny Shakespeare"
print(f"corpus: {corpus_name}, {len(text):,} characters")
print("-" * 40)
print(text[:300])

# %% [markdown]
# Characters become integer ids; the last 10% of the text is held out for
# validation (the model never trains on it).

# %%
vocab = sorted(set(text))
char_to_id = {ch: i for i, ch in enumerate(vocab)}


def encode(string):
    return torch.tensor([char_to_id[ch] for ch in string], dtype=torch.long)


def decode(ids):
    return "".join(vocab[i] for i in ids)


data = encode(text)
split = int(0.9 * len(data))
train_data, val_data = data[:split], data[split:]
print(f"vocabulary: {len(vocab)} characters: {''.join(vocab)!r}")
print(f"train: {len(train_data):,} characters, validation: {len(val_data):,}")
print(f"a uniform guess costs ln({len(vocab)}) = {math.log(len(vocab)):.2f} nats per character")

# %% [markdown]
# ### Truncated backpropagation through time
#
# We cannot backpropagate through a million characters at once. **Truncated
# BPTT** cuts the text into chunks of `seq_len` characters, backpropagates within
# each chunk only, but **carries the hidden state** from one chunk to the next, so
# the model still *reads* context across chunk borders.
#
# For that to make sense, row $r$ of batch $k+1$ must continue row $r$ of batch
# $k$. So cut the token stream into `batch_size` equally long contiguous *rows*
# (row $r$ is the $r$-th slice of length $L$), then walk along the rows `seq_len`
# columns at a time:
#
# ```
# stream:  a b c d e f g h i j k l m n o p q r s t u v w x y     (batch_size=3, L=8)
# rows:    a b c d e f g h          batch 0: [a b c]  [d e f]  [g h]
#          i j k l m n o p          batch 1 continues each row where batch 0 stopped
#          q r s t u v w x
# ```
#
# The targets are the inputs shifted by one character in the stream. $L$ is the
# largest length for which every input has a target: `(len(data) - 1) // batch_size`.

# %% solution="tbptt_batches"
def tbptt_batches(data, batch_size, seq_len):
    """Cut a 1-D tensor of token ids into batches for truncated BPTT.

    Args:
        data: (M,) token ids.
        batch_size: number of parallel rows B.
        seq_len: number of time steps per batch.

    Returns:
        A list of (inputs, targets) pairs, each (B, seq_len) (the last pair may be shorter
        in time, (B, L % seq_len)), where with L = (M - 1) // B, row r of the inputs
        stream is data[r * L : (r + 1) * L] and targets[:, t] is the token after inputs[:, t].
    """
    batches = []
    ### BEGIN SOLUTION
    L = (len(data) - 1) // batch_size
    inputs = data[: batch_size * L].view(batch_size, L)
    targets = data[1 : batch_size * L + 1].view(batch_size, L)
    for start in range(0, L, seq_len):
        batches.append((inputs[:, start : start + seq_len], targets[:, start : start + seq_len]))
    ### END SOLUTION
    return batches


# %% tests="test_tbptt_batches" points=2
stream = torch.arange(103)
batches = tbptt_batches(stream, batch_size=4, seq_len=5)
assert len(batches) == 5, (f"expected 5 batches (L = 102 // 4 = 25 columns, 5 per batch), got {len(batches)}; "
                           "hint: cut each row of L columns into chunks of seq_len")
for k, (inputs, targets) in enumerate(batches):
    assert_shape(inputs, (4, 5), name=f"inputs of batch {k}", hint="the docstring gives the shape of every input and output")
    assert_shape(targets, (4, 5), name=f"targets of batch {k}", hint="the docstring gives the shape of every input and output")
    assert torch.equal(targets, inputs + 1), (f"batch {k}: targets must be the inputs shifted by one token; "
                                              "hint: targets come from data[1 : B * L + 1]")
for k in range(len(batches) - 1):
    assert torch.equal(batches[k + 1][0][:, 0], batches[k][0][:, -1] + 1), (
        f"row r of batch {k + 1} must continue row r of batch {k} (contiguous rows); "
        "hint: data[: B * L].view(B, L), then slice columns")
# 63 ids, batch_size 2: L = 31 columns, so the last batch has 31 % 5 = 1 step
short = tbptt_batches(torch.arange(63) * 3, batch_size=2, seq_len=5)
assert [tuple(i.shape) for i, _ in short] == [(2, 5)] * 6 + [(2, 1)], (
    f"batch shapes {[tuple(i.shape) for i, _ in short]}; hint: L = (len(data) - 1) // batch_size columns per row, "
    "the last batch keeps the L % seq_len columns left over")
assert torch.equal(torch.cat([t for _, t in short], dim=1), (torch.arange(1, 63) * 3).view(2, 31)), (
    "targets must be the next ids in the stream (here the ids go up by 3); hint: slice data[1 : B * L + 1]")
print("tbptt_batches: shapes, shifted targets, contiguous rows and a shorter last batch are right.")
### BEGIN HIDDEN TESTS
# the exact layout, a last batch that is shorter in time, and a batch of one
data_h = torch.arange(1, 51) * 7  # not consecutive ids: the shift must be in the stream, not +1
got = tbptt_batches(data_h, batch_size=3, seq_len=4)  # L = 49 // 3 = 16 -> 4 batches
assert len(got) == 4, (f"tbptt_batches(50 ids, batch_size=3, seq_len=4) gave {len(got)} batches, expected 4; "
                       "hint: L = (len(data) - 1) // batch_size time steps per row, cut into chunks of seq_len")
got = tbptt_batches(data_h, batch_size=3, seq_len=5)  # L = 16 -> 5, 5, 5, 1
assert [tuple(i.shape) for i, _ in got] == [(3, 5), (3, 5), (3, 5), (3, 1)], "the last batch may be shorter"
all_inputs = torch.cat([i for i, _ in got], dim=1)
all_targets = torch.cat([t for _, t in got], dim=1)
assert torch.equal(all_inputs, data_h[:48].view(3, 16)), "rows must be contiguous slices of the stream"
assert torch.equal(all_targets, data_h[1:49].view(3, 16)), "targets are the next tokens in the stream"
one = tbptt_batches(data_h, batch_size=1, seq_len=10)
assert torch.equal(torch.cat([i for i, _ in one], dim=1), data_h[:49].view(1, 49)), "batch of one"
assert torch.equal(torch.cat([t for _, t in one], dim=1), data_h[1:].view(1, 49)), "batch of one (targets)"
### END HIDDEN TESTS

# %% [markdown]
# Carrying the state has a catch. The state at the end of batch $k$ is the result
# of a computation graph that reaches back through every earlier batch. If we
# pass it on as it is, the backward pass of batch $k+1$ tries to go through all
# of them: memory and time grow with every batch, and PyTorch soon stops with
# *"Trying to backward through the graph a second time"*. So between batches we
# keep the **values** of the state and cut its **history**: `tensor.detach()`.
#
# An LSTM's state is a tuple `(h, c)`; a GRU's or an RNN's a single tensor.
# `detach_hidden` handles both.

# %% solution="detach_hidden"
def detach_hidden(hidden):
    """The same state, cut from its computation graph.

    Args:
        hidden: None, a tensor, or a tuple of tensors (an LSTM's (h, c)).

    Returns:
        None, a tensor, or a tuple of the same length: the same values, no grad_fn,
        requires_grad False.
    """
    ### BEGIN SOLUTION
    if hidden is None:
        return None
    if isinstance(hidden, torch.Tensor):
        return hidden.detach()
    return tuple(h.detach() for h in hidden)
    ### END SOLUTION


# %% tests="test_detach_hidden" points=2
weights = torch.randn(3, 4, device=device, requires_grad=True)
h = torch.tanh(torch.randn(2, 3, device=device) @ weights)
c = torch.sigmoid(torch.randn(2, 3, device=device) @ weights)
assert h.grad_fn is not None and c.grad_fn is not None, (
    "test setup: h and c should be part of a graph; hint: run this cell again from the top")
detached = detach_hidden((h, c))
assert isinstance(detached, tuple) and len(detached) == 2, (
    "an (h, c) tuple must come back as a tuple of two; hint: tuple(t.detach() for t in hidden)")
for name, new, old in zip(["h", "c"], detached, (h, c)):
    assert new.grad_fn is None and not new.requires_grad, (
        f"{name} is still attached to the graph; hint: .detach() every tensor of the state")
    assert_close(new, old, name=f"detached {name}", hint="keep the values of the state, only cut the graph")
single = detach_hidden(h)
assert isinstance(single, torch.Tensor) and single.grad_fn is None, (
    "a single tensor state (an RNN's or a GRU's) must come back as one detached tensor; hint: tensor.detach()")
assert detach_hidden(None) is None, "detach_hidden(None) must return None (no state yet); hint: check for None first"
print("detach_hidden keeps the values and cuts the graph (a tuple, a tensor, or None).")
### BEGIN HIDDEN TESTS
single = torch.tanh(torch.randn(1, 1, 3, device=device) @ weights)
out = detach_hidden(single)
assert isinstance(out, torch.Tensor) and out.grad_fn is None and not out.requires_grad, "a single tensor state"
assert_close(out, single, name="detached single tensor")
assert detach_hidden(None) is None, "None (no state yet) stays None"
# the way training uses it: after backward freed the old graph, a new loss on the
# detached state must backpropagate without touching the old graph
h4 = torch.tanh(torch.randn(2, 3, device=device) @ weights)
c4 = torch.sigmoid(torch.randn(2, 3, device=device) @ weights)
(h4.sum() + c4.sum()).backward()  # frees the graph behind h4 and c4
h5, c5 = detach_hidden((h4, c4))
((h5 + c5) * weights[0, 0]).sum().backward()  # fails if h5 or c5 still point at the freed graph
### END HIDDEN TESTS

# %% [markdown]
# ### The model
#
# Write `CharLM`: `self.embedding` (an `nn.Embedding`), `self.lstm` (an
# `nn.LSTM` with `batch_first=True`, `num_layers` layers, `dropout` between
# layers when there is more than one) and `self.head` (an `nn.Linear` from the
# hidden size to the vocabulary). `forward(idx, hidden)` takes character ids
# $(N, T)$ and the state from the previous batch (`None` at the start), and
# returns the logits $(N, T, V)$ **and the new state**.

# %% solution="CharLM"
class CharLM(nn.Module):
    """Embedding -> LSTM -> linear head, a character-level language model."""

    def __init__(self, vocab_size, embed_dim=32, hidden_size=128, num_layers=1, dropout=0.0):
        super().__init__()
        ### BEGIN SOLUTION
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(
            embed_dim, hidden_size, num_layers=num_layers, batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.head = nn.Linear(hidden_size, vocab_size)
        ### END SOLUTION

    def forward(self, idx, hidden=None):
        """idx: (N, T) ids; hidden: None or the LSTM's (h, c). Returns logits (N, T, V), new (h, c)."""
        logits = None
        ### BEGIN SOLUTION
        out, hidden = self.lstm(self.embedding(idx), hidden)
        logits = self.head(out)
        ### END SOLUTION
        return logits, hidden


# %% tests="test_char_lm" points=3
torch.manual_seed(9)
V, E, Hd, N, T = 11, 6, 8, 3, 7
model = CharLM(V, embed_dim=E, hidden_size=Hd).to(device)
assert isinstance(model.embedding, nn.Embedding) and model.embedding.weight.shape == (V, E), (
    "self.embedding should be an nn.Embedding of shape (vocab_size, embed_dim); hint: nn.Embedding(vocab_size, embed_dim)")
assert isinstance(model.lstm, nn.LSTM) and model.lstm.hidden_size == Hd, (
    "self.lstm should be an nn.LSTM with hidden_size units; hint: nn.LSTM(embed_dim, hidden_size, ...)")
assert isinstance(model.head, nn.Linear) and model.head.out_features == V, (
    "self.head should be an nn.Linear to vocab_size logits; hint: nn.Linear(hidden_size, vocab_size)")
idx = torch.randint(0, V, (N, T), device=device)
logits, (h_n, c_n) = model(idx)
assert_shape(logits, (N, T, V), name="logits", hint="the docstring gives the shape of every input and output")
assert_shape(h_n, (1, N, Hd), name="final h", hint="the docstring gives the shape of every input and output")

# an independent batch-first LSTM with the same weights as the reference
reference_lstm = nn.LSTM(E, Hd, batch_first=True).to(device)
reference_lstm.load_state_dict(model.lstm.state_dict())
with torch.no_grad():
    out_ref, (h_ref, c_ref) = reference_lstm(model.embedding(idx))
    assert_close(logits, model.head(out_ref), name="logits", hint="embedding -> LSTM (batch_first) -> head")
    assert_close(h_n, h_ref, name="final h", hint="return the state nn.LSTM returns")
    assert_close(c_n, c_ref, name="final c", hint="return the state nn.LSTM returns")
    # carrying the state: two halves with the state passed on equal one pass over the whole
    first, state = model(idx[:, :4])
    second, _ = model(idx[:, 4:], state)
    assert_close(torch.cat([first, second], dim=1), logits, name="logits with the state carried",
                 hint="forward must start from the given hidden state and return the new one")
two_layers = CharLM(V, embed_dim=E, hidden_size=Hd, num_layers=2, dropout=0.1)
assert two_layers.lstm.num_layers == 2 and two_layers.lstm.batch_first and two_layers.lstm.dropout == 0.1, (
    "CharLM(num_layers=2, dropout=0.1).lstm should have 2 layers, batch_first=True and dropout 0.1; "
    "hint: pass num_layers and dropout (only when num_layers > 1) to nn.LSTM")
print("CharLM: shapes, embedding -> LSTM -> head, the carried state and num_layers are right.")
### BEGIN HIDDEN TESTS
# two layers, a batch of one, a sequence of length one, a given initial state
model2 = CharLM(5, embed_dim=4, hidden_size=6, num_layers=2, dropout=0.1).to(device).eval()
assert model2.lstm.num_layers == 2 and model2.lstm.batch_first, (
    f"CharLM(num_layers=2).lstm has num_layers={model2.lstm.num_layers}, batch_first={model2.lstm.batch_first}; "
    "hint: nn.LSTM(embed_dim, hidden_size, num_layers=num_layers, batch_first=True, dropout=...)")
idx2 = torch.randint(0, 5, (1, 6), device=device)
with torch.no_grad():
    full, (h_full, c_full) = model2(idx2)
    assert_shape(h_full, (2, 1, 6), name="final h of a 2-layer model")
    pieces, state = [], None
    for t in range(6):  # one character at a time, the way sampling runs
        step_logits, state = model2(idx2[:, t : t + 1], state)
        pieces.append(step_logits)
    assert_close(torch.cat(pieces, dim=1), full, name="logits one step at a time (batch of one)")
    assert_close(state[1], c_full, name="final c one step at a time")
    given = (torch.randn(2, 1, 6, device=device), torch.randn(2, 1, 6, device=device))
    with_state, _ = model2(idx2, given)
    ref_lstm = nn.LSTM(4, 6, num_layers=2, batch_first=True).to(device).eval()
    ref_lstm.load_state_dict(model2.lstm.state_dict())
    out_given, _ = ref_lstm(model2.embedding(idx2), given)
    assert_close(with_state, model2.head(out_given), name="logits from a given initial state")
### END HIDDEN TESTS

# %% [markdown]
# ### Training
#
# The loop below puts your pieces together. Each epoch starts from a zero state
# (`None`); within an epoch the state flows from batch to batch, detached. The
# gradient norm is clipped at 1 with your `clip_grad_norm`; we record it before
# clipping, to see how often clipping fires. Training runs for `max_steps` steps
# (a budget in steps, so a slower machine takes longer but reaches the same
# model), and the learning rate follows a cosine from `lr` down to `lr / 10` over
# that budget. Under the grader it runs a handful of steps only.
#
# Sizes: on a GPU with tiny Shakespeare a 2-layer, 512-unit LSTM; on a CPU, or
# with the small offline corpus, a 1-layer, 128-unit one. The cell prints the
# parameter count and configuration of the model it trains.

# %%
def evaluate_nats(model, data, batch_size=128, seq_len=128, carry_state=True):
    """Mean cross-entropy (nats per character) of `model` on `data`; the state is carried across
    batches, or (carry_state=False) every batch starts from a zero state."""
    model.eval()
    total, count, hidden = 0.0, 0, None
    with torch.no_grad():
        for inputs, targets in tbptt_batches(data, batch_size, seq_len):
            inputs, targets = inputs.to(device), targets.to(device)
            logits, hidden = model(inputs, hidden if carry_state else None)
            total += F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum").item()
            count += targets.numel()
    model.train()
    return total / count


def train_char_lm(model, train_data, val_data, *, batch_size, seq_len, lr, max_steps, eval_every, max_norm=1.0):
    """Train with truncated BPTT; returns a history of losses and gradient norms."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = {"step": [], "train_loss": [], "grad_norm": [], "val_step": [], "val_loss": []}
    batches = tbptt_batches(train_data, batch_size, seq_len)
    step, done = 0, False
    while not done:
        hidden = None  # a new epoch starts from a zero state
        for inputs, targets in batches:
            if step == max_steps:
                done = True
                break
            for group in optimizer.param_groups:  # cosine from lr down to lr / 10 over the budget
                group["lr"] = lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / max_steps)))
            inputs, targets = inputs.to(device), targets.to(device)
            hidden = detach_hidden(hidden)  # keep the values, cut the graph
            logits, hidden = model(inputs, hidden)
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            history["grad_norm"].append(clip_grad_norm(model.parameters(), max_norm))
            optimizer.step()
            step += 1
            history["step"].append(step)
            history["train_loss"].append(loss.item())
            if step % eval_every == 0:
                history["val_step"].append(step)
                history["val_loss"].append(evaluate_nats(model, val_data))
                print(f"step {step:4d}: train {loss.item():.3f}, validation {history['val_loss'][-1]:.3f} nats/char")
    if not history["val_step"] or history["val_step"][-1] != step:
        history["val_step"].append(step)
        history["val_loss"].append(evaluate_nats(model, val_data))
    return history


# %%
require_written(tbptt_batches, detach_hidden, CharLM, clip_grad_norm)
big = device.type == "cuda" and not offline  # tiny Shakespeare on a GPU
config = dict(
    embed_dim=64 if big else 32,
    hidden_size=512 if big else 128,
    num_layers=2 if big else 1,
    dropout=0.2 if big else 0.0,
    batch_size=dlcourse.budget(full=64, grading=8),
    seq_len=dlcourse.budget(full=128 if big else 32, grading=32),
    lr=3e-3 if big else 1e-2,
    max_steps=dlcourse.budget(full=3000 if big else 500, grading=3),
    eval_every=dlcourse.budget(full=250 if big else 100, grading=1000),
)
dlcourse.seed_everything(0)
model = CharLM(
    len(vocab), config["embed_dim"], config["hidden_size"], config["num_layers"], config["dropout"]
).to(device)
print(f"{sum(p.numel() for p in model.parameters()):,} parameters; config: {config}")
started = time.perf_counter()
history = train_char_lm(
    model, train_data, val_data[: dlcourse.budget(full=len(val_data), grading=2000)],
    **{k: v for k, v in config.items() if k not in ("embed_dim", "hidden_size", "num_layers", "dropout")},
)
train_seconds = time.perf_counter() - started
val_loss = history["val_loss"][-1]
print(f"trained {history['step'][-1]} steps ({history['step'][-1] * config['batch_size'] * config['seq_len']:,} "
      f"characters) in {train_seconds:.0f} s on {device}")
print(f"{corpus_name}: validation loss {val_loss:.3f} nats/char (perplexity {math.exp(val_loss):.2f}; "
      f"a uniform guess over the {len(vocab)} characters: {math.log(len(vocab)):.2f} nats/char)")

# %%
require_written(tbptt_batches, detach_hidden, CharLM, clip_grad_norm)
clip_rate = sum(n > 1.0 for n in history["grad_norm"]) / max(len(history["grad_norm"]), 1)
fig, (ax_loss, ax_norm) = plt.subplots(1, 2, figsize=(11, 3.5))
ax_loss.plot(history["step"], history["train_loss"], alpha=0.5, label="train (per batch)")
ax_loss.plot(history["val_step"], history["val_loss"], marker="o", label="validation")
ax_loss.set_xlabel("step")
ax_loss.set_ylabel("nats per character")
ax_loss.set_title(corpus_name)
ax_loss.legend()
ax_norm.semilogy(history["step"], history["grad_norm"], lw=0.8)
ax_norm.axhline(1.0, color="red", ls="--", label="max_norm")
ax_norm.set_xlabel("step")
ax_norm.set_title(f"gradient norm before clipping (clipped {clip_rate:.0%} of steps)")
ax_norm.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# *Figure: left, the training loss per batch and the validation loss (nats per
# character) of the language model; right, its gradient norm before clipping,
# with the clipping threshold, on the corpus named in the title.*
#
# Clipping at 1 is a safety net, not a regular step here: the right-hand title
# says how many steps it clipped. In the executed solution (the names stand-in,
# on a CPU) that was none: the LSTM's gradient norm stayed below 1 from the first
# step, so clipping changed nothing in this run. Where it does work is the
# exploding RNN of section 2, whose gradient norm it cut from hundreds of
# thousands to 1.
#
# The lines under the training cell give the result of this budget: on a CPU
# (or with the offline names corpus) the 1-layer 128-unit model trains for 500
# steps, and the validation loss falls well below the uniform guess printed
# beside it. The budget is counted in steps, so any machine reaches the same
# loss; only the time differs. On tiny Shakespeare with a Colab T4, the 2-layer
# model trains for 3,000 steps; we expect a validation loss of about 1.6 nats
# per character or less (an estimate for a T4 with the full data: this
# configuration was not run for the executed solution).
#
# ### What carrying the state is worth
#
# The model was trained with the state carried across batches. Does it use the
# context it gets that way? We score it on the validation text cut into chunks
# of `seq_len` characters, once carrying the state from chunk to chunk (as in
# training) and once starting every chunk from a zero state, which is what a
# model trained on independent windows sees. With short chunks, many characters
# sit near the start of a chunk, where a reset model has no context at all.

# %%
require_written(tbptt_batches, detach_hidden, CharLM)
probe_data = val_data[: dlcourse.budget(full=len(val_data), grading=2000)]
chunk_lengths = dlcourse.budget(full=[2, 4, 8, 16, 32, 64], grading=[4, 16])
carried = [evaluate_nats(model, probe_data, seq_len=L, carry_state=True) for L in chunk_lengths]
reset = [evaluate_nats(model, probe_data, seq_len=L, carry_state=False) for L in chunk_lengths]
plt.figure(figsize=(6, 3.5))
plt.semilogx(chunk_lengths, carried, marker="o", base=2, label="state carried across chunks")
plt.semilogx(chunk_lengths, reset, marker="o", base=2, label="zero state at every chunk")
plt.xlabel("chunk length (characters)")
plt.ylabel("validation nats per character")
plt.title(f"{corpus_name}:\ncarried vs reset state")
plt.legend()
plt.show()
for L, c, r in zip(chunk_lengths, carried, reset):
    print(f"{corpus_name}, chunks of {L:3d}: carried {c:.3f}, reset {r:.3f} nats/char (reset costs {r - c:+.3f})")

# %% [markdown]
# *Figure: validation loss of the trained language model against the chunk
# length, with the state carried from chunk to chunk and reset at every chunk
# (the corpus named in the title; the printed lines give the numbers).*
#
# Carrying the state costs nothing and makes the model's loss independent of
# where the chunk borders fall; a reset model pays at every border, and the
# shorter the chunks, the more often. On the names corpus one name is the useful
# context (718,110 characters for 91,910 names, as the loader printed: about 8
# characters a name with its newline), so the gap closes once chunks are a few
# names long; on Shakespeare, where context reaches further, it stays open
# longer.
#
# Finally, a few samples: feed a newline, draw the next character from the
# model's distribution, feed it back, repeat. (Temperature and top-k sampling
# are the subject of assignment 04; here we sample at temperature 1.)

# %%
require_written(CharLM)


def sample(model, prompt, length, seed=0):
    """Generate `length` characters after `prompt`, one at a time, state carried."""
    generator = torch.Generator(device=device).manual_seed(seed)
    model.eval()
    with torch.no_grad():
        ids = encode(prompt).to(device).unsqueeze(0)
        logits, hidden = model(ids)  # read the whole prompt once
        out = []
        for _ in range(length):
            next_id = torch.multinomial(torch.softmax(logits[0, -1], dim=-1), 1, generator=generator)
            out.append(next_id.item())
            logits, hidden = model(next_id.view(1, 1), hidden)  # one character in, the state carried
    model.train()
    return decode(out)


print(sample(model, "\n", dlcourse.budget(full=120, grading=20)).replace("\n", "  "))

# %% [markdown]
# ## 6. An encoder-decoder with attention, greedy and beam search
#
# Every model so far reads a sequence and returns one answer (a class, or the
# next character). An **encoder-decoder** (sequence to sequence) reads one
# sequence and writes another, of a length of its own: translation, summaries,
# speech to text. We build a small one on a task generated here, offline:
#
# > write a number from 0 to 9999 in words: `4207` → `four thousand two hundred seven`.
#
# The output is 1 to 6 words long and the words depend on the digits in ways a
# model must look up: `17` is one word (`seventeen`), `70` is one
# (`seventy`), `0` in `4207` gives no word at all. The model has three parts:
#
# 1. an **encoder**, a bidirectional `nn.GRU` run over the (packed) digits,
#    which gives one vector $k_s$ per source position $s$, each summarising the
#    digit and its neighbours on both sides;
# 2. a **decoder**, an `nn.GRUCell` that writes one word per step, starting from a
#    `<bos>` token and stopping when it writes `<eos>`;
# 3. **attention**: at every decoder step, a weighted average of the encoder
#    vectors, with weights that say where in the source the decoder looks for
#    the next word (Bahdanau et al., 2015). Without it the decoder would have
#    to squeeze the whole source into one state vector.
#
# ### 6a. Additive attention
#
# The decoder's previous state $q$ (the *query*, $(N, H)$) is compared with each
# encoder vector $k_s$ (the *keys*, $(N, S, K)$) by a small one-hidden-layer
# network, then a softmax over the source positions turns the scores into weights
# and the context is the weighted average of the keys:
#
# $$e_s = w_v^\top \tanh\left(q W_q + k_s W_k\right),\qquad
#   \alpha = \operatorname{softmax}_s(e),\qquad c = \sum_s \alpha_s k_s .$$
#
# Source numbers have different lengths, so the keys are padded; `mask` $(N, S)$
# is `True` at the real positions. A padded position must get weight exactly 0
# (set its score to $-\infty$ before the softmax), so that whatever is stored there
# changes nothing. Write it with plain tensor operations: the test runs your
# function with `F.scaled_dot_product_attention` and `nn.MultiheadAttention`
# switched off (`dlcourse.shortcuts.by_hand`; assignment 04 builds those), and
# compares it with the formula computed one example at a time on the real
# positions only.

# %% solution="additive_attention"
def additive_attention(query, keys, mask, W_q, W_k, w_v):
    """Additive (Bahdanau) attention of one query per example over padded keys.

    Args:
        query: (N, H) the decoder state.
        keys: (N, S, K) the encoder vectors (also the values averaged).
        mask: (N, S) bool, True at real source positions (each row has at least one).
        W_q: (H, A); W_k: (K, A); w_v: (A,).

    Returns:
        context: (N, K), the attention-weighted average of the keys.
        weights: (N, S), each row sums to 1, exactly 0 at padded positions.
    """
    context, weights = None, None
    ### BEGIN SOLUTION
    scores = torch.tanh((query @ W_q)[:, None, :] + keys @ W_k) @ w_v  # (N, S)
    scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=1)
    context = (weights[:, :, None] * keys).sum(dim=1)
    ### END SOLUTION
    return context, weights


# %% tests="test_additive_attention" points=3
LIBRARY_ATTENTION = ("torch.nn.functional.scaled_dot_product_attention", "torch._C._nn.scaled_dot_product_attention",
                     "torch.nn.MultiheadAttention", "torch.nn.functional.multi_head_attention_forward")


def attention_one_by_one(query, keys, lengths, W_q, W_k, w_v):
    """The reference: the formula for each example alone, on its real positions only."""
    contexts, weights = [], torch.zeros(keys.shape[:2], dtype=keys.dtype, device=keys.device)
    for n, length in enumerate(lengths):
        e = torch.tanh(query[n] @ W_q + keys[n, :length] @ W_k) @ w_v  # (length,)
        alpha = torch.exp(e - e.max()) / torch.exp(e - e.max()).sum()
        weights[n, :length] = alpha
        contexts.append(alpha @ keys[n, :length])
    return torch.stack(contexts), weights


torch.manual_seed(21)
N, S, H, K, A = 4, 5, 3, 6, 7
lengths = [5, 2, 1, 4]
query = torch.randn(N, H, dtype=torch.float64, device=device)
keys = torch.randn(N, S, K, dtype=torch.float64, device=device)
mask = torch.arange(S, device=device)[None, :] < torch.tensor(lengths, device=device)[:, None]
keys[~mask] = 1e3 * torch.randn(int((~mask).sum()), K, dtype=torch.float64, device=device)  # garbage padding
W_q, W_k, w_v = (torch.randn(*shape, dtype=torch.float64, device=device) for shape in [(H, A), (K, A), (A,)])
with by_hand("additive_attention", LIBRARY_ATTENTION):
    context, weights = additive_attention(query, keys, mask, W_q, W_k, w_v)
assert_shape(context, (N, K), name="context", hint="the docstring gives the shape of every input and output")
assert_shape(weights, (N, S), name="attention weights", hint="one weight per source position")
context_ref, weights_ref = attention_one_by_one(query, keys, lengths, W_q, W_k, w_v)
hint = ("scores e_s = tanh(q W_q + k_s W_k) w_v for every source position s; set padded scores to -inf; "
        "softmax over the source positions (dim=1); context = sum_s weights_s k_s")
assert_close(weights, weights_ref, name="attention weights vs the formula on the real positions", hint=hint)
assert_close(context, context_ref, name="context vs the formula on the real positions", hint=hint)
assert float(weights[~mask].abs().max()) == 0.0, "a padded position got a non-zero weight; hint: mask the scores"
print("additive_attention: the formula, padding ignored, no library attention.")
### BEGIN HIDDEN TESTS
# a batch of one without padding, float32, a longer source
q1 = torch.randn(1, 2, device=device)
k1 = torch.randn(1, 9, 3, device=device)
m1 = torch.ones(1, 9, dtype=torch.bool, device=device)
p1 = [torch.randn(*shape, device=device) for shape in [(2, 4), (3, 4), (4,)]]
with by_hand("additive_attention", LIBRARY_ATTENTION):
    c1, a1 = additive_attention(q1, k1, m1, *p1)
c1_ref, a1_ref = attention_one_by_one(q1, k1, [9], *p1)
assert_close(a1, a1_ref, name="attention weights (batch of one, no padding, float32)")
assert_close(c1, c1_ref, name="context (batch of one, no padding, float32)")
### END HIDDEN TESTS

# %% [markdown]
# ### 6b. The data and the model
#
# Source tokens are the digits (id 0 pads); target tokens are the 30 number words
# plus `<pad>`, `<bos>` and `<eos>`. The 10,000 numbers are shuffled once and split
# into 8,000 for training, 1,000 for validation (to compare decoders) and 1,000 for
# test (used once, at the end). The model below is provided: read `decode_step`,
# one decoder step, which is what both search procedures call.

# %%
ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
        "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def number_words(n):
    """0 <= n <= 9999 in words, as a list: 4207 -> ['four', 'thousand', 'two', 'hundred', 'seven']."""
    if n < 20:
        return [ONES[n]]
    if n < 100:
        return [TENS[n // 10]] + ([ONES[n % 10]] if n % 10 else [])
    if n < 1000:
        return [ONES[n // 100], "hundred"] + (number_words(n % 100) if n % 100 else [])
    return number_words(n // 1000) + ["thousand"] + (number_words(n % 1000) if n % 1000 else [])


DIGITS = ["<pad>", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
WORDS = ["<pad>", "<bos>", "<eos>", "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
         "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
         "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety", "hundred", "thousand"]
BOS, EOS = 1, 2  # WORDS[1], WORDS[2]
MAX_WORDS = 7  # the longest output, 'seven thousand seven hundred seventy seven' (6 words), and <eos>


def encode_digits(n):
    return torch.tensor([DIGITS.index(d) for d in str(n)])


def encode_words(n):
    return torch.tensor([WORDS.index(w) for w in number_words(n)] + [EOS])


def number_batch(numbers):
    """(digits (N, S) padded with 0, lengths (N,) on the CPU, words (N, T) ending in <eos>, padded with 0)."""
    digits = [encode_digits(n) for n in numbers]
    words = pad_sequence([encode_words(n) for n in numbers], batch_first=True, padding_value=0)
    return pad_sequence(digits, batch_first=True, padding_value=0), torch.tensor([len(d) for d in digits]), words


all_numbers = list(range(10000))
random.Random(0).shuffle(all_numbers)
train_numbers, val_numbers, test_numbers = all_numbers[:8000], all_numbers[8000:9000], all_numbers[9000:]
print("examples:", "; ".join(f"{n} -> {' '.join(number_words(n))}" for n in train_numbers[:4]))


class Seq2Seq(nn.Module):
    """Bidirectional GRU encoder over digits, GRUCell decoder over words, additive attention."""

    def __init__(self, src_vocab, tgt_vocab, embed_dim=32, hidden_size=64, attn_size=64):
        super().__init__()
        self.src_embedding = nn.Embedding(src_vocab, embed_dim, padding_idx=0)
        self.tgt_embedding = nn.Embedding(tgt_vocab, embed_dim)
        self.encoder = nn.GRU(embed_dim, hidden_size, batch_first=True, bidirectional=True)
        self.init_state = nn.Linear(2 * hidden_size, hidden_size)
        self.decoder = nn.GRUCell(embed_dim + 2 * hidden_size, hidden_size)
        self.W_q = nn.Parameter(torch.randn(hidden_size, attn_size) / hidden_size**0.5)
        self.W_k = nn.Parameter(torch.randn(2 * hidden_size, attn_size) / (2 * hidden_size) ** 0.5)
        self.w_v = nn.Parameter(torch.randn(attn_size) / attn_size**0.5)
        self.out = nn.Linear(3 * hidden_size, tgt_vocab)

    def encode(self, digits, lengths):
        """The decoder's starting state: a tuple (h (N, H), keys (N, S, 2H), mask (N, S)), batch first."""
        packed = pack_padded_sequence(self.src_embedding(digits), lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        keys, _ = pad_packed_sequence(self.encoder(packed)[0], batch_first=True, total_length=digits.shape[1])
        mask = torch.arange(digits.shape[1], device=digits.device)[None, :] < lengths.to(digits.device)[:, None]
        h = torch.tanh(self.init_state(masked_mean(keys, lengths)))
        return h, keys, mask

    def decode_step(self, tokens, state):
        """tokens (N,) the previous words -> (log-probabilities of the next word (N, V), new state,
        attention weights (N, S))."""
        h, keys, mask = state
        context, weights = additive_attention(h, keys, mask, self.W_q, self.W_k, self.w_v)
        h = self.decoder(torch.cat([self.tgt_embedding(tokens), context], dim=1), h)
        log_probs = F.log_softmax(self.out(torch.cat([h, context], dim=1)), dim=1)
        return log_probs, (h, keys, mask), weights

    def forward(self, digits, lengths, words):
        """Teacher forcing: the decoder reads the true previous word. Returns log-probs (N, T, V)."""
        state = self.encode(digits, lengths)
        previous = torch.cat([torch.full_like(words[:, :1], BOS), words[:, :-1]], dim=1)
        steps = []
        for t in range(words.shape[1]):
            log_probs, state, _ = self.decode_step(previous[:, t], state)
            steps.append(log_probs)
        return torch.stack(steps, dim=1)


# %% [markdown]
# Training uses **teacher forcing**: at step $t$ the decoder reads the *true*
# word $t-1$, so all steps are trained at once, with the cross-entropy of each
# real target word (padding ignored). The budget is counted in steps.

# %%
require_written(additive_attention, masked_mean)
dlcourse.seed_everything(0)
translator = Seq2Seq(len(DIGITS), len(WORDS)).to(device)
optimizer = torch.optim.Adam(translator.parameters(), lr=3e-3)
seq2seq_steps = dlcourse.budget(full=100, grading=3)
batch_rng = random.Random(1)
seq2seq_losses = []
started = time.perf_counter()
for step in range(1, seq2seq_steps + 1):
    digits, lengths, words = number_batch(batch_rng.sample(train_numbers, 64))
    log_probs = translator(digits.to(device), lengths, words.to(device))
    loss = F.nll_loss(log_probs.flatten(0, 1), words.to(device).flatten(), ignore_index=0)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    seq2seq_losses.append(loss.item())
    if step % 25 == 0:
        print(f"step {step:4d}: training loss {loss.item():.3f} nats/word")
translator.eval()
print(f"{sum(p.numel() for p in translator.parameters()):,} parameters, {seq2seq_steps} steps of 64 numbers "
      f"in {time.perf_counter() - started:.0f} s on {device}")


def translator_step(tokens, state):
    """The decoding interface of 6c and 6d: (tokens (B,), state) -> (log-probs (B, V), state)."""
    log_probs, state, _ = translator.decode_step(tokens, state)
    return log_probs, state


# %% [markdown]
# ### 6c. Greedy decoding
#
# At test time there is no true previous word: the decoder reads its own
# output. Both search procedures below work with any model through one
# interface, a **step function** `step(tokens, state) -> (log_probs, state)`:
# `tokens` $(B,)$ are the previous words, `log_probs` $(B, V)$ the
# log-probabilities of the next one, and `state` is a tuple of tensors whose
# first dimension is the batch (`translator_step` above is one; `state[i]` for
# all tensors selects or repeats rows: `tuple(s[index] for s in state)`).
#
# **Greedy** decoding takes the most probable word at every step, for the whole
# batch at once: start with `bos` for everyone, take the arg-max over the
# vocabulary, feed it back. A sequence is finished when it writes `eos`; it
# stops collecting words and log-probabilities then (the others go on), and
# decoding ends when all are finished or after `max_len` steps. Return each
# sequence's words without `bos` and `eos`, and its score: the sum of the
# log-probabilities of the tokens it chose, `eos` included.

# %% solution="greedy_decode"
def greedy_decode(step, state, bos, eos, max_len):
    """Greedy decoding of a batch.

    Args:
        step: (tokens (B,), state) -> (log_probs (B, V), state).
        state: the starting state, a tuple of tensors with the batch B on dim 0.
        bos, eos: the start and end token ids. max_len: the most steps (eos counts as one).

    Returns:
        sequences: B lists of token ids, without bos and eos.
        scores: (B,) the sum of the chosen tokens' log-probabilities, eos included.
    """
    sequences, scores = None, None
    ### BEGIN SOLUTION
    batch = state[0].shape[0]
    tokens = torch.full((batch,), bos, dtype=torch.long, device=state[0].device)
    finished = torch.zeros(batch, dtype=torch.bool, device=state[0].device)
    scores = torch.zeros(batch, device=state[0].device)
    sequences = [[] for _ in range(batch)]
    for _ in range(max_len):
        log_probs, state = step(tokens, state)
        tokens = log_probs.argmax(dim=1)
        chosen = log_probs.gather(1, tokens[:, None])[:, 0]
        scores = scores + torch.where(finished, torch.zeros_like(chosen), chosen)
        for i in (~finished & (tokens != eos)).nonzero()[:, 0].tolist():
            sequences[i].append(tokens[i].item())
        finished = finished | (tokens == eos)
        if finished.all():
            break
    ### END SOLUTION
    return sequences, scores


# %% [markdown]
# The tests of 6c and 6d decode with two small step functions: a random
# recurrent model, and greedy decoding of one sequence at a time (the reference
# your batched version is compared with).

# %%
def tiny_model(vocab_size, hidden_size, seed):
    """A random recurrent step function over `vocab_size` tokens, with bos = vocab_size (an input only)."""
    generator = torch.Generator().manual_seed(seed)
    embed = torch.randn(vocab_size + 1, hidden_size, generator=generator, dtype=torch.float64).to(device)
    W = torch.randn(hidden_size, hidden_size, generator=generator, dtype=torch.float64).to(device)
    U = 2 * torch.randn(hidden_size, vocab_size, generator=generator, dtype=torch.float64).to(device)

    def step(tokens, state):
        h = torch.tanh(embed[tokens] + state[0] @ W)
        return torch.log_softmax(h @ U, dim=1), (h,)

    return step


def greedy_one_by_one(step, h0, bos, eos, max_len):
    """The reference: one sequence at a time, arg-max until eos."""
    results = []
    for n in range(h0.shape[0]):
        state, token, words, score = (h0[n : n + 1],), torch.tensor([bos], device=device), [], 0.0
        for _ in range(max_len):
            log_probs, state = step(token, state)
            token = log_probs[0].argmax().view(1)
            score += log_probs[0, token].item()
            if token.item() == eos:
                break
            words.append(token.item())
        results.append((words, score))
    return results


# %% tests="test_greedy_decode" points=2
torch.manual_seed(21)
V, H_tiny, EOS_TINY = 5, 4, 0
tiny_step = tiny_model(V, H_tiny, seed=6)
h0 = torch.randn(7, H_tiny, dtype=torch.float64).to(device)  # drawn on the CPU: the same on any device
sequences, scores = greedy_decode(tiny_step, (h0,), bos=V, eos=EOS_TINY, max_len=6)
reference = greedy_one_by_one(tiny_step, h0, V, EOS_TINY, 6)
hint = ("argmax over the vocabulary (dim=1) for every sequence of the batch; feed the chosen tokens back; "
        "a sequence that wrote eos stops adding words and log-probabilities")
assert isinstance(sequences, list) and len(sequences) == 7, "greedy_decode must return one list of tokens per sequence"
assert [list(s) for s in sequences] == [w for w, _ in reference], (
    f"greedy_decode's sequences {sequences} differ from arg-max decoding one sequence at a time "
    f"{[w for w, _ in reference]}; hint: {hint}")
assert_close(scores, torch.tensor([s for _, s in reference], dtype=scores.dtype, device=device),
             name="greedy scores (sum of the chosen log-probabilities, eos included)", hint=hint)
lengths_seen = {len(s) for s in sequences}
assert lengths_seen >= {0, 6}, "test setup: the batch must mix lengths"  # eos first, cut at max_len, between
print(f"greedy_decode: a batch of 7 decodes like one sequence at a time (lengths {sorted(lengths_seen)}).")
### BEGIN HIDDEN TESTS
# a batch of one, another model, a cut at max_len
step9 = tiny_model(3, 2, seed=9)
h9 = torch.randn(1, 2, dtype=torch.float64).to(device)
for cap in (1, 4):
    got_seq, got_scores = greedy_decode(step9, (h9,), bos=3, eos=1, max_len=cap)
    ref9 = greedy_one_by_one(step9, h9, 3, 1, cap)
    assert [list(s) for s in got_seq] == [w for w, _ in ref9], f"greedy with max_len={cap}"
    assert_close(got_scores.double(), torch.tensor([s for _, s in ref9], dtype=torch.float64, device=device), name=f"greedy score, max_len={cap}")
### END HIDDEN TESTS

# %% [markdown]
# ### 6d. Beam search
#
# Greedy decoding can commit to a word that looks best now and leads only to
# unlikely continuations. **Beam search** keeps the `beam_width` most probable
# *prefixes* (hypotheses) at every step. For one source sentence:
#
# 1. Start with one live hypothesis: no words, score 0, the starting state, and
#    `bos` as its last token.
# 2. Run `step` on all live hypotheses at once (a batch of them). Every
#    hypothesis $i$ and next token $w$ give a candidate with score
#    $\text{score}_i + \log p(w \mid \text{prefix}_i)$: the score is the
#    **cumulative** log-probability of the whole prefix.
# 3. Keep the `beam_width` best candidates over all hypotheses and tokens
#    together (`topk` over the flattened $(B, V)$ scores; `index // V` is the
#    hypothesis, `index % V` the token). A candidate whose token is `eos` is
#    **finished**: it goes into a list of finished hypotheses (its words without
#    `eos`, its score with it) and is not extended. A candidate that reaches
#    `max_len` tokens without `eos` is finished too.
# 4. The others become the live hypotheses of the next step, each with the state
#    **of the hypothesis it extends** (select rows of the new state by hypothesis
#    index). Stop when none is live, or when the best finished score is at least
#    the best live score: log-probabilities are $\le 0$, so a live hypothesis can
#    only lose score, and none of them can overtake it.
# 5. Return the best finished hypothesis: (words, score).
#
# Two facts make good tests. With `beam_width` 1 this is greedy decoding. With a
# beam so wide that nothing is ever dropped ($V^{\text{max\_len}}$ hypotheses
# suffice) it is **exhaustive search**: it returns the most probable output of
# all. The test checks both on a tiny model, and a three-word example where
# greedy decoding is wrong.

# %% solution="beam_search"
def beam_search(step, state, bos, eos, max_len, beam_width):
    """Beam search for one source (state has a batch of 1).

    Args:
        step: (tokens (B,), state) -> (log_probs (B, V), state).
        state: the starting state, a tuple of tensors with a batch of 1 on dim 0.
        bos, eos: the start and end token ids. max_len: the most steps (eos counts as one).
        beam_width: how many hypotheses to keep at every step.

    Returns:
        (words, score): the best finished hypothesis, its token ids without bos and eos, and the sum of
        its log-probabilities (eos included).
    """
    ### BEGIN SOLUTION
    device_ = state[0].device
    tokens = torch.tensor([bos], device=device_)
    scores = torch.zeros(1, device=device_)
    prefixes = [[]]
    finished = []
    for t in range(max_len):
        log_probs, state = step(tokens, state)
        vocab_size = log_probs.shape[1]
        candidates = (scores[:, None] + log_probs).flatten()
        best_scores, best_indices = candidates.topk(min(beam_width, candidates.numel()))
        live_rows, live_tokens, live_scores, live_prefixes = [], [], [], []
        for score, index in zip(best_scores.tolist(), best_indices.tolist()):
            row, token = index // vocab_size, index % vocab_size
            if token == eos:
                finished.append((prefixes[row], score))
            elif t == max_len - 1:
                finished.append((prefixes[row] + [token], score))
            else:
                live_rows.append(row)
                live_tokens.append(token)
                live_scores.append(score)
                live_prefixes.append(prefixes[row] + [token])
        if not live_rows or (finished and max(s for _, s in finished) >= max(live_scores)):
            break
        rows = torch.tensor(live_rows, device=device_)
        state = tuple(s[rows] for s in state)
        tokens = torch.tensor(live_tokens, device=device_)
        scores = torch.tensor(live_scores, dtype=log_probs.dtype, device=device_)
        prefixes = live_prefixes
    return max(finished, key=lambda hypothesis: hypothesis[1])
    ### END SOLUTION


# %% tests="test_beam_search" points=4
def exhaustive_search(step, state, bos, eos, max_len):
    """The reference: score every possible output (eos at some step, or max_len tokens), return the best."""
    vocab_size = step(torch.tensor([bos], device=device), state)[0].shape[1]
    best = None
    for length in range(1, max_len + 1):
        for seq in itertools.product(range(vocab_size), repeat=length):
            if eos in seq[:-1] or (seq[-1] != eos and length < max_len):
                continue  # eos ends an output; without eos it must reach max_len
            s, token, score = state, torch.tensor([bos], device=device), 0.0
            for w in seq:
                log_probs, s = step(token, s)
                score += log_probs[0, w].item()
                token = torch.tensor([w], device=device)
            if best is None or score > best[1]:
                best = ([w for w in seq if w != eos], score)
    return best


hint = ("scores are cumulative (score of the prefix + log p(token)); topk over all hypotheses x tokens; "
        "eos (or max_len) finishes a hypothesis; the new state of a hypothesis is the row of the one it extends")
# a small example where greedy decoding is wrong. The next-token distribution depends on the last two
# tokens: the state holds the one before the input. Greedy takes 'a' (0.6), but the most probable output
# is 'b a' (0.4 * 0.9 * 1.0 with eos), which a beam of 2 keeps, provided each hypothesis carries its own state.
a_, b_, eos_, bos_ = 0, 1, 2, 3
second_order = torch.full((4, 4, 3), 1 / 3, dtype=torch.float64)  # [token before, input token] -> p(next)
second_order[bos_, bos_] = torch.tensor([0.6, 0.4, 0.0])
second_order[bos_, a_] = torch.tensor([0.34, 0.33, 0.33])
second_order[bos_, b_] = torch.tensor([0.9, 0.05, 0.05])
second_order[b_, a_] = torch.tensor([0.0, 0.0, 1.0])
second_order = second_order.log().to(device)
table_step = lambda tokens, state: (second_order[state[0], tokens], (tokens,))  # noqa: E731
start = (torch.tensor([bos_], device=device),)
assert greedy_one_by_one(table_step, start[0], bos_, eos_, 3)[0][0] == [a_, a_, a_]  # p = 0.6 * 0.34 * 0.34
words, score = beam_search(table_step, start, bos_, eos_, max_len=3, beam_width=2)
assert list(words) == [b_, a_], (f"beam search (width 2) returned {words}, the most probable output is [b, a] "
                                 f"(p = 0.4 * 0.9 * 1); hint: {hint}")
assert_close(torch.tensor(float(score)), torch.tensor(math.log(0.4 * 0.9)), name="score of [b, a, eos]", hint=hint)

torch.manual_seed(23)
for seed in range(4):
    V, max_len = 4, 3
    step_fn = tiny_model(V, 3, seed=seed)
    start = (torch.randn(1, 3, dtype=torch.float64).to(device),)
    eos_tiny = seed % V
    # width V ** max_len: nothing is ever dropped, so beam search is exhaustive search
    words, score = beam_search(step_fn, start, V, eos_tiny, max_len, beam_width=V**max_len)
    best_words, best_score = exhaustive_search(step_fn, start, V, eos_tiny, max_len)
    assert list(words) == best_words, (f"model {seed}: beam search with width {V ** max_len} returned {words}, "
                                       f"exhaustive search finds {best_words}; hint: {hint}")
    assert_close(torch.tensor(float(score)), torch.tensor(best_score), name=f"model {seed}: best score", hint=hint)
    # width 1 is greedy decoding (the reference of the greedy test, one sequence at a time)
    words1, score1 = beam_search(step_fn, start, V, eos_tiny, max_len, beam_width=1)
    (greedy_words, greedy_score), = greedy_one_by_one(step_fn, start[0], V, eos_tiny, max_len)
    assert list(words1) == greedy_words, (f"model {seed}: beam width 1 returned {words1}, "
                                          f"greedy decoding {greedy_words}; hint: {hint}")
    assert_close(torch.tensor(float(score1)), torch.tensor(greedy_score), name=f"model {seed}: width-1 score",
                 hint=hint)
print("beam_search: exhaustive with a full beam, greedy with width 1, and it beats greedy where greedy is wrong.")
### BEGIN HIDDEN TESTS
torch.manual_seed(24)
for seed in range(4, 8):
    V, max_len = 3, 4
    step_fn = tiny_model(V, 2, seed=seed)
    start = (torch.randn(1, 2, dtype=torch.float64).to(device),)
    words, score = beam_search(step_fn, start, V, 1, max_len, beam_width=V**max_len)
    best_words, best_score = exhaustive_search(step_fn, start, V, 1, max_len)
    assert list(words) == best_words, f"model {seed}: full beam vs exhaustive (V=3, max_len=4)"
    words1, _ = beam_search(step_fn, start, V, 1, max_len, beam_width=1)
    assert list(words1) == greedy_one_by_one(step_fn, start[0], V, 1, max_len)[0][0], f"model {seed}: width 1 vs greedy"
### END HIDDEN TESTS

# %% [markdown]
# ### 6e. Greedy against beam search, and where the model looks
#
# Both decoders on the 1,000 validation numbers (exact match of the whole
# output), then the one with the best validation accuracy (beam width 1, that is
# greedy, 2 or 4) once on the 1,000 test numbers.

# %%
require_written(additive_attention, greedy_decode, beam_search)
eval_val = val_numbers[: dlcourse.budget(full=1000, grading=20)]
with torch.no_grad():
    digits, lengths, _ = number_batch(eval_val)
    greedy_outputs, greedy_scores = greedy_decode(translator_step, translator.encode(digits.to(device), lengths),
                                                  BOS, EOS, MAX_WORDS)
    targets = [encode_words(n)[:-1].tolist() for n in eval_val]
    greedy_right = [out == want for out, want in zip(greedy_outputs, targets)]
    print(f"greedy decoding:      validation accuracy {sum(greedy_right) / len(eval_val):.1%} "
          f"({sum(greedy_right)} of {len(eval_val)})")

    def beam_outputs(numbers, width):
        results = []
        for n in numbers:
            digits1, lengths1, _ = number_batch([n])
            results.append(beam_search(translator_step, translator.encode(digits1.to(device), lengths1),
                                       BOS, EOS, MAX_WORDS, width))
        return results

    started = time.perf_counter()
    beam_results = {}
    for width in (2, 4):
        beam_results[width] = beam_outputs(eval_val, width)
        right = [list(words) == want for (words, _), want in zip(beam_results[width], targets)]
        print(f"beam search, width {width}: validation accuracy {sum(right) / len(eval_val):.1%} ({sum(right)} of "
              f"{len(eval_val)})")
    print(f"beam search: {time.perf_counter() - started:.0f} s for both widths, one number at a time")
    changed = [i for i, (words, _) in enumerate(beam_results[4]) if list(words) != greedy_outputs[i]]
    higher = sum(beam_results[4][i][1] > greedy_scores[i].item() + 1e-6 for i in range(len(eval_val)))
    print(f"width 4 found a more probable output than greedy for {higher} of {len(eval_val)} numbers; its output "
          f"differs for {len(changed)}, of which {sum(list(beam_results[4][i][0]) == targets[i] for i in changed)} "
          f"right with beam search and {sum(greedy_right[i] for i in changed)} right with greedy decoding")
    for i in changed[:5]:
        print(f"  {eval_val[i]}: greedy '{' '.join(WORDS[w] for w in greedy_outputs[i])}', "
              f"beam '{' '.join(WORDS[w] for w in beam_results[4][i][0])}'")

    # the decoder chosen on validation, then the test numbers, once
    val_accuracy = {1: sum(greedy_right) / len(eval_val)}  # width 1 is greedy decoding
    val_accuracy.update({w: sum(list(words) == want for (words, _), want in zip(beam_results[w], targets)) / len(eval_val)
                         for w in beam_results})
    chosen_width = max(val_accuracy, key=lambda w: (val_accuracy[w], -w))  # a tie goes to the cheaper decoder
    eval_test = test_numbers[: dlcourse.budget(full=1000, grading=20)]
    test_right = sum(list(words) == encode_words(n)[:-1].tolist()
                     for (words, _), n in zip(beam_outputs(eval_test, chosen_width), eval_test))
    print(f"chosen on validation: beam width {chosen_width}{' (greedy)' if chosen_width == 1 else ''}; "
          f"test accuracy {test_right / len(eval_test):.1%} ({test_right} of {len(eval_test)})")

# %% [markdown]
# The weights of 6a, recorded while greedy decoding writes four validation
# numbers: row $t$ is the attention the decoder used to write word $t$, column
# $s$ a digit of the source.

# %%
require_written(additive_attention, greedy_decode)
shown = [next(n for n in val_numbers if n >= 1000 and 10 <= n % 100 < 20),  # a teen: two digits, one word
         next(n for n in val_numbers if n >= 1000 and n // 100 % 10 == 0),  # a zero: no word for it
         next(n for n in val_numbers if 100 <= n < 1000), next(n for n in val_numbers if 20 <= n < 100)]
fig, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown), 3.4))
for ax, n in zip(axes, shown):
    recorded = []

    def recording_step(tokens, state):
        log_probs, state, weights = translator.decode_step(tokens, state)
        recorded.append(weights[0].cpu())
        return log_probs, state

    digits1, lengths1, _ = number_batch([n])
    with torch.no_grad():
        (written,), _ = greedy_decode(recording_step, translator.encode(digits1.to(device), lengths1), BOS, EOS,
                                      MAX_WORDS)
    labels = [WORDS[w] for w in written] + ["<eos>"]
    ax.imshow(torch.stack(recorded[: len(labels)]).numpy(), cmap="Greys", vmin=0, vmax=1)
    ax.set_xticks(range(len(str(n))), list(str(n)))
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("source digit")
    ax.set_title(f"{n}: {'right' if written == encode_words(n)[:-1].tolist() else 'wrong'}")
plt.suptitle("attention weights while writing each word (validation numbers, greedy decoding)")
plt.tight_layout()
plt.show()

# %% [markdown]
# *Figure: attention weights (black = 1, white = 0) of the trained translator for
# four validation numbers; each row is one word the greedy decoder wrote (and
# `<eos>`), each column one digit of the number.*
#
# Each word that names a digit (`three`, `one`, `six`, `eighty`, `five`) puts almost
# all its weight on that digit, and the rows move left to right through the number
# as the words do: the decoder has learned to read the source in order. The
# teen of 3114, `fourteen`, is written while looking mostly at its tens digit
# `1`, the digit that makes it a teen; `fifty` in 5054 splits its weight between
# the `0` (no hundreds word) and the `5`. The structure words are less sharp:
# `thousand` keeps about half its weight on the digit it follows, `hundred` looks
# ahead to the tens digit, and `<eos>` spreads over the number. The last panel
# shows an error of this 100-step model: for 33 it writes `hundred` while looking
# at the second `3`, as if the number had three digits.
#
# The printed accuracies compare the two decoders on the validation numbers:
# beam search (width 2 or 4) is about a point more accurate than greedy decoding
# here, and the example lines show why: greedy decoding commits to a word (for
# 381, `thousand` after `three`) that the rest of the output cannot undo, while
# the beam also keeps the prefix that turns out more probable. A wider beam is
# not always better: width 4 finds outputs the model prefers, and the model's
# preference is not correctness (it found more probable outputs than greedy for
# more numbers than it fixed). The test accuracy is printed once, for the decoder
# chosen on validation. Try training for longer (`seq2seq_steps`): does the gap
# between greedy and beam search grow or shrink as the model becomes surer of
# each word?

# %% [markdown]
# ## 7. Written questions
#
# Answer in a few sentences each, in the cells below (they are graded by hand).
#
# **Question 1.** Why does the forget gate help an LSTM keep information (and
# gradients) over long spans, where a vanilla RNN fails? Refer to your
# `lstm_step_backward` and to the plots in sections 2 and 3c.

# %% [markdown] answer="q_forget_gate" points=2
# ### BEGIN SOLUTION
# The cell state is updated additively, $c_t = f_t \odot c_{t-1} + i_t \odot g_t$,
# so $\partial c_t / \partial c_{t-1} = \operatorname{diag}(f_t)$: in the backward
# pass `dc_prev = dc * f`, with no weight matrix and no tanh derivative on this
# path. In a vanilla RNN every step multiplies the gradient by
# $\operatorname{diag}(1-h_t^2)\,W_h^\top$, whose repeated product shrinks (or
# grows) exponentially with the distance: the straight line on the log plot of
# 3c, and the RNN curve of section 2 falling by dozens of orders of magnitude.
# When the forget gate is close to 1 the LSTM copies the cell forward almost
# unchanged and the gradient flows back along it almost unchanged: the "forget
# bias 3" curves stay within a few orders of magnitude over 60 (3c) and 200
# (section 2) steps. Because $f_t$ is computed from the input, the network
# *learns* when to keep (f near 1) and when to erase (f near 0), instead of
# having a fixed decay. A default LSTM (forget bias 0, $f \approx 0.5$) still
# halves the cell gradient at every step, which is why the forget bias is often
# initialised to 1 or more.
# ### END SOLUTION

# %% [markdown]
# **Question 2.** In section 4 the bag-of-characters model stays at the
# majority-class line while the recurrent models do much better. Explain
# exactly why it cannot do better on this task, and name a task on the same
# names for which the same bag-of-characters model would beat the majority
# class.

# %% [markdown] answer="q_bag_of_chars" points=2
# ### BEGIN SOLUTION
# A shuffled name has exactly the same letters, with the same counts, as a real
# name, and each name appears in only one of the two classes with probability
# 1/2. The bag of characters sees only the (masked) mean of the letter
# embeddings, a function of the multiset of letters, which is the same for a
# name and all its shuffles; so for every bag of letters the two labels are
# equally likely, and no function of the bag beats a coin flip (or the majority
# class). The recurrent models read the letters in order and can check which
# letters follow which. The same baseline would work for any label that depends
# on which letters occur: for example male versus female first names (endings
# such as "a" are frequent in female names, so the letter counts carry signal),
# first versus last names, or "contains a rare letter such as q, x or z".
# ### END SOLUTION

# %% [markdown]
# **Question 3.** In truncated BPTT the state is carried across chunk borders
# but the graph is cut (`detach_hidden`). What does the model's *forward* pass
# get from the carried state, and what can its *training* still not learn,
# however long it trains? How would you choose `seq_len`?

# %% [markdown] answer="q_tbptt" points=2
# ### BEGIN SOLUTION
# Forward, the carried state gives every chunk the context of everything read
# before it, so predictions near the start of a chunk are as good as in the
# middle (the carried-versus-reset plot: the reset model pays at every border).
# But the gradient stops at the border: a loss in chunk $k+1$ cannot change how
# the state was computed in chunk $k$. So the model is never trained to *store*
# information for more than about `seq_len` steps; a dependency longer than
# the chunk is only learned if it happens to be kept by what is learned for
# shorter ones. Choose `seq_len` at least as long as the dependencies that
# matter (a name: about 10 characters; a line of verse: about 40), and as long
# as memory and time allow, since the cost of a step grows linearly with it;
# longer chunks also mean fewer optimiser steps per epoch.
# ### END SOLUTION

# %% [markdown]
# ## Project: RNN, GRU or LSTM at the same size?
#
# Section 4 compared the three cells on names at one size each. Here you compare
# them as a language model, fairly: **the same number of parameters** for each
# (so the LSTM, with four gate blocks, gets a smaller hidden state than the GRU
# with three, and the plain RNN the largest), the same data and the same budget.
#
# - **Data:** the character corpus of section 5 (tiny Shakespeare, or offline the
#   names stand-in: the printed lines say which), split by position into train
#   (the first 80%), validation (the next 10%) and test (the last 10%). Tune on
#   validation only; evaluate the test split **once**, at the end, for the model
#   you chose.
# - **Budget:** 600 optimizer steps in total, tuning runs included, batches of
#   32 windows of 64 characters (`project.step(loss)` counts them; one step over
#   raises). Each model may have at most 20,000 parameters.
# - **Metric:** validation loss in nats per character (`val_loss`, lower is better).
# - **Hand in:** the notebook with its outputs: the ablation table (every
#   configuration you tried with its validation loss), the results table and
#   record line that `project.report` prints, and the write-up below the rubric:
#   your design (sizes, settings tried), what the ablation table shows, your
#   choice and its test loss, and what this comparison cannot tell.
#
# With tiny Shakespeare (65 characters, where a uniform guess costs 4.17 nats),
# we expect a 20,000-parameter model to reach roughly 2.0 to 2.4 nats per
# character in 600 steps, on a Colab T4 in well under a minute (an estimate: not
# measured for this notebook, whose executed run used the offline stand-in on a
# CPU).

# %%
from dlcourse.projects import Project

project = Project("03_rnn", metric="val_loss", higher_is_better=False,
                  budget_steps=dlcourse.budget(full=600, grading=60), data=corpus_name)
project_train = data[: int(0.8 * len(data))]
project_val = data[int(0.8 * len(data)) : int(0.9 * len(data))]
project_test = data[int(0.9 * len(data)) :]
print(f"project splits: train {len(project_train):,}, validation {len(project_val):,}, "
      f"test {len(project_test):,} characters ({corpus_name})")

# %% solution="project_03_cells"
PARAMETER_LIMIT = 20_000
# Your project: a model of each cell (rnn, gru, lstm) within PARAMETER_LIMIT parameters, trained on
# project_train; tuning runs scored on project_val with project.validate(val_loss); every optimizer step
# counted with project.step(loss) (all runs together within project.budget_steps; seed each run from
# project.seed); the ablation table with project.ablation(rows); the test split used once, for the model
# you chose, with project.evaluate_test(...); and, last, project.report(val_loss=..., test_loss=..., params=...).
### BEGIN SOLUTION


class CellLM(nn.Module):
    """Embedding -> one recurrent layer (rnn, gru or lstm) -> linear head."""

    def __init__(self, cell, vocab_size, hidden_size, embed_dim=16):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.rnn = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cell](embed_dim, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, idx):
        return self.head(self.rnn(self.embedding(idx))[0])


def parameter_count(model):
    return sum(p.numel() for p in model.parameters())


def largest_hidden_size(cell, vocab_size, limit=PARAMETER_LIMIT):
    """The largest hidden size whose model stays within `limit` parameters: equal size for every cell."""
    hidden = 1
    while parameter_count(CellLM(cell, vocab_size, hidden + 1)) <= limit:
        hidden += 1
    return hidden


def window_batch(source, generator, batch_size=32, seq_len=64):
    """Random windows of the training text (batch order from a CPU generator: the same on any device)."""
    starts = torch.randint(0, len(source) - seq_len - 1, (batch_size,), generator=generator)
    windows = torch.stack([source[s : s + seq_len + 1] for s in starts.tolist()])
    return windows[:, :-1].to(device), windows[:, 1:].to(device)


def nats_per_char(model, source, seq_len=64):
    """Mean cross-entropy over consecutive windows of `source` (each window starts from a zero state)."""
    usable = (len(source) - 1) // seq_len * seq_len
    inputs = source[:usable].view(-1, seq_len).to(device)
    targets = source[1 : usable + 1].view(-1, seq_len).to(device)
    model.eval()
    with torch.no_grad():
        loss = sum(F.cross_entropy(model(inputs[i : i + 256]).flatten(0, 1), targets[i : i + 256].flatten(),
                                   reduction="sum").item() for i in range(0, len(inputs), 256))
    model.train()
    return loss / targets.numel()


configurations = [(cell, lr) for cell in ("rnn", "gru", "lstm") for lr in (3e-3, 1e-2)]
steps_per_run = project.budget_steps // len(configurations)
val_source = project_val[: dlcourse.budget(full=len(project_val), grading=4000)]
batch_generator = torch.Generator().manual_seed(project.seed)
results, trained = [], {}
started = time.perf_counter()
for run, (cell, lr) in enumerate(configurations):
    hidden_size = largest_hidden_size(cell, len(vocab))
    torch.manual_seed(project.seed + run)  # every run starts from its own seed, whatever ran before
    lm = CellLM(cell, len(vocab), hidden_size).to(device)
    optimizer = torch.optim.Adam(lm.parameters(), lr=lr)
    for _ in range(steps_per_run):
        inputs, targets = window_batch(project_train, batch_generator)
        loss = F.cross_entropy(lm(inputs).flatten(0, 1), targets.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        project.step(loss)
    val_loss = project.validate(nats_per_char(lm, val_source))
    results.append({"variant": f"{cell.upper()}, hidden {lm.rnn.hidden_size}, lr {lr:g}", "val_loss": val_loss,
                    "params": parameter_count(lm)})
    trained[results[-1]["variant"]] = lm
print(f"{len(configurations)} runs of {steps_per_run} steps in {time.perf_counter() - started:.0f} s on {device}")
project.ablation(results)
best = min(results, key=lambda row: row["val_loss"])
test_loss = project.evaluate_test(lambda: nats_per_char(trained[best["variant"]], project_test))
print(f"chosen on validation: {best['variant']}")
project.report(val_loss=best["val_loss"], test_loss=test_loss, params=max(row["params"] for row in results))
### END SOLUTION

# %% tests="test_project_03" points=2
from dlcourse import projects

record = projects.submitted_record(project)
projects.check_well_formed(record, "03_rnn", "val_loss")
projects.check_budget(record, 600)
projects.check_test_used_once(record)
projects.check_reproduces(record, project)
print("project record: well formed, within 600 steps, test set used once, and the re-run starts like it.")

# %% [markdown] rubric="project_03"
# | criterion | points |
# | --- | --- |
# | equal size: each model's parameter count printed and within the limit, hidden sizes chosen for it | 1 |
# | tuning on validation only: at least two settings per cell in the ablation table, test used once | 2 |
# | the write-up reads the printed tables: which cell wins, by how much, and whether the gap exceeds what tuning changed | 2 |
# | one sentence on what the comparison cannot tell (one budget, one size, one seed, the data) | 1 |

# %% [markdown] answer="project_03_writeup" points=6
# ### BEGIN SOLUTION
# **Design.** One recurrent layer of each cell, a 16-dimensional embedding, and
# the largest hidden size that keeps the model within 20,000 parameters: RNN 119
# units (19,975 parameters), GRU 68 (19,839), LSTM 58 (19,657), as the ablation
# table prints. Each cell was trained with Adam at two learning rates, 0.003 and
# 0.01, for 100 steps each (6 runs: the whole budget of 600 steps) on random
# windows of 64 characters, and scored on the validation split.
#
# **What the table shows.** The learning rate mattered more than the cell: 0.01
# beat 0.003 for every cell, by 0.06 nats (RNN, 2.4279 to 2.3655), 0.11 (GRU,
# 2.4382 to 2.3298) and 0.11 (LSTM, 2.4632 to 2.3580). At 0.01 the GRU was best,
# 2.3298 nats per character, 0.03 ahead of the LSTM and 0.04 ahead of the RNN. I
# chose the GRU at 0.01; its test loss, measured once, is 2.3250, close to its
# validation loss, as it should be on a split it was not tuned on.
#
# **What it cannot tell.** One seed per configuration, so gaps of 0.03 to 0.04
# nats may be within what another seed changes; one short budget (100 steps per
# run, far from converged: a cell that starts slower may catch up); one size and
# two learning rates; and the names stand-in, whose useful context is one name of
# about 8 characters, so the long memory where the gated cells should pull ahead
# is barely used. More seeds, a learning-rate sweep per cell and tiny Shakespeare
# are the next steps.
# ### END SOLUTION
