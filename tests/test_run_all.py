"""Restart and Run All with a partly wrong notebook reaches the self-check, as a student runs it.

A published student notebook with one exercise wrong (one of its mutants) and one not written (the
stub left as built) runs top to bottom through nbclient with allow_errors=False: nbclient stops at
the first cell whose execution is an error, as Jupyter's and Colab's Run All do. Every cell must
run; each failing test still shows its error where it stands; the self-check lists each failure,
with its hint and no raw dict; and the grader still scores those tests 0.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from dlcourse.instructor.authoring.build import student_notebook
from dlcourse.instructor.authoring.check import find_mutants, solved_notebook
from dlcourse.instructor.cells import grade_id, role, solution_texts
from dlcourse.instructor.course import load_course
from dlcourse.instructor.grading.engine import grade_notebook
from dlcourse.instructor.source import read_source
from dlcourse.selfcheck import GOES_ON, STOP_ON_ERROR_ENV

ROOT = Path(__file__).resolve().parents[1]


def partly_wrong(name: str):
    """(notebook, source, the exercise left unwritten, the mutant): a student who wrote every exercise
    but one, and got one of the others wrong."""
    course = load_course(ROOT)
    source = read_source(course.source_path(name))
    student = student_notebook(course, name, source)
    solutions = list(solution_texts(source))
    code = [c.source for c in student.cells if c.cell_type == "code"]
    # unwritten: an exercise a later cell needs (require_written), so that the stop below it is exercised too
    unwritten = next((s for s in solutions if any(f"require_written({s}" in text for text in code)), solutions[0])
    mutant = next(m for m in find_mutants(course, name, source) if m.grade_id != unwritten)
    nb = solved_notebook(student, source, replace={mutant.grade_id: mutant.apply(solution_texts(source)[mutant.grade_id])})
    stub = next(c for c in student.cells if grade_id(c) == unwritten)
    for cell in nb.cells:
        if grade_id(cell) == unwritten:
            cell.source = stub.source  # as built: the stub
    return nb, source, unwritten, mutant


def run_all(nb, env: dict | None = None):
    """Jupyter's Run All: every cell in order, stopping at the first error reply."""
    env = {**os.environ, **(env or {})}
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=False).execute(env=env)
    return nb


def text_of(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


@pytest.mark.slow
def test_run_all_with_a_wrong_and_an_unwritten_exercise_reaches_the_self_check_and_grades_them_0(template):
    nb, source, unwritten, mutant = partly_wrong("00_setup")
    run_all(nb)  # raises CellExecutionError if Run All would have stopped

    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "every cell ran"
    failed = [c for c in nb.cells if role(c) == "tests" and any(o.output_type == "error" for o in c.outputs)]
    assert len(failed) >= 2, "the wrong and the unwritten exercise each fail a visible test"
    for cell in failed:  # unmistakable where it stands: the error as Jupyter shows it, then why the run went on
        error = next(o for o in cell.outputs if o.output_type == "error")
        assert error.traceback and GOES_ON in text_of(cell)
    assert any("not written yet" in next(o for o in c.outputs if o.output_type == "error").evalue for c in failed)
    needs = [c for c in code if f"require_written({unwritten}" in c.source]
    stops = [o for c in needs for o in c.outputs if o.output_type == "error"]
    assert stops and all(o.ename == "ExerciseNotWritten" and len(o.traceback) == 1 for o in stops)

    check = nb.cells[-1]
    assert check.get("id") == "self-check"
    assert [o.output_type for o in check.outputs] == ["stream"], "only the table: no raw dict below it"
    tally = text_of(check)
    rows = {line.split()[0]: line for line in tally.splitlines() if line.split() and line.split()[0].startswith("test_")}
    assert {grade_id(c) for c in failed} == {test for test, row in rows.items() if "FAILED" in row}
    assert "not written yet" in tally and f"{len(failed)} failed" in tally

    result, _ = grade_notebook(nb, source, template=template)
    scores = {c.grade_id: c.points for c in result.cells}
    assert all(scores[grade_id(c)] == 0 for c in failed), scores
    assert result.score < result.max_score


def test_a_failed_check_shows_its_hint_in_the_self_check_and_the_stop_switch_restores_jupyter(tmp_path):
    checked = ("from dlcourse.checks import assert_close\n"
               "assert_close(1.0, 2.0, name='loss', hint='did you average over the batch?')")
    from dlcourse.selfcheck import fingerprint

    tests = {"test_loss": (2, fingerprint(checked)), "test_after": (1, fingerprint("assert True"))}
    cells = ["import dlcourse", checked, "assert True",
             f"from dlcourse.selfcheck import self_check\nself_check('demo', {tests!r})"]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    run_all(nb)
    tally = text_of(nb.cells[-1])
    assert "FAILED" in tally and "1 passed, 1 failed" in tally
    assert "Hints of the failed tests:\n  test_loss: did you average over the batch?" in tally
    assert [o.output_type for o in nb.cells[-1].outputs] == ["stream"]

    strict = nbformat.v4.new_notebook()
    strict.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    with pytest.raises(Exception, match="loss"):  # nbclient's CellExecutionError: Jupyter's Run All stops here
        run_all(strict, env={STOP_ON_ERROR_ENV: "1"})
    assert strict.cells[2].execution_count is None


def test_the_stop_button_still_stops_run_all():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import dlcourse"), nbformat.v4.new_code_cell("raise KeyboardInterrupt"),
                nbformat.v4.new_code_cell("print('ran on')")]
    with pytest.raises(Exception, match="KeyboardInterrupt"):
        run_all(nb)
    assert nb.cells[2].execution_count is None
