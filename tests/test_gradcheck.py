"""dlcourse.gradcheck against torch.autograd (float64), for NumPy arrays and torch tensors."""

import numpy as np
import pytest
import torch

from dlcourse.checks import CheckError
from dlcourse.gradcheck import check_gradients, numerical_gradient, numerical_gradients, rel_error


def autograd_vjp(f, x: torch.Tensor, dout: torch.Tensor | None = None) -> torch.Tensor:
    """sum(dout * f(x)) differentiated by PyTorch: the reference every test compares with."""
    leaf = x.detach().clone().requires_grad_(True)
    out = f(leaf)
    (grad,) = torch.autograd.grad(out, leaf, grad_outputs=torch.ones_like(out) if dout is None else dout)
    return grad


FUNCTIONS = {
    "tanh_affine": lambda x, w: torch.tanh(x @ w + 0.5),
    "softmax": lambda x, w: torch.softmax(x @ w, dim=1),
    "logsumexp_times_x": lambda x, w: torch.logsumexp(x @ w, dim=1, keepdim=True) * x.sum(1, keepdim=True),
    "sigmoid_squared": lambda x, w: torch.sigmoid(x @ w) ** 2,
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_torch_input_with_upstream_gradient_matches_autograd(name):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, dtype=torch.float64, generator=generator)
    w = torch.randn(3, 5, dtype=torch.float64, generator=generator)
    f = FUNCTIONS[name]
    dout = torch.randn(4, 5 if name != "logsumexp_times_x" else 1, dtype=torch.float64, generator=generator)
    numeric = numerical_gradient(lambda x_: f(x_, w), x, dout)
    assert isinstance(numeric, torch.Tensor) and numeric.dtype == torch.float64 and numeric.shape == x.shape
    assert rel_error(numeric, autograd_vjp(lambda x_: f(x_, w), x, dout)) < 1e-7
    # the gradient with respect to the weights, too
    numeric_w = numerical_gradient(lambda w_: f(x, w_), w, dout)
    assert rel_error(numeric_w, autograd_vjp(lambda w_: f(x, w_), w, dout)) < 1e-7


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_numpy_input_with_upstream_gradient_matches_autograd(name):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3))
    w = torch.from_numpy(rng.standard_normal((3, 5)))
    f = FUNCTIONS[name]

    def f_numpy(x_np):  # a NumPy-in, NumPy-out function, as a hand-written layer is
        return f(torch.from_numpy(x_np), w).numpy()

    dout = rng.standard_normal(f_numpy(x).shape)
    numeric = numerical_gradient(f_numpy, x, dout)
    assert isinstance(numeric, np.ndarray) and numeric.dtype == np.float64 and numeric.shape == x.shape
    reference = autograd_vjp(lambda x_: f(x_, w), torch.from_numpy(x), torch.from_numpy(dout))
    assert rel_error(numeric, reference) < 1e-7


def test_scalar_function_without_dout_is_the_plain_gradient():
    x = np.array([[0.3, -1.2], [2.0, 0.7]])
    numeric = numerical_gradient(lambda v: np.sum(v**3) + np.prod(v), x)
    expected = 3 * x**2 + np.prod(x) / x
    assert rel_error(numeric, expected) < 1e-8
    tensor = torch.tensor([0.5, -2.0, 1.5], dtype=torch.float64)
    numeric_t = numerical_gradient(lambda v: (v.exp() * v).sum(), tensor)
    assert rel_error(numeric_t, autograd_vjp(lambda v: (v.exp() * v).sum(), tensor)) < 1e-8


def test_input_is_restored_exactly():
    x = np.random.default_rng(2).standard_normal((3, 4))
    before = x.copy()
    numerical_gradient(np.sin, x, np.ones_like(x))
    assert np.array_equal(x, before)
    t = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)  # a leaf that requires grad
    t_before = t.detach().clone()
    numerical_gradient(lambda v: v.sin().sum(), t)
    assert torch.equal(t.detach(), t_before)


def test_function_returning_a_view_of_its_input():
    x = np.arange(6, dtype=np.float64).reshape(2, 3)
    dout = np.full((2, 3), 2.0)
    assert rel_error(numerical_gradient(lambda v: v, x, dout), dout) < 1e-9


def test_float32_warns_to_use_float64():
    with pytest.warns(UserWarning, match="float64"):
        numerical_gradient(lambda v: v.sum(), torch.ones(2))


def test_dout_with_the_wrong_shape_is_an_error():
    with pytest.raises(ValueError, match="dout has shape"):
        numerical_gradient(lambda v: v * 2, np.ones((2, 3)), np.ones((3, 2)))


def test_rel_error():
    assert rel_error(np.ones(3), np.ones(3)) == 0.0
    assert rel_error(1.0, 1.1) == pytest.approx(0.1 / 2.1)
    assert rel_error(0.0, 0.0) == 0.0  # no division by zero
    a, b = torch.tensor([1.0, 2.0]), np.array([1.0, 2.2])
    assert rel_error(a, b) == pytest.approx(rel_error(b, a))
    assert rel_error(np.array([1.0, 1e-3]), np.array([1.0, 2e-3])) == pytest.approx(1 / 3)


def test_numerical_gradients_of_several_inputs():
    x = torch.randn(3, 2, dtype=torch.float64)
    w = torch.randn(2, 4, dtype=torch.float64)
    dout = torch.randn(3, 4, dtype=torch.float64)
    dx, dw = numerical_gradients(lambda a, b: a @ b, [x, w], dout)
    assert rel_error(dx, dout @ w.T) < 1e-8
    assert rel_error(dw, x.T @ dout) < 1e-8


def test_check_gradients_passes_a_right_backward_and_names_a_wrong_one():
    x = torch.randn(3, 2, dtype=torch.float64)
    w = torch.randn(2, 4, dtype=torch.float64)
    dout = torch.randn(3, 4, dtype=torch.float64)
    errors = check_gradients(lambda a, b: a @ b, [x, w], [dout @ w.T, x.T @ dout], dout, names=["x", "w"])
    assert max(errors) < 1e-8
    assert max(check_gradients(lambda a, b: torch.tanh(a @ b), [x, w], dout=dout)) < 1e-8  # autograd
    with pytest.raises(CheckError) as failure:
        check_gradients(lambda a, b: a @ b, [x, w], [dout @ w.T, dout.T @ x], dout, names=["x", "w"],
                        hint="dW = X^T dout")
    message = str(failure.value)
    assert "gradient dw" in message and "shape" in message and "dW = X^T dout" in message


def test_check_gradients_reports_the_relative_error_of_a_wrong_gradient():
    x = torch.randn(3, 2, dtype=torch.float64)
    w = torch.randn(2, 4, dtype=torch.float64)
    dout = torch.randn(3, 4, dtype=torch.float64)
    with pytest.raises(CheckError) as failure:
        check_gradients(lambda a, b: a @ b, [x, w], [2 * dout @ w.T, x.T @ dout], dout, names=["x", "w"])
    message = str(failure.value)
    assert "gradient dx" in message and "relative error" in message and "worst at index" in message


def test_a_forward_returning_out_and_cache_is_accepted():
    def affine_forward(x, w):  # the (out, cache) convention of the course's layers
        return x @ w, (x, w)

    x = np.random.default_rng(3).standard_normal((2, 3))
    w = np.random.default_rng(4).standard_normal((3, 4))
    dout = np.ones((2, 4))
    assert rel_error(numerical_gradient(lambda x_: affine_forward(x_, w), x, dout), dout @ w.T) < 1e-8
