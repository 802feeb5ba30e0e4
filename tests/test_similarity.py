"""dlcourse similarity: the students' own code compared pairwise (copydetect's winnowing), starter and
tests removed first, ranked pairs in the terminal and an HTML page per pair."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from dlcourse.cli import main
from dlcourse.instructor.course import load_course
from dlcourse.instructor.similarity import compare, find_similar, instructor_text, own_code
from tests.conftest import load_benchmark

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """Eleven honest, distinct submissions of 01_backprop, one planted copy of one of them (variables
    renamed, functions reordered, comments changed, a cell split), the starter twice, a broken file."""
    folder = tmp_path_factory.mktemp("submissions")
    notebooks, planted = load_benchmark("bench_similarity").synthetic_batch(count=12, copies=1, seed=3)
    for student, nb in notebooks.items():
        nbformat.write(nb, str(folder / f"{student}.ipynb"))
    starter = load_course(ROOT).student_path("01_backprop")
    for name in ("blank1", "blank2"):
        (folder / f"{name}.ipynb").write_bytes(starter.read_bytes())
    (folder / "broken.ipynb").write_text('{"cells": [ {"cell_type": "code", "sou', encoding="utf-8")
    return folder, planted[0]


def test_a_planted_copy_with_renamed_variables_and_reordered_functions_ranks_first(batch):
    folder, (original, copy) = batch
    result = find_similar(load_course(ROOT), "01_backprop", folder, threshold=0.0)
    first = result.pairs[0]
    assert {first.a, first.b} == {original, copy}
    honest = [p for p in result.pairs if copy not in (p.a, p.b)]
    assert honest, "honest students share the obvious lines: some similarity, below the copy's"
    assert first.similarity >= 0.75 > max(p.similarity for p in honest) + 0.2
    # at the default threshold, only the copy is reported
    assert [{p.a, p.b} for p in find_similar(load_course(ROOT), "01_backprop", folder).pairs] == [{original, copy}]


def test_the_starter_code_alone_scores_no_similarity(batch):
    folder, _ = batch
    result = find_similar(load_course(ROOT), "01_backprop", folder, threshold=0.0)
    assert "blank1" not in result.compared and "blank2" not in result.compared
    assert "too little code" in result.not_compared["blank1"]
    assert not [p for p in result.pairs if {p.a, p.b} & {"blank1", "blank2"}]
    course = load_course(ROOT)
    starter = nbformat.read(str(course.student_path("01_backprop")), as_version=4)
    from dlcourse.instructor.source import read_source

    lines, _ = instructor_text(starter, read_source(course.source_path("01_backprop")))
    assert own_code(starter, lines, set()) == ""


def test_an_unreadable_notebook_is_listed_as_not_compared_and_the_run_goes_on(batch):
    folder, _ = batch
    result = find_similar(load_course(ROOT), "01_backprop", folder)
    assert "malformed JSON" in result.not_compared["broken"]
    assert len(result.compared) == 12


def test_renames_comments_whitespace_order_and_cell_splits_change_nothing():
    original = '''
def normalise(values, eps=1e-8):
    total = 0.0
    for v in values:
        total += v * v
    norm = total ** 0.5
    return [v / (norm + eps) for v in values]

def running_mean(xs, momentum):
    state = None
    out = []
    for x in xs:
        state = x if state is None else momentum * state + (1 - momentum) * x
        out.append(state)
    return out
'''
    disguised = '''
def ema(seq, beta):   # exponential moving average, my own
    s = None
    result = []
    for item in seq:
        s = item if s is None else beta*s + (1-beta)*item
        result.append(s)
    return result


# then the norm
def unit(arr, tiny=1e-8):
    acc = 0.0
    for a in arr:
        acc += a*a
    n = acc**0.5
    return [a/(n+tiny) for a in arr]
'''
    other = '''
def normalise(values, eps=1e-8):
    import math
    return [v / (math.sqrt(sum(x * x for x in values)) + eps) for v in values]

def running_mean(xs, momentum):
    means, last = [], xs[0]
    for i, x in enumerate(xs):
        last = x if i == 0 else momentum * last + (1 - momentum) * x
        means.append(last)
    return means
'''
    pairs, _, _ = compare({"a": original, "b": disguised, "c": other}, threshold=0.0)
    assert {pairs[0].a, pairs[0].b} == {"a", "b"}
    assert pairs[0].similarity > 0.9
    assert all(p.similarity < 0.5 for p in pairs[1:])


def test_cli_prints_ranked_pairs_and_writes_an_escaped_page_per_pair(tmp_path, monkeypatch, capsys):
    course = load_course(ROOT)
    starter = nbformat.read(str(course.student_path("01_backprop")), as_version=4)
    code = ('def helper_for_report(values):\n    marker = "<script>alert(1)</script>"\n'
            '    total = sum(v * v for v in values) + len(marker)\n    scaled = [v / total for v in values]\n'
            '    return scaled, max(scaled), min(scaled)\n')
    for student in ("ann", "bob"):
        nb = nbformat.v4.new_notebook(cells=list(starter.cells) + [nbformat.v4.new_code_cell(code)])
        nbformat.write(nb, str(tmp_path / f"{student}.ipynb"))
    monkeypatch.chdir(ROOT)
    assert main(["similarity", "01_backprop", str(tmp_path), "--report", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    assert "1 pair(s)" in out and "ann" in out and "bob" in out and "100%" in out
    [page] = (tmp_path / "report").glob("pair-001-*.html")
    text = page.read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "<script>" not in text
    assert "<mark>" in text
    assert page.name in (tmp_path / "report" / "index.html").read_text(encoding="utf-8")


def test_a_shared_one_line_answer_never_counts():
    line = "dx = dout * (x > 0)\n"
    own = {
        "ann": line + "def clip(values, low):\n    return [max(v, low) for v in values]\n",
        "bob": line + "class Counter:\n    def __init__(self):\n        self.n = 0\n\n    def tick(self):\n"
                      "        self.n += 1\n        return self.n\n",
        "cat": line,
    }
    pairs, documents, not_compared = compare(own, threshold=0.0)
    assert "too little code" in not_compared["cat"]
    assert all(p.similarity < 0.2 for p in pairs)
