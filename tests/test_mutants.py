"""Every mutant stays a small edit of the current solution of its cell: when a source
changes, a mutant that drifted (and so tests nothing in particular) fails here with
its name, instead of passing `dlcourse check` by being wrong everywhere."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from dlcourse.authoring.check import find_mutants
from dlcourse.authoring.source import read_source, solution_texts
from dlcourse.course import load_course

COURSE = load_course(Path(__file__).resolve().parents[1])
# A mutant changes a few lines; a long solution may need a few more.
MIN_ALLOWED_CHANGES = 20


def changed_lines(solution: str, mutant: str) -> list[str]:
    diff = difflib.unified_diff(solution.splitlines(), mutant.splitlines(), lineterm="", n=0)
    return [line for line in diff if line[:1] in "+-" and not line.startswith(("+++", "---"))]


@pytest.mark.parametrize("name", COURSE.assignments())
def test_mutants_are_small_edits_of_the_current_solution(name):
    source = read_source(COURSE.source_path(name))
    solutions = solution_texts(source)
    for mutant in find_mutants(COURSE, name, source):
        solution = solutions[mutant.grade_id].rstrip("\n")
        code = mutant.path.read_text(encoding="utf-8").rstrip("\n")
        compile(code, str(mutant.path), "exec")
        changed = changed_lines(solution, code)
        allowed = max(MIN_ALLOWED_CHANGES, len(solution.splitlines()) // 5)
        assert changed, f"{mutant.path.name} is identical to the solution of {mutant.grade_id}"
        assert len(changed) <= allowed, (
            f"{mutant.path.name} differs from the current solution of {mutant.grade_id} in "
            f"{len(changed)} lines (at most {allowed}): regenerate it from the source"
        )


def test_a_drifted_mutant_is_reported():
    solution = "def f(x):\n" + "".join(f"    y{i} = x + {i}\n" for i in range(30)) + "    return x"
    drifted = "def f(x):\n    return 0"
    assert len(changed_lines(solution, drifted)) > MIN_ALLOWED_CHANGES
    assert changed_lines(solution, solution.replace("x + 3", "x - 3")) == ["-    y3 = x + 3", "+    y3 = x - 3"]
