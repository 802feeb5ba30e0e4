"""The real course: every committed generated file is fresh, and every assignment passes
`dlcourse check` (solution full marks, blank 0, every mutant caught, no leaks)."""

from __future__ import annotations

import ast

import pytest

from dlcourse.instructor.authoring.build import freshness_problems, stale_colab_files
from dlcourse.instructor.authoring.check import check_assignment, format_table
from dlcourse.instructor.cells import role, strip_markers
from dlcourse.instructor.course import load_course
from tests.assignments.conftest import ROOT


def pytest_generate_tests(metafunc):
    """One test per assignment, the names read when the tests are collected."""
    if "name" in metafunc.fixturenames:
        metafunc.parametrize("name", load_course(ROOT).assignments())


def test_the_course_has_its_first_assignment(course):
    assert course.assignments()[0] == "00_setup"


def test_generated_notebooks_are_fresh(course, name):
    """Built from the current source, and the solution executed (a --no-execute build has the right
    cells but no outputs)."""
    assert freshness_problems(course, name) == [], f"run `dlcourse build {name}` and commit the result"


def test_keep_outputs_rebuilds_the_committed_notebooks_byte_for_byte(course, name):
    """`build --keep-outputs` (no kernel) writes what the full build wrote, self-check output included."""
    from dlcourse.instructor.authoring.build import notebook_bytes, read_source, solution_cells, student_notebook
    from dlcourse.instructor.authoring.kept_outputs import with_committed_outputs

    source = read_source(course.source_path(name))
    student = student_notebook(course, name, source)
    solution = with_committed_outputs(course, name, solution_cells(course, name, source), source, student)
    assert notebook_bytes(solution) == course.solution_path(name).read_text(encoding="utf-8")


def test_colab_index_is_fresh(course):
    assert stale_colab_files(course) == [], "run `dlcourse build` and commit colab/"


@pytest.mark.slow
def test_assignment_passes_check(course, name, template):
    report = check_assignment(course, name, log=lambda *_: None, template=template)
    print(format_table([report]))
    assert report.ok, "\n".join(report.problems)


def _exercises(source) -> set[str]:
    """The functions and classes students write (defined in solution cells)."""
    names = set()
    for cell in source.cells:
        if cell.cell_type == "code" and role(cell) == "solution":
            tree = ast.parse(strip_markers(cell.source, keep_hidden=False))
            names |= {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    return names


def test_cells_that_run_exercises_stop_in_one_line_while_one_is_unwritten(sources, name):
    """A plain cell that calls exercises (training, plotting) opens with require_written(...) naming each
    of them, so Run All on partial work stops there with one line, not a library traceback."""
    source = sources(name)
    exercises = _exercises(source)
    for index, cell in enumerate(source.cells):
        if cell.cell_type != "code" or role(cell) is not None:
            continue
        tree = ast.parse(cell.source)
        runs = [node for node in tree.body if not isinstance(node, (ast.FunctionDef, ast.ClassDef))]
        called = {node.func.id for statement in runs for node in ast.walk(statement)
                  if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)} & exercises
        if not called:
            continue
        first = tree.body[0]
        opens = (isinstance(first, ast.Expr) and isinstance(first.value, ast.Call)
                 and ast.unparse(first.value.func) in ("require_written", "dlcourse.require_written"))
        assert opens, f"{name} cell {index} runs {sorted(called)} but does not open with require_written(...)"
        named = {arg.id for arg in first.value.args if isinstance(arg, ast.Name)}
        assert called <= named, f"{name} cell {index}: require_written(...) misses {sorted(called - named)}"

