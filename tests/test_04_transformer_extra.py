"""04_transformer checks that `dlcourse check` does not make: fast, no notebook execution (mutant drift: tests/test_mutants.py).

- the solution's modules, run as plain Python, agree with PyTorch beyond what the
  notebook's tests cover: gradients of multi-head attention, float32 generation with
  and without the KV cache, attention in bfloat16 with a fully masked row.
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from dlcourse.authoring.source import read_source
from dlcourse.cells import solution_texts  # noqa: E402
from dlcourse.course import load_course  # noqa: E402

NAME = "04_transformer"


@pytest.fixture(scope="module")
def course():
    return load_course(Path(__file__).resolve().parents[1])


@pytest.fixture(scope="module")
def source(course):
    return read_source(course.source_path(NAME))


@pytest.fixture(scope="module")
def solution_cells(source):
    return solution_texts(source)


@pytest.fixture(scope="module")
def namespace(source, solution_cells):
    """The imports and every solution cell of the notebook, run as plain Python (no training)."""
    first_code = next(c for c in source.cells if c.cell_type == "code")
    scope: dict = {"__name__": "transformer_notebook"}
    exec(compile(first_code.source, "imports", "exec"), scope)
    for grade_id, code in solution_cells.items():
        exec(compile(code, grade_id, "exec"), scope)
    return scope


def _copy_mha(ours, theirs):
    d = ours.d_model
    with torch.no_grad():
        for i, proj in enumerate((ours.q_proj, ours.k_proj, ours.v_proj)):
            proj.weight.copy_(theirs.in_proj_weight[i * d:(i + 1) * d])
            proj.bias.copy_(theirs.in_proj_bias[i * d:(i + 1) * d])
        ours.out_proj.weight.copy_(theirs.out_proj.weight)
        ours.out_proj.bias.copy_(theirs.out_proj.bias)


def test_mha_gradients_match_pytorch(namespace):
    torch.manual_seed(0)
    ours = namespace["MultiHeadAttention"](12, 3).double()
    theirs = torch.nn.MultiheadAttention(12, 3, batch_first=True, dtype=torch.float64)
    _copy_mha(ours, theirs)
    x = torch.randn(2, 5, 12, dtype=torch.float64, requires_grad=True)
    memory = torch.randn(2, 4, 12, dtype=torch.float64)
    grad_out = torch.randn(2, 5, 12, dtype=torch.float64)
    ours_grads = torch.autograd.grad(ours(x, memory, memory), (x, ours.q_proj.weight, ours.v_proj.bias), grad_out)
    out, _ = theirs(x, memory, memory)
    theirs_grads = torch.autograd.grad(out, (x, theirs.in_proj_weight, theirs.in_proj_bias), grad_out)
    torch.testing.assert_close(ours_grads[0], theirs_grads[0])
    torch.testing.assert_close(ours_grads[1], theirs_grads[1][:12])
    torch.testing.assert_close(ours_grads[2], theirs_grads[2][24:])


def test_cached_generation_matches_in_float32(namespace):
    torch.manual_seed(0)
    gpt = namespace["GPT"](vocab_size=20, block_size=24, d_model=32, n_heads=4, n_layers=2, dropout=0.0).eval()
    prompt = torch.randint(0, 20, (3, 5))
    plain = namespace["generate"](gpt, prompt, 19, top_k=1)
    cached = namespace["generate_cached"](gpt, prompt, 19, top_k=1)
    assert torch.equal(plain, cached)
    with pytest.raises(ValueError):
        namespace["generate_cached"](gpt, prompt, 20)


def test_attention_in_bfloat16_with_a_fully_masked_row(namespace):
    q, k, v = (torch.randn(2, 4, 8).bfloat16() for _ in range(3))
    mask = torch.ones(4, 4, dtype=torch.bool)
    mask[0] = False
    out, weights = namespace["scaled_dot_product_attention"](q, k, v, mask=mask)
    assert torch.isfinite(out.float()).all()
    assert (out[:, 0] == 0).all() and (weights[:, 0] == 0).all()
