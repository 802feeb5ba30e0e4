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


def test_overflow_limits_are_stated_right(sources):
    """exp overflows above about 709 in float64 and about 88 in float32: the text says so, nothing vaguer."""
    text = "\n".join(cell.source for cell in sources(NAME).cells)
    assert "709" in text and "88" in text
    assert "logits of a few hundred" not in text
    with np.errstate(over="ignore"):
        assert np.isinf(np.exp(np.float64(710.0))) and np.isfinite(np.exp(np.float64(709.0)))
        assert np.isinf(np.exp(np.float32(89.0))) and np.isfinite(np.exp(np.float32(88.0)))


def test_test_cells_stand_alone(sources):
    from dlcourse.instructor.authoring.self_contained import borrowed_names

    assert borrowed_names(sources(NAME)) == []


def test_curves_use_the_validation_split_and_the_test_set_once(sources):
    code = "\n".join(cell.source for cell in sources(NAME).cells if cell.cell_type == "code")
    assert "val_loader=test_loader" not in code
    assert code.count("accuracy(mnist_params, X_test, y_test)") == 1
    assert code.count("evaluate(torch_model, test_loader") == 1


def test_update_rules_race_on_the_same_mlp(solution):
    """The race of Part 4, small: same init and batches; every rule lowers the loss, and the rules differ."""
    ns = solution
    X = np.random.default_rng(0).standard_normal((64, 20)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 3, 64)
    finals = {}
    for rule, hyper in ((ns["sgd"], {"learning_rate": 0.1}),
                        (ns["sgd_momentum"], {"learning_rate": 0.01, "momentum": 0.9}),
                        (ns["adam"], {"learning_rate": 1e-3})):
        params = ns["init_mlp"]([20, 16, 3], seed=0)
        configs = {name: dict(hyper) for name in params}
        first = ns["mlp_loss"](params, X, y)[0]
        for _ in range(30):
            loss, grads = ns["mlp_loss"](params, X, y)
            for name in params:
                params[name], configs[name] = rule(params[name], grads[name], configs[name])
        finals[rule.__name__] = ns["mlp_loss"](params, X, y)[0]
        assert finals[rule.__name__] < first
    assert len({round(v, 6) for v in finals.values()}) == 3


