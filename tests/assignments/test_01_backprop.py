"""What the 01_backprop solution does beyond its graded tests, checked fast (no notebook execution).

- the solution's NumPy layers and engine pass their own gradient checks when run as
  plain Python (solution cells whole, the provided cells' definitions).
"""

from __future__ import annotations

import numpy as np
import pytest

NAME = "01_backprop"


def test_softmax_is_stable_for_huge_logits(solution):
    loss, dscores = solution["softmax_cross_entropy"](np.array([[1e4, 0.0, -1e4]]), np.array([2]))
    assert np.isfinite(loss) and np.isfinite(dscores).all()
    assert loss == pytest.approx(2e4)


def test_engine_matmul_and_broadcast_gradients(solution):
    Value = solution["Value"]
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2)), rng.standard_normal(2)
    vx, vw, vb = Value(x), Value(w), Value(b)
    ((vx @ vw + vb).tanh() * vx.sum(axis=1, keepdims=True)).mean().backward()
    import torch

    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ((tx @ tw + tb).tanh() * tx.sum(axis=1, keepdims=True)).mean().backward()
    for value, tensor in ((vx, tx), (vw, tw), (vb, tb)):
        np.testing.assert_allclose(value.grad, tensor.grad.numpy(), rtol=1e-10, atol=1e-12)
