"""Gradient checking: numerical gradients by centered differences, and relative error.

Use it to test a hand-written backward pass against the definition of the derivative:

    >>> import numpy as np
    >>> from dlcourse.gradcheck import numerical_gradient, rel_error
    >>> x = np.random.randn(4, 3)
    >>> dout = np.random.randn(4, 3)
    >>> dx_num = numerical_gradient(lambda x: np.tanh(x), x, dout)   # (4, 3)
    >>> rel_error(dx_num, dout * (1 - np.tanh(x) ** 2)) < 1e-7
    True

Works on NumPy arrays and torch tensors (any device). Check gradients in float64:
with float32 the round-off of f(x + h) - f(x - h) swamps the difference itself.
"""

from __future__ import annotations

import contextlib
import itertools
import warnings
from typing import Any, Callable, Sequence

import numpy as np
import torch

from dlcourse.arrays import rel_error, to_float64
from dlcourse.checks import assert_rel_error

__all__ = [
    "numerical_gradient",
    "numerical_gradients",
    "rel_error",
    "check_gradients",
]


def _is_low_precision(x: Any) -> bool:
    if isinstance(x, torch.Tensor):
        return x.dtype in (torch.float32, torch.float16, torch.bfloat16)
    if isinstance(x, np.ndarray):
        return x.dtype in (np.float32, np.float16)
    return False


def numerical_gradient(
    f: Callable[[Any], Any],
    x: np.ndarray | torch.Tensor,
    dout: np.ndarray | torch.Tensor | float | None = None,
    h: float = 1e-5,
) -> np.ndarray | torch.Tensor:
    """Numerical gradient of ``sum(dout * f(x))`` with respect to ``x``, by centered differences.

    For every element ``x[i]``::

        dx[i] = sum(dout * (f(x + h e_i) - f(x - h e_i))) / (2 h)

    which is the vector-Jacobian product a backward pass computes: ``dout`` is the
    upstream gradient (dLoss/dOut), the result is dLoss/dx.

    Args:
        f: function of ``x`` alone (close over the other inputs: ``lambda x: layer(x, w)``),
            returning an array/tensor of any shape (say ``out_shape``) or a scalar. A
            forward pass that returns ``(out, cache)`` may be passed as is: ``out`` is used.
        x: array or tensor of shape ``in_shape``; float64 recommended. It is perturbed
            *in place* one element at a time and restored exactly afterwards, so ``f``
            must read ``x`` (not a copy made before the call).
        dout: upstream gradient of shape ``out_shape``. None means all ones, i.e. the
            gradient of ``sum(f(x))``; for a scalar-valued ``f`` that is its plain gradient.
        h: step size.

    Returns:
        ``dx`` with the shape ``in_shape`` and the kind of ``x``: a NumPy array, or a
        tensor with ``x``'s dtype and device.
    """
    is_tensor = isinstance(x, torch.Tensor)
    if not is_tensor and not isinstance(x, np.ndarray):
        raise TypeError(
            f"numerical_gradient needs a NumPy array or a torch tensor for x, got {type(x).__name__}; "
            "wrap a number with np.array([value], dtype=np.float64)."
        )
    if _is_low_precision(x):
        warnings.warn(
            f"numerical_gradient on {x.dtype}: centered differences need float64 to be accurate "
            "(use x.double() / x.astype(np.float64)).",
            stacklevel=2,
        )
    upstream = None if dout is None else to_float64(dout)

    def weighted_sum(out: Any) -> float:
        if isinstance(out, (tuple, list)):  # a layer's forward returns (out, cache): use out
            out = out[0]
        values = to_float64(out)  # copy now: out may be a view of x
        if upstream is None:
            return float(np.sum(values).real)
        if values.shape != upstream.shape and upstream.size != 1:
            raise ValueError(
                f"dout has shape {tuple(upstream.shape)} but f(x) has shape {tuple(values.shape)}; "
                "they must match."
            )
        return float(np.sum(values * upstream).real)

    grad = np.zeros(tuple(x.shape), dtype=np.float64)
    # torch: perturb under no_grad so that a leaf with requires_grad=True may be edited in place.
    context = torch.no_grad() if is_tensor else contextlib.nullcontext()
    with context:
        for index in itertools.product(*(range(n) for n in x.shape)):
            original = x[index].item()
            x[index] = original + h
            plus = weighted_sum(f(x))
            x[index] = original - h
            minus = weighted_sum(f(x))
            x[index] = original  # restore exactly: the same Python float goes back
            grad[index] = (plus - minus) / (2 * h)

    if is_tensor:
        return torch.from_numpy(grad).to(dtype=x.dtype, device=x.device)
    return grad.astype(x.dtype, copy=False) if np.issubdtype(x.dtype, np.floating) else grad


def numerical_gradients(
    f: Callable[..., Any],
    inputs: Sequence[np.ndarray | torch.Tensor],
    dout: np.ndarray | torch.Tensor | float | None = None,
    h: float = 1e-5,
) -> list[np.ndarray | torch.Tensor]:
    """Numerical gradients of ``sum(dout * f(*inputs))`` with respect to each input.

    Args:
        f: function of all inputs, ``f(x1, x2, ...) -> out`` of shape ``out_shape``.
        inputs: ``[x1, x2, ...]``, each an array or tensor (float64 recommended).
        dout: upstream gradient of shape ``out_shape`` (None: all ones).

    Returns:
        ``[dx1, dx2, ...]``, each shaped like its input.
    """
    inputs = list(inputs)
    grads = []
    for position, x in enumerate(inputs):
        def f_of_one(value: Any, position: int = position) -> Any:
            args = list(inputs)
            args[position] = value
            return f(*args)

        grads.append(numerical_gradient(f_of_one, x, dout, h))
    return grads


def check_gradients(
    f: Callable[..., Any],
    inputs: Sequence[np.ndarray | torch.Tensor],
    analytic: Sequence[Any] | None = None,
    dout: np.ndarray | torch.Tensor | float | None = None,
    *,
    h: float = 1e-5,
    tol: float = 1e-6,
    names: Sequence[str] | None = None,
    hint: str | None = None,
) -> list[float]:
    """Check gradients of ``f(*inputs)`` against numerical ones; raise if one is off.

    Args:
        f: ``f(x1, x2, ...) -> out`` of shape ``out_shape``.
        inputs: ``[x1, x2, ...]`` (float64 recommended).
        analytic: ``[dx1, dx2, ...]``, your gradients for ``sum(dout * out)``, each
            shaped like its input. None: use torch.autograd (inputs must be float
            tensors; a copy of each with ``requires_grad`` is made).
        dout: upstream gradient of shape ``out_shape`` (None: all ones).
        tol: the largest acceptable :func:`rel_error`.
        names: a name per input for the message (default ``x0, x1, ...``).

    Returns:
        The relative error of each input's gradient.

    Raises:
        dlcourse.checks.CheckError (an AssertionError) naming the first input whose
        gradient is off, with its relative error and the first index that differs.
    """

    inputs = list(inputs)
    names = list(names) if names is not None else [f"x{i}" for i in range(len(inputs))]
    if analytic is None:
        analytic = _autograd_gradients(f, inputs, dout)
    analytic = list(analytic)
    if len(analytic) != len(inputs):
        raise ValueError(f"got {len(analytic)} analytic gradients for {len(inputs)} inputs")
    numeric = numerical_gradients(f, inputs, dout, h)
    errors = []
    for name, mine, reference in zip(names, analytic, numeric):
        label = f"gradient d{name}"
        if mine is None:
            raise AssertionError(f"{label}: got None (is the gradient returned / does {name} require grad?)")
        assert_rel_error(mine, reference, tol=tol, name=label, hint=hint)
        errors.append(rel_error(mine, reference))
    return errors


def _autograd_gradients(f: Callable[..., Any], inputs: list, dout: Any) -> list[torch.Tensor | None]:
    leaves = []
    for x in inputs:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError("check_gradients without analytic gradients needs float torch tensors as inputs")
        leaves.append(x.detach().clone().requires_grad_(True))
    out = f(*leaves)
    upstream = torch.ones_like(out) if dout is None else torch.as_tensor(dout, dtype=out.dtype, device=out.device)
    grads = torch.autograd.grad(out, leaves, grad_outputs=upstream, allow_unused=True)
    return [g if g is not None else torch.zeros_like(x) for g, x in zip(grads, leaves)]
