# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · Setup: Colab, tensors, autograd and a first model
#
# **Expected work:** about 3 hours. **GPU:** not needed (only the timing in section 2
# uses one, when there is one, to show what it buys; everything else is small enough for a CPU).
#
# This warm-up assignment gets your environment working and introduces the things
# every later assignment uses: **tensors**, **devices**, **autograd**, the
# **training loop**, and a network written the PyTorch way: an `nn.Module`, a
# `DataLoader`, and separate training and evaluation loops. It is graded like every assignment: fill in the cells marked
# `YOUR CODE HERE`, run the tests below each one, then hand in the `.ipynb`.
#
# **How grading works.** The cells with `assert`s are tests. The ones you see are
# there to help you; the grader adds hidden tests of the same functions. A test
# cell gives you its points when it runs to the end without an error; when it
# passes it prints one line saying so, and when it fails its error says what is
# wrong and what to look at.
#
# **Running time** (an estimate): Run All should take under a minute on a laptop
# CPU or in Colab, plus about a minute in Colab for the first cell to install `dlcourse`.

# %% [markdown]
# ## 1. Google Colab and its GPU
#
# Colab runs this notebook on a Google machine. Later assignments that train
# larger networks ask you for a GPU: open **Runtime > Change runtime type**, pick
# **T4 GPU** and save; the runtime restarts. This one does not need it (try it
# once, to see the timing of section 2 change). Everything in this course also
# runs on a CPU (slower), on your laptop in JupyterLab, or on a local NVIDIA GPU.
#
# The first code cell above this one installed the course package `dlcourse`
# when you are in Colab. The next cell prints an environment report: check that
# it shows the device you expect.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

import dlcourse
from dlcourse import doctor

doctor.print_report()
device = dlcourse.get_device()
dlcourse.seed_everything(0)
print("This notebook will use:", device)

# %% [markdown]
# ### Keeping files on Google Drive (optional)
#
# A Colab runtime is wiped when it disconnects. To keep data sets and
# checkpoints, mount your Drive: `dlcourse.mount_drive()` asks for permission and
# returns a `MyDrive/dlcourse` folder. Outside Colab it does nothing, so the cell
# is safe to run anywhere.

# %%
USE_DRIVE = False  # set to True in Colab to keep checkpoints on Drive
drive_folder = dlcourse.mount_drive() if USE_DRIVE else None
print("Drive folder:", drive_folder)

# %% [markdown]
# ## 2. Tensors and broadcasting
#
# A tensor is an n-dimensional array with a `shape`, a `dtype` and a `device`.
# **Broadcasting** lets operations combine tensors of different shapes: sizes are
# compared from the last dimension backwards, and a dimension of size 1 (or a
# missing one) is stretched to match. A `(4, 3)` matrix minus a `(3,)` vector
# subtracts the vector from every row.

# %%
x = torch.arange(12, dtype=torch.float32).reshape(4, 3)
print("x:", x.shape, x.dtype, x.device)
print("column means:", x.mean(dim=0))       # shape (3,)
print("x minus column means:\n", x - x.mean(dim=0))  # (4, 3) - (3,) broadcasts over rows
print("a column vector times a row vector:", (torch.ones(4, 1) * torch.arange(3)).shape)

# %% [markdown]
# **Exercise 2.1.** Write `standardize(x)`: given a data matrix `x` of shape
# `(n_samples, n_features)`, return it with every **feature (column)** shifted to
# mean 0 and scaled to standard deviation 1:
#
# $$ z_{ij} = \frac{x_{ij} - \mu_j}{\sigma_j + \varepsilon}, \qquad
#    \mu_j = \frac{1}{n}\sum_i x_{ij}, \quad
#    \sigma_j = \sqrt{\frac{1}{n}\sum_i (x_{ij}-\mu_j)^2} $$
#
# Use the population standard deviation (`unbiased=False`, i.e. `correction=0`) and
# $\varepsilon = 10^{-8}$ so that a constant column does not divide by zero. No
# loops: use broadcasting. Keep the input's dtype and device.

# %% solution="standardize"
def standardize(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Column-wise standardization of an (n_samples, n_features) tensor."""
    ### BEGIN SOLUTION
    mean = x.mean(dim=0, keepdim=True)
    std = x.std(dim=0, correction=0, keepdim=True)
    return (x - mean) / (std + eps)
    ### END SOLUTION


# %% tests="test_standardize" points=2
from dlcourse.checks import assert_close

data = torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 60.0]])
z = standardize(data)
assert_close(z.mean(dim=0), torch.zeros(2), atol=1e-6, name="column means of standardize(x)",
             hint="each column should have mean 0: reduce over dim=0 (the samples)")
assert_close(z.std(dim=0, correction=0), torch.ones(2), atol=1e-5, name="column stds of standardize(x)",
             hint="divide by the population std (correction=0) of each column")
assert z.dtype == data.dtype and z.shape == data.shape, (
    f"standardize changed the dtype or shape: got {z.dtype} {tuple(z.shape)}, expected {data.dtype} "
    f"{tuple(data.shape)}; hint: broadcast with keepdim=True, and do not convert the tensor")
### BEGIN HIDDEN TESTS
generator = torch.Generator().manual_seed(1)
wide = torch.randn(7, 5, generator=generator, dtype=torch.float64) * 3 + 2
expected = (wide - wide.mean(0)) / (wide.std(0, correction=0) + 1e-8)
assert_close(standardize(wide), expected, name="standardize on a float64 (7, 5) matrix")
assert standardize(wide).dtype == torch.float64, (
    f"standardize turned a float64 matrix into {standardize(wide).dtype}; hint: keep the input's dtype")
constant = torch.ones(4, 3)
assert torch.isfinite(standardize(constant)).all(), "a constant column must not give NaN or inf"
one_row = torch.tensor([[3.0, -1.0]])
assert_close(standardize(one_row), torch.zeros(1, 2), atol=1e-6, name="standardize of a single row")
### END HIDDEN TESTS
print("standardize: every column has mean 0 and standard deviation 1.")

# %% [markdown]
# **Exercise 2.2.** Squared distances between every pair of points, by
# broadcasting: given `a` of shape `(n, d)` and `b` of shape `(m, d)`, return
# `D` of shape `(n, m)` with $D_{ij} = \lVert a_i - b_j \rVert^2$.
# Hint: `a[:, None, :]` has shape `(n, 1, d)` and `b[None, :, :]` has `(1, m, d)`.
# The test compares with `torch.cdist(a, b) ** 2`, so your function may not call
# `torch.cdist`: the test fails with a message naming the call if it does.

# %% solution="pairwise_sq_distances"
def pairwise_sq_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(n, d) and (m, d) -> (n, m) squared Euclidean distances."""
    ### BEGIN SOLUTION
    diff = a[:, None, :] - b[None, :, :]
    return (diff ** 2).sum(dim=-1)
    ### END SOLUTION


# %% tests="test_pairwise_sq_distances" points=2
from dlcourse.checks import assert_close
from dlcourse import shortcuts

# torch.cdist is this exercise's reference, so your function may not call it
CDIST = ("torch.cdist", "torch.functional.cdist")
a = torch.tensor([[0.0, 0.0], [1.0, 1.0], [3.0, 4.0]])
b = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
with shortcuts.by_hand("pairwise_sq_distances", CDIST):
    D = pairwise_sq_distances(a, b)
assert D.shape == (3, 2), (f"expected shape (3, 2) for 3 points against 2, got {tuple(D.shape)}; "
                          "hint: sum the squared differences over the last dimension (d) only")
assert_close(D, torch.cdist(a, b) ** 2, atol=1e-5, name="pairwise squared distances")
### BEGIN HIDDEN TESTS
generator = torch.Generator().manual_seed(2)
p = torch.randn(5, 7, generator=generator, dtype=torch.float64)
q = torch.randn(4, 7, generator=generator, dtype=torch.float64)
with shortcuts.by_hand("pairwise_sq_distances", CDIST):
    D_pq, D_qq = pairwise_sq_distances(p, q), pairwise_sq_distances(q, q)
assert_close(D_pq, torch.cdist(p, q) ** 2, name="distances of (5, 7) and (4, 7) points")
assert_close(D_qq.diagonal(), torch.zeros(4, dtype=torch.float64), atol=1e-12,
             name="distance of every point to itself")
### END HIDDEN TESTS
print("pairwise_sq_distances matches torch.cdist squared, without calling it.")

# %% [markdown]
# ### Moving data to the device
#
# A model and its data must live on the same device. `tensor.to(device)` returns a
# copy there (or the tensor itself if it is already there). A tensor on the GPU is
# brought back with `.cpu()`, for example to plot it.

# %%
x_on_device = x.to(device)
print(x_on_device.device, "->", (x_on_device * 2).cpu().device)

# %% [markdown]
# ### What a GPU buys: one matrix product, timed
#
# A GPU runs thousands of multiply-adds at once, so it wins on large tensors; on
# tiny ones the cost of launching the work dominates. The cell below times the
# product of two square matrices on the CPU and, when this machine has one, on the
# GPU, and prints which machine it measured. GPU work is asynchronous: the Python
# call returns before the GPU has finished, so the timing waits for it
# (`torch.cuda.synchronize()`) before it stops the clock, and it runs the product
# once first (the "warm-up": the first call pays one-off start-up costs).

# %%
import platform
import time


def time_matmul(size: int, on: torch.device, repeats: int = 5) -> float:
    """Median seconds of one (size x size) @ (size x size) float32 product on `on`."""
    a = torch.randn(size, size, device=on)
    b = torch.randn(size, size, device=on)
    a @ b  # warm-up
    times = []
    for _ in range(repeats):
        if on.type == "cuda":
            torch.cuda.synchronize(on)
        started = time.perf_counter()
        a @ b
        if on.type == "cuda":
            torch.cuda.synchronize(on)
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


size = dlcourse.budget(full=2048, grading=256)
cpu_seconds = time_matmul(size, torch.device("cpu"))
print(f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads): "
      f"{size}x{size} matmul in {cpu_seconds * 1e3:.1f} ms")
if torch.cuda.is_available():
    gpu = torch.device("cuda")
    gpu_seconds = time_matmul(size, gpu)
    print(f"GPU ({torch.cuda.get_device_name(gpu)}): {gpu_seconds * 1e3:.2f} ms, "
          f"{cpu_seconds / gpu_seconds:.0f}x faster than this CPU")
else:
    print("No CUDA GPU on this machine, so only the CPU was timed. In Colab, pick a T4 GPU "
          "(Runtime > Change runtime type) and run this cell again to compare.")

# %% [markdown]
# The numbers above are this machine's, from this run. On a Colab T4 we expect the
# GPU to be tens of times faster than Colab's two CPU cores for a 2048 x 2048
# product (an estimate: the executed solution of this notebook ran without a GPU).

# %% [markdown]
# ## 3. Autograd
#
# PyTorch records the operations done on tensors with `requires_grad=True` and
# computes gradients with `backward()`. Take
#
# $$ f(x) = \sum_i x_i^2 \sin(x_i). $$
#
# By the product rule, $\dfrac{\partial f}{\partial x_i} = 2x_i\sin(x_i) + x_i^2\cos(x_i)$.
#
# **Exercise 3.1.** Implement `grad_f(x)`: that gradient computed **by hand** from
# the formula (no autograd inside). The test compares it with `torch.autograd`,
# and fails with a message naming the call if `grad_f` itself uses autograd
# (`backward()`, `torch.autograd.grad`, `torch.func.grad`, ...).

# %% solution="grad_f"
def f(x: torch.Tensor) -> torch.Tensor:
    return (x ** 2 * torch.sin(x)).sum()


def grad_f(x: torch.Tensor) -> torch.Tensor:
    """The gradient of f at x, from the formula above; same shape as x."""
    ### BEGIN SOLUTION
    return 2 * x * torch.sin(x) + x ** 2 * torch.cos(x)
    ### END SOLUTION


# %% tests="test_grad_f" points=2
from dlcourse.checks import assert_close
from dlcourse import shortcuts

point = torch.linspace(-2, 2, 5, dtype=torch.float64, requires_grad=True)
f(point).backward()  # the reference, outside the guard
with shortcuts.by_hand("grad_f", shortcuts.AUTOGRAD):
    by_formula = grad_f(point.detach())
assert_close(by_formula, point.grad, name="grad_f(x) against torch.autograd",
             hint="use the product rule: d/dx (x^2 sin x) = 2x sin x + x^2 cos x")
### BEGIN HIDDEN TESTS
generator = torch.Generator().manual_seed(3)
matrix = torch.randn(3, 4, generator=generator, dtype=torch.float64, requires_grad=True)
f(matrix).backward()
with shortcuts.by_hand("grad_f", shortcuts.AUTOGRAD):
    by_formula = grad_f(matrix.detach())
assert_close(by_formula, matrix.grad, name="grad_f on a (3, 4) tensor")
### END HIDDEN TESTS
print("grad_f matches torch.autograd, computed by hand.")

# %% [markdown]
# ## 4. A first model: linear regression
#
# We fit $\hat y = w^\top x + b$ to data from scikit-learn's `make_regression`
# by minimizing the mean squared error
# $\mathcal L = \frac{1}{n}\sum_i (\hat y_i - y_i)^2$ with gradient descent,
# through `torch.optim.SGD`. Here each step uses the whole data set (full-batch
# gradient descent); SGD proper, which section 6 uses, takes each step on a small
# random minibatch. Every training loop in this course has the same four steps:
#
# 1. `optimizer.zero_grad()`: forget the gradients of the last step (PyTorch *adds* gradients up);
# 2. forward pass and loss;
# 3. `loss.backward()`: gradients of the loss with respect to every parameter;
# 4. `optimizer.step()`: move the parameters against their gradients.

# %%
from sklearn.datasets import make_regression

X_np, y_np, true_coef = make_regression(n_samples=200, n_features=1, noise=10.0, coef=True, random_state=0)
X_train = torch.tensor(X_np, dtype=torch.float32)
y_train = torch.tensor(y_np, dtype=torch.float32).unsqueeze(1) / 10  # a friendlier scale
print("X:", tuple(X_train.shape), " y:", tuple(y_train.shape))

# %% [markdown]
# **Exercise 4.1.** Write `fit_linear_regression(X, y, epochs, lr)`: create an
# `nn.Linear(n_features, 1)`, train it on the whole data set (one full batch per
# epoch) with `nn.MSELoss()` and `torch.optim.SGD(model.parameters(), lr=lr)` for
# `epochs` steps, and return `(model, losses)` where `losses` is the list of the
# loss values (Python floats) of every step.

# %% solution="fit_linear_regression"
def fit_linear_regression(X: torch.Tensor, y: torch.Tensor, epochs: int = 100, lr: float = 0.1):
    """Full-batch SGD on the MSE; returns (model, list of per-step losses)."""
    model = nn.Linear(X.shape[1], 1).to(X.device)
    losses = []
    ### BEGIN SOLUTION
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = loss_fn(model(X), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    ### END SOLUTION
    return model, losses


# %% tests="test_fit_linear_regression" points=3
from dlcourse.checks import assert_close

torch.manual_seed(0)
model, losses = fit_linear_regression(X_train, y_train, epochs=200, lr=0.1)
assert len(losses) == 200, (f"expected one loss per step (200), got {len(losses)}; "
                            "hint: append loss.item() once inside the loop over epochs")
assert losses[-1] < losses[0], (f"the loss went from {losses[0]:.3f} to {losses[-1]:.3f}: it should go down; "
                                "hint: call optimizer.zero_grad(), loss.backward() and optimizer.step() every step")
# The least-squares fit is the best any linear model can do: compare against it.
design = torch.cat([X_train, torch.ones(len(X_train), 1)], dim=1).double()
best = torch.linalg.lstsq(design, y_train.double()).solution.squeeze()
assert_close(model.weight.detach().double().squeeze(), best[0], rtol=1e-2, atol=1e-2,
             name="fitted slope vs the least-squares slope",
             hint="check the four steps: zero_grad, forward + loss, backward, step")
### BEGIN HIDDEN TESTS
generator = torch.Generator().manual_seed(4)
X3 = torch.randn(100, 3, generator=generator)
w3 = torch.tensor([[1.5], [-2.0], [0.5]])
y3 = X3 @ w3 + 0.7
torch.manual_seed(1)
model3, losses3 = fit_linear_regression(X3, y3, epochs=300, lr=0.1)
assert_close(model3.weight.detach().T, w3, atol=1e-2, name="weights on noiseless 3-feature data")
assert_close(model3.bias.detach(), torch.tensor([0.7]), atol=1e-2, name="bias on noiseless data")
assert all(isinstance(value, float) for value in losses3), "losses must be Python floats (use loss.item())"
### END HIDDEN TESTS
print("fit_linear_regression reaches the least-squares fit.")

# %% [markdown]
# Now the fitted line over the data, and the loss curve.

# %%
dlcourse.require_written(fit_linear_regression)  # one clear line, not a traceback, until it is written
model, losses = fit_linear_regression(X_train, y_train, epochs=dlcourse.budget(full=200, grading=50), lr=0.1)
grid = torch.linspace(X_train.min(), X_train.max(), 100).unsqueeze(1)
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
left.scatter(X_train.squeeze(), y_train.squeeze(), s=10, alpha=0.6, label="data")
left.plot(grid.squeeze(), model(grid).detach().squeeze(), color="C3", label="fitted line")
left.set(xlabel="x", ylabel="y", title="Linear regression")
left.legend()
right.plot(losses)
right.set(xlabel="step", ylabel="MSE", yscale="log", title="Training loss")
plt.tight_layout()
plt.show()
print(f"final MSE {losses[-1]:.3f}; the noise added to y has variance (10 / 10)^2 = 1.0")

# %% [markdown]
# *Figure: left, the 200 points of `make_regression` (one feature, y divided by 10) with
# the fitted line; right, the training MSE after each full-batch step (log scale).* The
# loss falls fast and flattens at the noise level printed above: no line can explain the
# noise.

# %% [markdown]
# ## 5. Saving and loading a model
#
# A model's learned numbers live in its `state_dict()`, an ordered dictionary from
# parameter names to tensors. Save it with `torch.save`, and load it into a model
# of the same architecture with `load_state_dict`. (Saving the state dict, not the
# whole model object, keeps checkpoints loadable after the code changes.)
#
# **Exercise 5.1.** Write `save_and_reload(model, path)`: save the model's state
# dict to `path`, create a **new** `nn.Linear` of the same shape, load the saved
# state into it and return the new model.

# %% solution="save_and_reload"
def save_and_reload(model: nn.Linear, path: str) -> nn.Linear:
    """Round-trip a linear model's parameters through a file; returns a new model."""
    ### BEGIN SOLUTION
    torch.save(model.state_dict(), path)
    fresh = nn.Linear(model.in_features, model.out_features)
    fresh.load_state_dict(torch.load(path, weights_only=True))
    return fresh
    ### END SOLUTION


# %% tests="test_save_and_reload" points=1
import os
import tempfile

from dlcourse.checks import assert_close

original = nn.Linear(3, 2)
with tempfile.TemporaryDirectory() as folder:
    checkpoint = os.path.join(folder, "linear.pt")
    restored = save_and_reload(original, checkpoint)
    assert os.path.exists(checkpoint), ("no file at `path` after save_and_reload; "
                                        "hint: torch.save(model.state_dict(), path)")
assert restored is not original, ("save_and_reload returned the model it was given; "
                                  "hint: create a new nn.Linear and load the saved state into it")
assert_close(restored.weight, original.weight, name="restored weight")
assert_close(restored.bias, original.bias, name="restored bias")
### BEGIN HIDDEN TESTS
wide_model = nn.Linear(5, 4)
with tempfile.TemporaryDirectory() as folder:
    again = save_and_reload(wide_model, os.path.join(folder, "wide.pt"))
assert again.weight.shape == (4, 5), (
    f"the restored model's weight has shape {tuple(again.weight.shape)}, expected (4, 5); "
    "hint: build the new nn.Linear from model.in_features and model.out_features")
assert_close(again(torch.ones(2, 5)), wide_model(torch.ones(2, 5)), name="outputs of the restored (5 -> 4) model")
### END HIDDEN TESTS
print("save_and_reload: the new model has the saved weights.")

# %% [markdown]
# ## 6. A network the PyTorch way: `nn.Module`, `DataLoader`, train and evaluate
#
# Real training code has four parts, and every later assignment uses them:
#
# * a **model**, a subclass of `nn.Module`: layers created in `__init__` as
#   attributes (so that `model.parameters()` finds their weights) and a `forward`;
# * a **`Dataset`** (how to get example `i`, and how many there are) and a
#   **`DataLoader`**, which cuts it into shuffled minibatches;
# * a **training loop** over the minibatches, in **training mode** (`model.train()`);
# * an **evaluation loop** in **evaluation mode** (`model.eval()`) and inside
#   `torch.no_grad()`. The two modes matter for layers that behave differently in
#   training, such as dropout (on in training, off in evaluation) and batch norm;
#   `no_grad` stops autograd from recording a graph that nobody will use, which
#   saves memory and time. (`tensor.detach()` does the same for one tensor: it
#   returns the values without their history.)
#
# The data: two interleaving half-moons in 2-D (`sklearn.datasets.make_moons`), a
# problem no straight line separates. The `Dataset` below is written out so you
# see the two methods a `Dataset` needs.

# %%
from sklearn.datasets import make_moons
from torch.utils.data import DataLoader, Dataset


class MoonsDataset(Dataset):
    """Two interleaving half-moons: (point (2,) float32, label 0 or 1) pairs."""

    def __init__(self, n_samples: int, seed: int):
        points, labels = make_moons(n_samples=n_samples, noise=0.2, random_state=seed)
        self.points = torch.tensor(points, dtype=torch.float32)
        self.labels = torch.tensor(labels, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.points[index], self.labels[index]


moons_train, moons_val = MoonsDataset(800, seed=0), MoonsDataset(400, seed=1)
moons_train_loader = DataLoader(moons_train, batch_size=32, shuffle=True)
moons_val_loader = DataLoader(moons_val, batch_size=100)
points, labels = next(iter(moons_train_loader))
print(f"{len(moons_train)} training and {len(moons_val)} validation points; "
      f"one minibatch: points {tuple(points.shape)}, labels {tuple(labels.shape)}")

# %% [markdown]
# **Exercise 6.1.** Write `TwoLayerNet(in_features, hidden, out_features, dropout)`,
# an `nn.Module` computing
# `Linear(in_features, hidden) -> ReLU -> Dropout(dropout) -> Linear(hidden, out_features)`.
# Create the layers in `__init__` as attributes (or inside an `nn.Sequential`) so
# that `parameters()` finds them: the test counts the parameters, and checks the
# output against the same computation done with your model's own weights.

# %% solution="two_layer_net"
class TwoLayerNet(nn.Module):
    """Linear -> ReLU -> Dropout -> Linear, for inputs (N, in_features); outputs (N, out_features)."""

    def __init__(self, in_features: int, hidden: int, out_features: int, dropout: float = 0.0):
        super().__init__()
        ### BEGIN SOLUTION
        self.hidden = nn.Linear(in_features, hidden)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden, out_features)
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        return self.output(self.dropout(torch.relu(self.hidden(x))))
        ### END SOLUTION


# %% tests="test_two_layer_net" points=2
from dlcourse.checks import assert_close


def check_two_layer_net(in_features, hidden, out_features, batch):
    model = TwoLayerNet(in_features, hidden, out_features).double()
    count = sum(p.numel() for p in model.parameters())
    expected_count = (in_features + 1) * hidden + (hidden + 1) * out_features
    assert count == expected_count, (
        f"TwoLayerNet({in_features}, {hidden}, {out_features}) has {count} parameters, expected {expected_count}; "
        "hint: create both nn.Linear layers in __init__ as attributes (self.name = ...), so parameters() finds them")
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 2, f"expected 2 nn.Linear layers, found {len(linears)}"
    first, second = sorted(linears, key=lambda m: m.in_features != in_features)
    x = torch.randn(batch, in_features, dtype=torch.float64)
    expected = torch.relu(x @ first.weight.T + first.bias) @ second.weight.T + second.bias
    model.eval()
    assert_close(model(x), expected, name=f"TwoLayerNet({in_features}, {hidden}, {out_features}) output",
                 hint="Linear, then ReLU, then Dropout, then Linear: no ReLU after the last layer")


torch.manual_seed(0)
check_two_layer_net(2, 16, 2, batch=5)
# dropout is on in training mode and off in evaluation mode
model = TwoLayerNet(3, 50, 1, dropout=0.5)
x = torch.randn(4, 3)
model.train()
assert not torch.equal(model(x), model(x)), (
    "in training mode two calls on the same input gave the same output: dropout is not applied; "
    "hint: put nn.Dropout(dropout) between the ReLU and the last Linear")
model.eval()
assert torch.equal(model(x), model(x)), "in evaluation mode the output must be deterministic (dropout off)"
### BEGIN HIDDEN TESTS
check_two_layer_net(7, 3, 4, batch=1)
check_two_layer_net(1, 9, 3, batch=6)
### END HIDDEN TESTS
print("TwoLayerNet: right parameters, right output, dropout only in training mode.")

# %% [markdown]
# **Exercise 6.2.** Write `evaluate(model, loader, loss_fn)`: put the model in
# evaluation mode, and inside `torch.no_grad()` run it on every minibatch of
# `loader`; return `(mean_loss, accuracy)` as Python floats over **all examples**.
# `loss_fn` returns a minibatch's *mean* loss, so weight each by its minibatch
# size (the last minibatch can be smaller); the accuracy is the fraction of
# examples whose highest output is the label. The test checks the mode and the
# `no_grad` from inside the model, and uses a data set whose last minibatch is short.
#
# **Exercise 6.3.** Write `train_one_epoch(model, loader, optimizer, loss_fn)`:
# put the model in training mode, then for every minibatch do the four steps of
# section 4; return the mean of the minibatch losses (a Python float). The test
# compares your model after one epoch with a copy trained by a reference loop.

# %% solution="evaluate"
def evaluate(model: nn.Module, loader: DataLoader, loss_fn) -> tuple[float, float]:
    """(mean loss, accuracy) of `model` over every example of `loader`, in eval mode, without gradients."""
    ### BEGIN SOLUTION
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    with torch.no_grad():
        for points, labels in loader:
            logits = model(points)
            total_loss += loss_fn(logits, labels).item() * len(labels)
            correct += (logits.argmax(dim=1) == labels).sum().item()
            count += len(labels)
    return total_loss / count, correct / count
    ### END SOLUTION


# %% solution="train_one_epoch"
def train_one_epoch(model: nn.Module, loader: DataLoader, optimizer, loss_fn) -> float:
    """One pass over `loader` in training mode; returns the mean minibatch loss."""
    ### BEGIN SOLUTION
    model.train()
    losses = []
    for points, labels in loader:
        optimizer.zero_grad()
        loss = loss_fn(model(points), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return sum(losses) / len(losses)
    ### END SOLUTION


# %% tests="test_evaluate" points=2
from torch.utils.data import DataLoader, TensorDataset

from dlcourse.checks import assert_close


class Recorder(nn.Module):
    """A linear classifier that notes, at every call, its mode and whether autograd is recording."""

    def __init__(self, in_features, classes):
        super().__init__()
        self.linear = nn.Linear(in_features, classes)
        self.calls = []

    def forward(self, x):
        self.calls.append((self.training, torch.is_grad_enabled()))
        return self.linear(x)


def check_evaluate(n, in_features, classes, batch_size):
    torch.manual_seed(n)
    inputs, targets = torch.randn(n, in_features), torch.randint(0, classes, (n,))
    model = Recorder(in_features, classes)
    model.train()
    loss, accuracy = evaluate(model, DataLoader(TensorDataset(inputs, targets), batch_size=batch_size),
                              nn.functional.cross_entropy)
    assert isinstance(loss, float) and isinstance(accuracy, float), (
        f"evaluate returned {type(loss).__name__} and {type(accuracy).__name__}; hint: return Python floats (.item())")
    assert model.calls and all(not training for training, _ in model.calls), (
        "the model ran in training mode; hint: call model.eval() before the loop")
    assert all(not recording for _, recording in model.calls), (
        "autograd was recording during evaluation; hint: run the loop inside `with torch.no_grad():`")
    with torch.no_grad():
        outputs = model.linear(inputs)
    assert_close(loss, nn.functional.cross_entropy(outputs, targets).item(), atol=1e-6,
                 name=f"mean loss over {n} examples in minibatches of {batch_size}",
                 hint="weight each minibatch's mean loss by its size, then divide by the number of examples")
    assert_close(accuracy, (outputs.argmax(1) == targets).float().mean().item(), atol=1e-9,
                 name="accuracy", hint="the fraction of all examples whose highest output is the label")


check_evaluate(n=10, in_features=3, classes=4, batch_size=4)  # minibatches of 4, 4 and 2
### BEGIN HIDDEN TESTS
check_evaluate(n=7, in_features=2, classes=2, batch_size=7)
check_evaluate(n=21, in_features=5, classes=3, batch_size=2)
### END HIDDEN TESTS
print("evaluate: eval mode, no gradients, the mean over every example.")

# %% tests="test_train_one_epoch" points=2
import copy

from torch.utils.data import DataLoader, TensorDataset

from dlcourse.checks import assert_close


def check_train_one_epoch(n, batch_size, lr, seed):
    torch.manual_seed(seed)
    inputs, targets = torch.randn(n, 3), torch.randint(0, 2, (n,))
    loader = DataLoader(TensorDataset(inputs, targets), batch_size=batch_size)  # no shuffling: same order twice
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
    reference = copy.deepcopy(model)
    modes = []
    model.register_forward_pre_hook(lambda module, args: modes.append(module.training))
    model.eval()
    mean_loss = train_one_epoch(model, loader, torch.optim.SGD(model.parameters(), lr=lr), nn.functional.cross_entropy)
    assert modes and all(modes), "the model ran in evaluation mode; hint: call model.train() before the loop"
    optimizer = torch.optim.SGD(reference.parameters(), lr=lr)
    losses = []
    for batch_inputs, batch_targets in loader:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(reference(batch_inputs), batch_targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert isinstance(mean_loss, float), f"train_one_epoch returned a {type(mean_loss).__name__}, expected a float"
    assert_close(mean_loss, sum(losses) / len(losses), atol=1e-6, name="mean minibatch loss of the epoch",
                 hint="append loss.item() for every minibatch and return their mean")
    for (name, got), want in zip(model.named_parameters(), reference.parameters()):
        assert_close(got, want, atol=1e-6, name=f"parameter {name} after one epoch",
                     hint="every minibatch: zero_grad, forward + loss, backward, step")


check_train_one_epoch(n=24, batch_size=8, lr=0.5, seed=0)
### BEGIN HIDDEN TESTS
check_train_one_epoch(n=10, batch_size=3, lr=0.1, seed=1)
check_train_one_epoch(n=5, batch_size=5, lr=1.0, seed=2)
### END HIDDEN TESTS
print("train_one_epoch: training mode, the four steps on every minibatch, the mean loss.")

# %% [markdown]
# Now the whole loop: train for a few epochs with Adam, evaluating on the
# validation points after each one.

# %%
dlcourse.require_written(TwoLayerNet, evaluate, train_one_epoch)
torch.manual_seed(0)
moons_model = TwoLayerNet(2, 32, 2, dropout=0.1)
moons_optimizer = torch.optim.Adam(moons_model.parameters(), lr=0.01)
moons_history = {"train_loss": [], "val_loss": [], "val_accuracy": []}
for epoch in range(1, dlcourse.budget(full=30, grading=3) + 1):
    train_loss = train_one_epoch(moons_model, moons_train_loader, moons_optimizer, nn.functional.cross_entropy)
    val_loss, val_accuracy = evaluate(moons_model, moons_val_loader, nn.functional.cross_entropy)
    for key, value in zip(moons_history, (train_loss, val_loss, val_accuracy)):
        moons_history[key].append(value)
    if epoch % 5 == 0 or epoch == 1:
        print(f"epoch {epoch:2d}: train loss {train_loss:.3f}, validation loss {val_loss:.3f}, "
              f"validation accuracy {val_accuracy:.1%}")

grid_x, grid_y = torch.meshgrid(torch.linspace(-2, 3, 200), torch.linspace(-1.5, 2, 200), indexing="xy")
with torch.no_grad():
    moons_model.eval()
    grid_class = moons_model(torch.stack([grid_x.flatten(), grid_y.flatten()], dim=1)).argmax(1).reshape(grid_x.shape)
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
left.contourf(grid_x, grid_y, grid_class, alpha=0.25, cmap="coolwarm")
left.scatter(moons_val.points[:, 0], moons_val.points[:, 1], c=moons_val.labels, s=8, cmap="coolwarm")
left.set(title="validation points and the learned decision regions", xlabel="x1", ylabel="x2")
right.plot(range(1, len(moons_history["train_loss"]) + 1), moons_history["train_loss"], marker="o", label="train")
right.plot(range(1, len(moons_history["val_loss"]) + 1), moons_history["val_loss"], marker="o", label="validation")
right.set(title="cross-entropy per epoch", xlabel="epoch", ylabel="loss")
right.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# *Figure: left, the 400 validation points of the two moons, coloured by label, over the
# regions where the trained `TwoLayerNet` predicts each class; right, the mean training
# and validation loss after each epoch.* The boundary bends around the moons, which no
# straight line could do: that is what the hidden layer and its ReLU buy.

# %% [markdown]
# ## What's next
#
# You have a working environment, you can shape and move tensors, you know that
# autograd computes the gradients you would derive by hand, and you have trained
# and saved a model, and you have written a module, a training loop and an
# evaluation loop the way every later assignment does. In **01** you will write
# autograd yourself.
