"""`dlcourse build --keep-outputs` (`--headers-only`, its older name): regenerate the solution notebook
from the source without running it again, keeping the committed solution's outputs, when the solution's
code cannot have changed (only markdown, points, the header cells or the hints of visible tests did).
The self-check's output is recomputed from the committed run, so the bytes are those of a full build;
any other change is refused in one line that says to build without --keep-outputs.
Runs in the instructor's process; no kernel starts.
"""

from __future__ import annotations

import ast
import itertools

import nbformat
from nbformat import NotebookNode

from dlcourse.instructor import cells
from dlcourse.instructor.authoring.generated_cells import HEADER_IDS, visible_tests
from dlcourse.instructor.cells import is_generated
from dlcourse.instructor.course import Course, CourseError
from dlcourse.instructor.source import where_in_source
from dlcourse.selfcheck import CellRun, tally


def _code_without_hints(code: str) -> str:
    """A test cell's code with what only a failure shows taken out (assert messages, hint= arguments
    given as text): two cells equal here behave the same when their tests pass."""
    try:
        tree = ast.parse(code)
    except SyntaxError:  # IPython syntax: compare as written
        return code
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert) and isinstance(node.msg, (ast.Constant, ast.JoinedStr)):
            node.msg = None
        elif isinstance(node, ast.Call):
            node.keywords = [k for k in node.keywords
                             if not (k.arg == "hint" and isinstance(k.value, (ast.Constant, ast.JoinedStr)))]
    return ast.dump(tree)


def with_committed_outputs(course: Course, name: str, solution: NotebookNode, source: NotebookNode,
                           student: NotebookNode) -> NotebookNode:
    """The unexecuted solution with the outputs of the committed one, when none of them can differ:
    every code cell the same, in the same order, but for the header cells and the self-check (whose
    output is computed here) and for the hints of visible tests (shown only when a test fails, and
    every visible test passed in the committed run). Markdown may change freely."""
    path = course.solution_path(name)
    relative = path.relative_to(course.root)
    rerun = f"run `dlcourse build {name}` (without --keep-outputs) to run the solution again"
    if not path.exists():
        raise CourseError(f"{relative} does not exist: {rerun}")
    committed = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
    tests = {cells.grade_id(c) for c in cells.graded_cells(source, "tests")}

    def body(nb: NotebookNode) -> list[NotebookNode]:
        return [c for c in nb.cells if c.cell_type == "code" and not is_generated(c)]

    old_cells, new_cells = body(committed), body(solution)
    if any(not c.execution_count for c in old_cells):
        raise CourseError(f"{relative} was never executed (built with --no-execute): {rerun}")
    for old, new in itertools.zip_longest(old_cells, new_cells):
        if old is None or new is None:
            raise CourseError(f"{relative}: the source has {len(new_cells)} code cells, the executed solution "
                              f"{len(old_cells)}: {rerun}")
        same = (old.source == new.source or
                (new.get("id") in tests and _code_without_hints(old.source) == _code_without_hints(new.source)))
        if not same:
            index = [c.get("id") for c in source.cells].index(new.id) if new.get("id") in [
                c.get("id") for c in source.cells] else None
            where = (where_in_source(course.source_path(name), source, index, None) if index is not None
                     else f"cell {new.get('id')!r}")
            raise CourseError(f"{where}: its code changed since the solution ran (only markdown, points and "
                              f"the hints of visible tests may): {rerun}")
        new.outputs, new.execution_count = old.outputs, old.execution_count
    by_id = {c.get("id"): c for c in committed.cells}
    for cell in solution.cells:
        if cell.cell_type == "code" and cell.get("id") in HEADER_IDS and by_id.get(cell.id) is not None:
            old = by_id[cell.id]
            cell.outputs, cell.execution_count = old.get("outputs", []), old.get("execution_count")
    _recompute_self_check(solution, committed, name, student, relative, rerun)
    return solution


def _recompute_self_check(solution, committed, name, student, relative, rerun) -> None:
    """The self-check cell's output with the new points and fingerprints, each visible test passed or
    not run as the committed run's self-check shows it (a build stops at a failed one)."""
    old = next((c for c in committed.cells if c.get("id") == "self-check"), None)
    new = next(c for c in solution.cells if c.get("id") == "self-check")
    printed = "".join(o.get("text", "") for o in (old.outputs if old is not None else []))
    visible, hand_graded = visible_tests(student)
    status = {}
    for line in printed.splitlines():
        words = line.split()
        if words and words[0] in visible:
            status[words[0]] = " ".join(words[2:])
    if old is None or any(status.get(test) not in ("passed", "not run") for test in visible):
        raise CourseError(f"{relative}: its self-check does not show how each visible test ran: {rerun}")
    runs = {mark: CellRun(None) for test, (_, mark) in visible.items() if status[test] == "passed"}
    new.outputs = [nbformat.v4.new_output("stream", name="stdout",
                                          text="\n".join(tally(name, visible, runs, hand_graded)) + "\n")]
    new.execution_count = old.execution_count
