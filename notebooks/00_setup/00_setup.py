# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # HW0: Setting up: Colab, GPUs, tensors, autograd and a first model
#
# This warm-up assignment gets your environment working and introduces the four
# things every later assignment uses: **tensors**, **devices**, **autograd** and the
# **training loop**. It is graded like every assignment: fill in the cells marked
# `YOUR CODE HERE`, run the tests below each one, then hand in the `.ipynb`.
#
# **How grading works.** The cells with `assert`s are tests. The ones you see are
# there to help you; the grader adds hidden tests of the same functions. A test
# cell gives you its points when it runs to the end without an error; when it
# passes it prints one line saying so, and when it fails its error says what is
# wrong and what to look at.
#
# **Time.** Run All takes under a minute on a laptop CPU and about the same on a
# Colab T4 (nothing here is heavy enough for the GPU to matter), plus about a
# minute in Colab for the first cell to install `dlcourse`.

# %% [markdown]
# ## 1. Google Colab and its GPU
#
# Colab runs this notebook on a Google machine. To get a GPU, open
# **Runtime > Change runtime type**, pick **T4 GPU** and save; the runtime
# restarts. Everything in this course also runs on a CPU (slower), on your laptop
# in JupyterLab, or on a local NVIDIA GPU.
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
from dlcourse.shortcuts import by_hand

# torch.cdist is this exercise's reference, so your function may not call it
CDIST = ("torch.cdist", "torch.functional.cdist")
a = torch.tensor([[0.0, 0.0], [1.0, 1.0], [3.0, 4.0]])
b = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
with by_hand("pairwise_sq_distances", CDIST):
    D = pairwise_sq_distances(a, b)
assert D.shape == (3, 2), (f"expected shape (3, 2) for 3 points against 2, got {tuple(D.shape)}; "
                          "hint: sum the squared differences over the last dimension (d) only")
assert_close(D, torch.cdist(a, b) ** 2, atol=1e-5, name="pairwise squared distances")
### BEGIN HIDDEN TESTS
generator = torch.Generator().manual_seed(2)
p = torch.randn(5, 7, generator=generator, dtype=torch.float64)
q = torch.randn(4, 7, generator=generator, dtype=torch.float64)
with by_hand("pairwise_sq_distances", CDIST):
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
from dlcourse.shortcuts import AUTOGRAD, by_hand

point = torch.linspace(-2, 2, 5, dtype=torch.float64, requires_grad=True)
f(point).backward()  # the reference, outside the guard
with by_hand("grad_f", AUTOGRAD):
    by_formula = grad_f(point.detach())
assert_close(by_formula, point.grad, name="grad_f(x) against torch.autograd",
             hint="use the product rule: d/dx (x^2 sin x) = 2x sin x + x^2 cos x")
### BEGIN HIDDEN TESTS
generator = torch.Generator().manual_seed(3)
matrix = torch.randn(3, 4, generator=generator, dtype=torch.float64, requires_grad=True)
f(matrix).backward()
with by_hand("grad_f", AUTOGRAD):
    by_formula = grad_f(matrix.detach())
assert_close(by_formula, matrix.grad, name="grad_f on a (3, 4) tensor")
### END HIDDEN TESTS
print("grad_f matches torch.autograd, computed by hand.")

# %% [markdown]
# ## 4. A first model: linear regression
#
# We fit $\hat y = w^\top x + b$ to data from scikit-learn's `make_regression`
# by minimizing the mean squared error
# $\mathcal L = \frac{1}{n}\sum_i (\hat y_i - y_i)^2$ with stochastic gradient
# descent. Every training loop in this course has the same four steps:
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
# Now the fitted line over the data, and the loss curve. The loss falls fast and
# flattens at the noise level: no line can explain the noise.

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
# ## What's next
#
# You have a working environment, you can shape and move tensors, you know that
# autograd computes the gradients you would derive by hand, and you have trained
# and saved a model. In **01_backprop** you will write autograd yourself.
