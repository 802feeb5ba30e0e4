"""What the 04_transformer solution does beyond its graded tests, checked fast (no notebook execution).

- the solution's modules, run as plain Python, agree with PyTorch beyond what the
  notebook's tests cover: gradients of multi-head attention, float32 generation with
  and without the KV cache, attention in bfloat16 with a fully masked row;
- each library shortcut in mutants.toml (F.scaled_dot_product_attention in attention,
  nn.MultiheadAttention in multi-head attention, F.layer_norm and torch.layer_norm in LayerNorm) is a
  real shortcut: without the guard it computes what the solution computes, under the exercise's own
  by_hand list it raises, and the honest solution runs there unharmed;
- the source shows everything it grades: every test cell has a visible part whose
  checks all carry a hint and that prints one line, batch_first=False is tested visibly, the
  test cells stand alone (every cell that runs an exercise opening with require_written: test_course.py).
- the project (issue 28): its checks cell grades the project the notebook sets up, and the reference
  sweep, run as plain Python (about 15 s of CPU), starts its first 10 steps and sizes its model alike
  under the grader's budget and a full one, as the grader's re-run requires.
"""

from __future__ import annotations

import ast

import pytest

from dlcourse.instructor.authoring.mutants import read_mutants
from dlcourse.instructor.authoring.self_contained import borrowed_names
from dlcourse.instructor.cells import solution_texts
from dlcourse.shortcuts import ShortcutError, by_hand
from dlcourse.instructor.source import read_source
from tests.assignments.conftest import ROOT
from tests.assignments.project_cells import assert_checks_match_setup, exercise_tests_cells, run_project

torch = pytest.importorskip("torch")

NAME = "04_transformer"


def _copy_mha(ours, theirs):
    d = ours.d_model
    with torch.no_grad():
        for i, proj in enumerate((ours.q_proj, ours.k_proj, ours.v_proj)):
            proj.weight.copy_(theirs.in_proj_weight[i * d:(i + 1) * d])
            proj.bias.copy_(theirs.in_proj_bias[i * d:(i + 1) * d])
        ours.out_proj.weight.copy_(theirs.out_proj.weight)
        ours.out_proj.bias.copy_(theirs.out_proj.bias)


def test_mha_gradients_match_pytorch(solution):
    torch.manual_seed(0)
    ours = solution["MultiHeadAttention"](12, 3).double()
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


def test_cached_generation_matches_in_float32(solution):
    torch.manual_seed(0)
    gpt = solution["GPT"](vocab_size=20, block_size=24, d_model=32, n_heads=4, n_layers=2, dropout=0.0).eval()
    prompt = torch.randint(0, 20, (3, 5))
    plain = solution["generate"](gpt, prompt, 19, top_k=1)
    cached = solution["generate_cached"](gpt, prompt, 19, top_k=1)
    assert torch.equal(plain, cached)
    with pytest.raises(ValueError):
        solution["generate_cached"](gpt, prompt, 20)


def test_attention_in_bfloat16_with_a_fully_masked_row(solution):
    q, k, v = (torch.randn(2, 4, 8).bfloat16() for _ in range(3))
    mask = torch.ones(4, 4, dtype=torch.bool)
    mask[0] = False
    out, weights = solution["scaled_dot_product_attention"](q, k, v, mask=mask)
    assert torch.isfinite(out.float()).all()
    assert (out[:, 0] == 0).all() and (weights[:, 0] == 0).all()


CHECKS = {"assert_close", "assert_shape", "assert_finite", "assert_true", "assert_rel_error", "assert_dtype"}


def test_every_test_cell_checks_visibly_with_hints_and_prints_one_line(sources, assignment):
    for test, visible in exercise_tests_cells(sources(assignment)):
        tree = ast.parse(visible)
        checks = [node for node in ast.walk(tree)
                  if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in CHECKS]
        assert checks, f"{test} has no visible check"
        for call in checks:
            assert any(k.arg == "hint" for k in call.keywords), f"{test}, line {call.lineno}: a check without hint="
        assert not any(isinstance(node, ast.Assert) and node.msg is None for node in ast.walk(tree)), test
        last = tree.body[-1]
        assert isinstance(last, ast.Expr) and getattr(last.value.func, "id", None) == "print", \
            f"{test} does not end with its success line"


def test_batch_first_false_is_tested_visibly(sources, assignment):
    assert any("batch_first=False" in visible for _, visible in exercise_tests_cells(sources(assignment)))


def test_test_cells_stand_alone(sources, assignment):
    assert borrowed_names(sources(assignment)) == []


def test_mha_sequence_first_gradients_match_pytorch(solution):
    torch.manual_seed(1)
    ours = solution["MultiHeadAttention"](8, 2, batch_first=False).double()
    theirs = torch.nn.MultiheadAttention(8, 2, batch_first=False, dtype=torch.float64)
    _copy_mha(ours, theirs)
    x = torch.randn(5, 3, 8, dtype=torch.float64, requires_grad=True)
    grad_out = torch.randn(5, 3, 8, dtype=torch.float64)
    mine = torch.autograd.grad(ours(x, x, x), (x, ours.out_proj.weight), grad_out)
    out, _ = theirs(x, x, x)
    reference = torch.autograd.grad(out, (x, theirs.out_proj.weight), grad_out)
    torch.testing.assert_close(mine[0], reference[0])
    torch.testing.assert_close(mine[1], reference[1])


def _shortcut_case(scope, exercise):
    """(what the guard names, a call of this scope's version of the exercise, the calls switched off)."""
    torch.manual_seed(3)
    if exercise == "attention":
        q, k, v = (torch.randn(2, 3, 5, 4, dtype=torch.float64) for _ in range(3))
        mask = torch.rand(5, 5) < 0.7
        mask[:, 0] = True
        return ("scaled_dot_product_attention", lambda: scope["scaled_dot_product_attention"](q, k, v, mask=mask),
                scope["LIBRARY_ATTENTION"])
    x = torch.randn(2, 5, 12, dtype=torch.float64)
    classes = {"layer_norm": ("LayerNorm", (12,)), "mha": ("MultiHeadAttention", (12, 3))}
    name, arguments = classes[exercise]
    torch.manual_seed(4)
    module = scope[name](*arguments).double().eval()
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.normal_(0.0, 0.5)  # the same random weights in the honest module and the shortcut
    inputs = (x,) if exercise == "layer_norm" else (x, x, x)
    calls = scope["LIBRARY_LAYER_NORM"] if exercise == "layer_norm" else scope["LIBRARY_MULTI_HEAD_ATTENTION"]
    return name, lambda: module(*inputs), calls


SOLUTION_IDS = set(solution_texts(read_source(ROOT / "notebooks" / NAME / f"{NAME}.py")))
SHORTCUTS = [m for m in read_mutants(ROOT / "autograder" / NAME / "mutants.toml", SOLUTION_IDS)
             if m.name.startswith("library") and m.grade_id != "block"]


@pytest.mark.parametrize("mutant", SHORTCUTS, ids=[m.label for m in SHORTCUTS])
def test_each_library_shortcut_is_right_but_for_the_guard(solution, solution_cells, mutant):
    shortcut_scope = dict(solution)
    exec(compile(mutant.apply(solution_cells[mutant.grade_id]), mutant.label, "exec"), shortcut_scope)
    exercise, honest_call, calls = _shortcut_case(solution, mutant.grade_id)
    _, shortcut_call, _ = _shortcut_case(shortcut_scope, mutant.grade_id)
    honest = honest_call()
    torch.testing.assert_close(shortcut_call(), honest)  # without the guard the shortcut would pass
    with by_hand(exercise, calls):
        torch.testing.assert_close(honest_call(), honest)  # the honest solution uses none of them
        with pytest.raises(ShortcutError, match=exercise):
            shortcut_call()


def test_every_by_hand_exercise_has_a_library_shortcut_mutant():
    assert {m.grade_id for m in SHORTCUTS} >= {"attention", "mha", "layer_norm"}


def test_project_checks_grade_the_project_the_notebook_sets_up(sources, assignment):
    assert_checks_match_setup(sources(assignment), assignment, "val_loss", higher_is_better=False)


def test_the_reference_project_starts_and_sizes_its_model_alike_under_any_budget(sources):
    """The grader's re-run (20 steps) must start with the losses of the student's full run and build a
    model of the reported size: the reference project is written so (fixed warm-up, fixed model, the
    same first setting). A full run of 100 steps stands in for the 1,200."""
    source = sources(NAME)
    graded = run_project(source, NAME, grading=True, data_marker='load_text("tiny_shakespeare")')
    full = run_project(source, NAME, grading=False, budget_steps=100, data_marker='load_text("tiny_shakespeare")')
    assert graded.record["steps"] == 20 and full.record["steps"] == 100
    assert len(full.first_losses) == 10
    torch.testing.assert_close(graded.first_losses, full.first_losses, rtol=1e-5, atol=1e-6)
    assert graded.record["figures"]["params"] == full.record["figures"]["params"]
    assert graded.record["test_uses"] == full.record["test_uses"] == 1
