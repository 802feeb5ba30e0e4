"""The student's self-check: the last cell of every notebook tallies the visible tests that ran in the
student's kernel, and a cell that needs an unwritten exercise stops with one line naming it."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from dlcourse.instructor.cells import CODE_STUB
from dlcourse.selfcheck import ExerciseNotWritten, fingerprint, is_written, require_written, self_check

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = sorted(p.name for p in (ROOT / "notebooks").iterdir() if p.name[:2].isdigit())
STUB = CODE_STUB["python"].replace("\n", "\n    ")


def _stubbed(name: str):
    scope: dict = {}
    exec(f"def {name}(x):\n    {STUB}\n", scope)
    return scope[name]


def test_an_unwritten_exercise_stops_the_cell_with_one_line_naming_it():
    def written(x):
        return x

    require_written(written)  # nothing to say
    with pytest.raises(ExerciseNotWritten, match="`lstm_forward`, which is not written yet") as raised:
        require_written(written, _stubbed("lstm_forward"), _stubbed("second"))
    assert raised.value._render_traceback_() == [f"ExerciseNotWritten: {raised.value}"]  # IPython's one line


def test_a_class_is_unwritten_while_any_of_its_methods_is_the_stub():
    scope: dict = {}
    exec(f"class CharLM:\n    def __init__(self):\n        self.ready = True\n"
         f"    def forward(self, x):\n        {CODE_STUB['python'].replace(chr(10), chr(10) + '        ')}\n", scope)
    model = scope["CharLM"]
    assert not is_written(model) and not is_written(model())
    with pytest.raises(ExerciseNotWritten, match="CharLM"):
        require_written(model)
    assert is_written(type("Done", (), {"forward": lambda self, x: x}))


def test_the_self_check_is_silent_about_grades_under_the_grader(monkeypatch, capsys):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert self_check("00_setup", {"test_a": (2, "0" * 16)}) is None
    assert "skipped while grading" in capsys.readouterr().out


def _run(cells: list[str]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    NotebookClient(nb, allow_errors=True, kernel_name="python3", timeout=120).execute()
    return nb


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def test_in_a_kernel_the_tally_says_passed_failed_and_not_run():
    passing = "x = 2\nassert x == 2, 'x should be 2'\nprint('x is 2')"
    failing = "assert x == 3, 'x should be 3; hint: set x to 3'"
    never = "assert True"
    tests = {"test_pass": (2, fingerprint(passing)), "test_fail": (3, fingerprint(failing)),
             "test_never": (1, fingerprint(never))}
    nb = _run(["import dlcourse", passing, failing,
               f"from dlcourse.selfcheck import self_check\nself_check('demo', {tests!r}, hand_graded_points=4)",
               "def lstm_forward(x):\n    " + STUB + "\n",
               "import dlcourse\ndlcourse.require_written(lstm_forward)\nprint('trained')"])
    tally = _text(nb.cells[3])
    lines = {line.split()[0]: line for line in tally.splitlines() if line.startswith("test_")}
    assert "passed" in lines["test_pass"]
    assert "FAILED" in lines["test_fail"] and "x should be 3" in lines["test_fail"]
    assert "not run" in lines["test_never"]
    assert "1 passed, 1 failed, 1 not run: 2 of 6 points" in tally and "4 points of written answers" in tally
    assert "Restart" in tally  # the reminder
    stopped = [o for o in nb.cells[5].outputs if o.output_type == "error"]
    assert stopped and stopped[0].ename == "ExerciseNotWritten" and "`lstm_forward`" in stopped[0].evalue
    assert len(stopped[0].traceback) == 1, "one line, not a library traceback"
    assert "trained" not in _text(nb.cells[5])


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_every_executed_solution_ends_with_a_self_check_where_every_visible_test_passed(name):
    student = nbformat.read(ROOT / "assignments" / name / f"{name}.ipynb", as_version=4)
    solution = nbformat.read(ROOT / "solutions" / name / f"{name}.ipynb", as_version=4)
    for nb in (student, solution):
        assert nb.cells[-1].get("id") == "self-check" and "self_check(" in nb.cells[-1].source
    tally = _text(solution.cells[-1])
    tests = [c for c in student.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")
             and not c["metadata"]["nbgrader"].get("solution")]
    assert f"{len(tests)} passed, 0 failed, 0 not run" in tally, tally
