"""01_backprop checks that `dlcourse check` does not make: fast, no notebook execution (mutant drift: tests/test_mutants.py).

- the solution's NumPy layers and engine pass their own gradient checks when run as
  plain Python (the notebook source is valid Python with the markers as comments).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dlcourse.authoring.source import read_source
from dlcourse.cells import solution_texts
from dlcourse.course import load_course

NAME = "01_backprop"


@pytest.fixture(scope="module")
def course():
    return load_course(Path(__file__).resolve().parents[1])


@pytest.fixture(scope="module")
def solution_cells(course):
    return solution_texts(read_source(course.source_path(NAME)))


@pytest.fixture(scope="module")
def namespace(course):
    """The notebook's definitions up to the training part, run as plain Python."""
    text = course.source_path(NAME).read_text(encoding="utf-8")
    cut = text.index("# ## Part 4.")
    scope: dict = {"__name__": "backprop_notebook"}
    exec(compile(text[:cut], str(course.source_path(NAME)), "exec"), scope)
    return scope


def test_softmax_is_stable_for_huge_logits(namespace):
    loss, dscores = namespace["softmax_cross_entropy"](np.array([[1e4, 0.0, -1e4]]), np.array([2]))
    assert np.isfinite(loss) and np.isfinite(dscores).all()
    assert loss == pytest.approx(2e4)


def test_engine_matmul_and_broadcast_gradients(namespace):
    Value = namespace["Value"]
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2)), rng.standard_normal(2)
    vx, vw, vb = Value(x), Value(w), Value(b)
    ((vx @ vw + vb).tanh() * vx.sum(axis=1, keepdims=True)).mean().backward()
    import torch

    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ((tx @ tw + tb).tanh() * tx.sum(axis=1, keepdims=True)).mean().backward()
    for value, tensor in ((vx, tx), (vw, tw), (vb, tb)):
        np.testing.assert_allclose(value.grad, tensor.grad.numpy(), rtol=1e-10, atol=1e-12)
