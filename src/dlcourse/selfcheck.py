"""The student's self-check, in the student's own kernel (Jupyter or Colab): which visible tests ran
and passed in this session, and a one-line stop for a cell that needs an exercise not written yet.

- `watch()` (called when `dlcourse` is imported in an IPython kernel) records every cell IPython runs:
  a fingerprint of its text and whether it raised. Colab gives a kernel no access to its notebook
  file, so the tally matches the text of the cells that ran, not the file.
- Run All reaches the self-check: a cell that raises still shows its error where it stands (the
  traceback, the failed check and its hint), and then tells the front end it finished, so that
  Jupyter's and Colab's Run All (which stop at the first cell whose execution is an error) go on
  to the cells below and the self-check lists the failure. KeyboardInterrupt (the stop button)
  still stops the run; $DLCOURSE_STOP_ON_ERROR=1 restores Jupyter's stop-at-the-first-error
  (`dlcourse build` sets it, so a broken solution still fails the build).
- `self_check(name, tests)` is the last cell of every notebook (`dlcourse build` appends it with the
  notebook's visible tests: grade id, points, fingerprint of the test cell) and prints the tally.
- `require_written(fn, ...)` opens a training or plotting cell: if one of those exercises is still
  the notebook's stub, the cell stops with one line naming it instead of a library traceback.

Nothing here changes a grade: under the grader (NBGRADER_EXECUTION set) nothing is recorded, no
error is let through, and the self-check says it is skipped. No torch, no nbformat: it runs wherever a student runs.
"""

from __future__ import annotations

import hashlib
import os
import sys
import types
from typing import NamedTuple

from dlcourse.tables import format_table

# What an unwritten exercise raises in the student notebook (`dlcourse build` writes it in place of each
# solution, as dlcourse.instructor.cells.CODE_STUB). It is what a student sees when a test calls an
# exercise not yet written, so it says what to do; the self-check and require_written recognise it.
STUB_MESSAGE = "not written yet: replace these two lines with your code, run this cell, then run its test again"

STOP_ON_ERROR_ENV = "DLCOURSE_STOP_ON_ERROR"
GOES_ON = ("(The error above stopped this cell only: the cells below still run, and the self-check at the bottom "
           "lists every visible test that failed.)")

RESTART_REMINDER = ("Before handing in: restart and run every cell from the top (JupyterLab: Kernel > Restart "
                    "Kernel and Run All Cells; Colab: Runtime > Restart session and run all), check this tally "
                    "again, then save and download the .ipynb.")


def fingerprint(cell_text: str) -> str:
    """What identifies a test cell's text: its non-blank lines without trailing spaces, hashed (so the
    student notebook and the solution notebook, written by different tools, agree)."""
    lines = [line.rstrip() for line in cell_text.splitlines() if line.strip()]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


class CellRun(NamedTuple):
    error: str | None  # None: the cell ran to the end
    hint: str | None = None  # the failed check's hint ("hint: ..." in its message), if it gave one
    points: float | None = None  # the number the cell ended with (nbgrader's partial credit)
    fraction: float | None = None  # or the share of its `dlcourse.checks.Score` cases' points that passed
    failures: tuple[str, ...] = ()  # the failed cases of that Score


def _partial(value) -> tuple[float | None, float | None, tuple[str, ...]]:
    """What a test cell's last value says of its points, as the grader reads it: a real number (not a
    bool), or a `dlcourse.checks.Score` (here only its visible cases ran, so the share of their points that
    passed, and the failed cases); (None, None, ()) for anything else: the cell is all or nothing."""
    if type(value).__name__ == "Score" and type(value).__module__ == "dlcourse.checks":
        return None, (value.earned / value.total if value.total else 1.0), tuple(value.failures())
    numpy_number = type(value).__module__ == "numpy" and getattr(getattr(value, "dtype", None), "kind", None) in (
        "i", "u", "f")
    if isinstance(value, bool) or not (isinstance(value, (int, float)) or numpy_number):
        return None, None, ()
    number = float(value)
    return (number if number == number else 0.0), None, ()


_runs: dict[str, CellRun] = {}  # fingerprint -> the latest run of a cell with that text


def _summary(error: BaseException) -> CellRun:
    """What the self-check shows of an error: its first line, and the hint of a failed check."""
    if isinstance(error, NotImplementedError) and STUB_MESSAGE in str(error):
        return CellRun("not written yet")
    text = str(error)
    hint = next((line.split("hint:", 1)[1].strip() for line in text.splitlines() if "hint:" in line), None)
    first = f"{type(error).__name__}: {text}".splitlines()[0]
    if hint and "hint:" in first:  # a one-line message with its hint inline
        first = first.split("hint:", 1)[0].rstrip(" ;,(")
    return CellRun(first[:120], hint[:200] if hint else None)


def _record(result) -> None:
    """IPython's post_run_cell hook: note how the cell ended, then let Run All go on past an error."""
    error = result.error_in_exec or result.error_before_exec
    _runs[fingerprint(result.info.raw_cell if result.info else "")] = (
        CellRun(None, None, *_partial(result.result)) if error is None else _summary(error))
    if isinstance(error, Exception) and not os.environ.get(STOP_ON_ERROR_ENV):
        # ipykernel answers "error" (and Run All stops) only when the result holds one; the
        # traceback is already on screen, and this hook runs before the kernel replies.
        result.error_in_exec = result.error_before_exec = None
        print(GOES_ON)


def _shell():
    """The running IPython shell (Jupyter, Colab), or None; IPython is not imported where it is not loaded."""
    ipython = sys.modules.get("IPython")
    return ipython.get_ipython() if ipython is not None else None


def watch() -> None:
    """Record the cells of this IPython session from now on (once per kernel; no-op elsewhere)."""
    if os.environ.get("NBGRADER_EXECUTION"):
        return
    shell = _shell()
    if shell is None or getattr(shell, "_dlcourse_watched", False):
        return
    shell.events.register("post_run_cell", _record)
    shell._dlcourse_watched = True


def self_check(assignment: str, visible_tests: dict[str, tuple[float, str]], hand_graded_points: float = 0) -> None:
    """Print the tally of the visible tests (grade id -> (points, fingerprint of its cell)) and the
    hint of each failed one. Returns nothing: the table is all the last cell of a notebook shows."""
    if os.environ.get("NBGRADER_EXECUTION"):
        print("Self-check: skipped while grading (it never changes a grade).")
        return
    if not getattr(_shell(), "_dlcourse_watched", False):
        print("Self-check: needs Jupyter or Colab, with `import dlcourse` run before the tests; "
              "run the notebook from the top.")
        return
    print("\n".join(tally(assignment, visible_tests, _runs, hand_graded_points)))


def tally(assignment: str, visible_tests: dict[str, tuple[float, str]], runs: dict[str, CellRun],
          hand_graded_points: float = 0) -> list[str]:
    """The self-check's lines for the cells that ran (fingerprint -> how it ended); `dlcourse build`
    computes them too, when it keeps a solution's outputs without running it again."""
    lines: list[str] = []
    rows, hints, counts = [], [], {"passed": 0, "failed": 0, "not run": 0}
    points_passed = points_total = 0.0
    for test, (points, cell_fingerprint) in visible_tests.items():
        run = runs.get(cell_fingerprint)
        earned = (0.0 if run is None or run.error else points * run.fraction if run.fraction is not None
                  else points if run.points is None else min(max(run.points, 0.0), points))
        status = ("not run" if run is None else "failed" if run.error or earned == 0 < points
                  else "passed" if earned == points else "partly passed")
        if run is not None and run.hint:
            hints.append(f"  {test}: {run.hint}")
        if run is not None:
            hints.extend(f"  {test}: failed case {failure}" for failure in run.failures)
        counts["failed" if status == "partly passed" else status] += 1
        points_total += points
        points_passed += earned
        shown = f"{earned:g} of {points:g}" if status == "partly passed" else f"{points:g}"
        rows.append((test, shown, status.upper() if status in ("failed", "partly passed") else status,
                     (run.error or "") if run else ""))
    lines.append(f"Self-check of {assignment}: the visible tests you ran in this session (the grader adds hidden "
                 "tests of the same functions).")
    header = ("test", "points", "status", "error")
    if not any(row[3] for row in rows):  # all passed or not run: no empty column
        header, rows = header[:3], [row[:3] for row in rows]
    lines.extend(format_table(header, rows))
    if hints:
        lines.extend(["Hints of the failed tests:", *hints])
    summary = (f"{counts['passed']} passed, {counts['failed']} failed, {counts['not run']} not run: "
               f"{points_passed:g} of {points_total:g} points pass their visible tests")
    if hand_graded_points:
        summary += f" (and {hand_graded_points:g} points of written answers, graded by hand)"
    lines.append(summary + ".")
    if counts["not run"]:
        lines.append("A test not run, or a test cell whose text was changed, counts as not run here; the grader "
                     "always runs the original tests.")
    lines.append(RESTART_REMINDER)
    return lines


class ExerciseNotWritten(RuntimeError):
    """A cell needs an exercise that is still the notebook's stub; shown as one line in Jupyter."""

    def _render_traceback_(self) -> list[str]:  # IPython shows this instead of a traceback
        return [f"{type(self).__name__}: {self}"]


def _code_objects(obj) -> list[types.CodeType]:
    """The code of a function, of every function of a class (an instance counts as its class)."""
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    if isinstance(obj, types.MethodType):
        obj = obj.__func__
    if isinstance(obj, types.FunctionType):
        return [obj.__code__]
    cls = obj if isinstance(obj, type) else type(obj)
    return [code for value in vars(cls).values()
            if isinstance(value, (types.FunctionType, staticmethod, classmethod, property))
            for code in _code_objects(value.fget if isinstance(value, property) else value)]


def _is_stub(code: types.CodeType) -> bool:
    return any(const == STUB_MESSAGE or (isinstance(const, types.CodeType) and _is_stub(const))
               for const in code.co_consts)


def is_written(exercise) -> bool:
    """False while the function (or any method of the class) still raises the notebook's stub."""
    return not any(_is_stub(code) for code in _code_objects(exercise))


def require_written(*exercises) -> None:
    """Stop this cell, in one line, at the first exercise that is not written yet."""
    for exercise in exercises:
        if not is_written(exercise):
            name = getattr(exercise, "__name__", None) or type(exercise).__name__
            raise ExerciseNotWritten(
                f"this cell needs `{name}`, which is not written yet: write it (replace the "
                f"`raise NotImplementedError` in its cell), run its test, then run this cell again.")
