"""What the 06_llm solution does beyond its graded tests, checked fast (no notebook execution).

- the solution's modules, run as plain Python, agree with independent references beyond what the
  notebook's tests cover: BPE merges against a plain reference on real prose, round trips on random
  Unicode, grouped-query attention's gradients against PyTorch's attention, cached greedy generation
  equal to uncached in float32, a merged LoRA layer equal to the unmerged one;
- the offline corpus (CPython's documentation) loads as prose and says so;
- the source shows everything it grades: every test cell has a visible part whose checks all carry a
  hint and that prints one line, and the test cells stand alone.
- the project (issue 28): its checks cell grades the project the notebook sets up; the grader's
  re-run (20 steps) builds the base model the full run reports and starts with its first losses, so
  the check fails a record whose first losses or parameter count were edited.
"""

from __future__ import annotations

import ast
import json
import random

import pytest

from dlcourse import projects
from dlcourse.instructor.authoring.self_contained import borrowed_names
from tests.assignments.project_cells import assert_checks_match_setup, exercise_tests_cells, run_project

torch = pytest.importorskip("torch")

NAME = "06_llm"


def reference_merges(text, vocab_size, split_words):
    """BPE written the slow, obvious way: every occurrence of every word, merged in place."""
    sequences = [list(word.encode("utf-8")) for word in split_words(text)]
    merges = []
    for next_id in range(256, vocab_size):
        counts: dict = {}
        for seq in sequences:
            for pair in zip(seq, seq[1:]):
                counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            break
        top = max(counts.values())
        best = min(pair for pair, count in counts.items() if count == top)
        for seq in sequences:
            i = 0
            while i < len(seq) - 1:
                if (seq[i], seq[i + 1]) == best:
                    seq[i:i + 2] = [next_id]
                i += 1
        merges.append((best, next_id))
    return merges


def test_bpe_matches_a_plain_reference_on_real_prose(solution):
    from pydoc_data.topics import topics

    text = topics["assert"] + topics["for"]
    assert solution["train_bpe"](text, 330) == reference_merges(text, 330, solution["split_words"])


def test_round_trip_on_random_unicode(solution):
    from pydoc_data.topics import topics

    tokenizer = solution["BPETokenizer"](solution["train_bpe"](topics["if"], 300), ["<|endoftext|>"])
    rng = random.Random(0)
    alphabet = [chr(c) for c in (*range(32, 127), 0xE9, 0x4E2D, 0x1F600, 0x0627, 0x3000, 0x2028, 10, 9)]
    for _ in range(200):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert tokenizer.decode(tokenizer.encode(text)) == text
    assert tokenizer.decode(tokenizer.encode("a<|endoftext|>b")) == "a<|endoftext|>b"


def test_gqa_gradients_match_pytorch_attention(solution):
    torch.manual_seed(0)
    attn = solution["GroupedQueryAttention"](16, 4, 2).double()
    x = torch.randn(2, 5, 16, dtype=torch.float64, requires_grad=True)
    grad_out = torch.randn(2, 5, 16, dtype=torch.float64)
    ours = torch.autograd.grad(attn(x), (x, attn.k_proj.weight), grad_out)

    positions = torch.arange(5)
    rope = solution["apply_rope"]
    q = rope((x @ attn.q_proj.weight.T).view(2, 5, 4, 4).transpose(1, 2), positions)
    k = rope((x @ attn.k_proj.weight.T).view(2, 5, 2, 4).transpose(1, 2), positions)
    v = (x @ attn.v_proj.weight.T).view(2, 5, 2, 4).transpose(1, 2)
    out = torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), is_causal=True)
    out = out.transpose(1, 2).reshape(2, 5, 16) @ attn.o_proj.weight.T
    theirs = torch.autograd.grad(out, (x, attn.k_proj.weight), grad_out)
    torch.testing.assert_close(ours[0], theirs[0])
    torch.testing.assert_close(ours[1], theirs[1])


def test_cached_logits_match_in_float32(solution):
    torch.manual_seed(0)
    model = solution["LLM"](vocab_size=40, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=48).eval()
    idx = torch.randint(0, 40, (2, 12))
    with torch.no_grad():
        full, _ = model(idx)
        caches = [solution["KVCache"]() for _ in model.blocks]
        steps = [model(idx[:, :3], caches=caches)[0]] + [model(idx[:, t:t + 1], caches=caches)[0] for t in range(3, 12)]
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-4, atol=1e-5)
    assert caches[0].keys.shape == (2, 2, 12, 8)


def test_rope_keeps_float32_close_to_float64(solution):
    x = torch.randn(3, 50, 16, dtype=torch.float64)
    positions = torch.arange(1000, 1050)
    torch.testing.assert_close(solution["apply_rope"](x.float(), positions).double(),
                               solution["apply_rope"](x, positions), rtol=1e-4, atol=1e-4)


def test_lora_model_merges_into_the_same_function(solution):
    torch.manual_seed(0)
    model = solution["LLM"](vocab_size=30, d_model=16, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=24).double()
    idx = torch.randint(0, 30, (2, 7))
    with torch.no_grad():
        before = model(idx)[0]
    solution["add_lora"](model, rank=2, alpha=4)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    # rank 2 times (in + out) for q and o (16 -> 16), k and v (16 -> 8), gate and up (16 -> 24), down (24 -> 16)
    per_block = 2 * (2 * (16 + 16) + 2 * (16 + 8) + 2 * (16 + 24) + (24 + 16))
    assert trainable == 2 * per_block
    with torch.no_grad():
        torch.testing.assert_close(model(idx)[0], before)  # B starts at zero
        for module in model.modules():
            if isinstance(module, solution["LoRALinear"]):
                module.B.normal_()
        tuned = model(idx)[0]
        assert not torch.allclose(tuned, before)
        merged = solution["merge_lora"](model)
        assert not any(isinstance(m, solution["LoRALinear"]) for m in merged.modules())
        torch.testing.assert_close(merged(idx)[0], tuned)


def test_offline_prose_is_cpython_documentation(monkeypatch, capsys):
    from dlcourse import data

    monkeypatch.setenv("DLCOURSE_OFFLINE", "1")
    monkeypatch.setattr(data, "_announced", set())
    text = data.load_prose("tiny_shakespeare")
    assert (text.name, text.source) == ("cpython_docs", "offline-subset")
    assert len(text) > 200_000 and " the " in text
    assert "CPython's documentation" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown text corpus"):
        data.load_prose("no_such_corpus")


CHECKS = {"assert_close", "assert_shape", "assert_true", "assert_equal"}


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


def test_test_cells_stand_alone(sources, assignment):
    assert borrowed_names(sources(assignment)) == []


def test_project_checks_grade_the_project_the_notebook_sets_up(sources, assignment):
    assert_checks_match_setup(sources(assignment), assignment, "val_bpb", higher_is_better=False)


@pytest.fixture(scope="module")
def project_runs(sources):
    """The grader's re-run (20 steps) and a student's full run (60 steps stand in for the 1,200)."""
    graded = run_project(sources(NAME), NAME, grading=True)
    full = run_project(sources(NAME), NAME, grading=False, budget_steps=60)
    return graded, full


def test_the_reference_project_starts_and_sizes_its_model_alike_under_any_budget(project_runs):
    """The grader's re-run must start with the losses of the student's full run and build a base model of
    the reported size: the base has a fixed configuration (not the grader's shrunk one), its pretraining
    comes first with a fixed warm-up, and the run loads its own data."""
    graded, full = project_runs
    assert graded.record["steps"] <= 20 and full.record["steps"] <= 60
    assert len(full.first_losses) == 10
    torch.testing.assert_close(graded.first_losses, full.first_losses, rtol=1e-5, atol=1e-6)
    assert graded.record["figures"]["params"] == full.record["figures"]["params"]
    assert graded.data == full.data  # offline, both on the stand-in corpus: the losses are compared
    assert graded.record["test_uses"] == full.record["test_uses"] == 1


@pytest.mark.parametrize("edit, message", [
    (lambda r: r.update(first_losses=[x - 0.5 for x in r["first_losses"]]), "the re-run's loss at step 1"),
    (lambda r: r["first_losses"].__setitem__(9, r["first_losses"][9] * 0.9), "the re-run's loss at step 10"),
    (lambda r: r["figures"].update(params=r["figures"]["params"] + 64), "parameters, the re-run of your code builds"),
])
def test_the_check_fails_a_record_whose_first_losses_or_params_were_edited(project_runs, monkeypatch, edit, message):
    graded, full = project_runs
    record = json.loads(json.dumps(full.record))  # as the grader reads it from the handed-in notebook
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    projects.check_reproduces(record, graded)  # the record as the student's run printed it passes
    edit(record)
    with pytest.raises(AssertionError, match=message):
        projects.check_reproduces(record, graded)
