"""A grade result as Gradescope's results.json (plain data in and out; runs in the grader process).

Format: https://gradescope-autograders.readthedocs.io/en/latest/specs/ (tests/schemas/ holds the
JSON schema the tests check it against). One test per autograded cell: its name is the grade id and
the cell's title, its output the student-facing failure message (the exception's type and message,
never a line of test code). A cell with hidden tests is shown to students when the grades are
published (`after_published`), a cell without them at once (`visible`); both are settings of the
bundle. Written answers are listed for information, without points: they are graded by hand in
Gradescope (a manual question each), so the autograder's total stays the autograded points.
"""

from __future__ import annotations

import re

from nbformat import NotebookNode

from dlcourse.instructor.cells import BEGIN_HIDDEN, grade_id, graded_cells, role, score_columns

DEFAULT_VISIBILITY = {"visible": "visible", "hidden": "after_published"}
VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
STATUS_TEXT = {
    "graded": "graded",
    "timed out": "stopped at the time limit",
    "crashed": "the notebook's kernel died",
    "out of memory": "stopped at the memory limit",
    "invalid notebook": "not graded: the file is not a notebook that can be graded",
}


def cell_titles(source: NotebookNode) -> dict[str, str]:
    """grade id -> the title of the exercise or question it grades: the bold lead or heading of the
    nearest markdown cell above it (`**Exercise 2.1.**` -> `Exercise 2.1`), else its first line."""
    titles: dict[str, str] = {}
    last = ""
    for cell in source.cells:
        if cell.cell_type == "markdown" and role(cell) != "answer":
            last = _title(cell.source) or last
        gid = grade_id(cell)
        if role(cell) in ("tests", "answer"):
            # a written answer is named by its question above it, never by its own cell: that holds the
            # solution markers and the model answer
            titles[gid] = last
    return titles


def _title(text: str) -> str:
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        bold = re.match(r"^\*\*(.+?)\*\*", line)
        if bold:
            return bold.group(1).strip().rstrip(".:")
        line = line.lstrip("#").strip()
        return line if len(line) <= 70 else line[:67].rstrip() + "..."
    return ""


def hidden_cells(source: NotebookNode) -> set[str]:
    """The grade ids of test cells that hold hidden tests."""
    return {grade_id(c) for c in graded_cells(source, "tests")
            if any(line.strip() == BEGIN_HIDDEN for line in c.source.splitlines())}


def test_name(gid: str, title: str) -> str:
    return f"{gid}: {title}" if title else gid


def results_json(result, source: NotebookNode, settings: dict, *, extra: dict | None = None,
                 reason: str | None = None) -> dict:
    """results.json for one graded submission (`result`: the engine's GradeResult), or, with
    `reason`, for a submission that could not be graded (`result` None: every test 0)."""
    visibility = {**DEFAULT_VISIBILITY, **settings.get("visibility", {})}
    titles = cell_titles(source)
    hidden = hidden_cells(source)
    by_id = {c.grade_id: c for c in result.cells} if result is not None else {}
    tests, manual = [], []
    for number, column in enumerate(score_columns(source), start=1):
        name = test_name(column.grade_id, titles.get(column.grade_id, ""))
        if column.kind == "answer":
            manual.append(f"{column.grade_id} ({column.max_points:g} points)")
            tests.append({"name": f"{name} (graded by hand, {column.max_points:g} points)", "number": str(number),
                          "output": "A written answer: graded by hand, not by the autograder.",
                          "visibility": "visible", "tags": ["graded by hand"]})
            continue
        cell = by_id.get(column.grade_id)
        points = float(cell.points or 0.0) if cell is not None else 0.0
        passed = cell is not None and cell.ran and cell.error is None and cell.points == column.max_points
        if reason is not None:
            output = f"Not graded: {reason}"
        elif passed:
            output = "Passed."
        elif cell is not None and cell.ran and cell.error is None:  # partial credit: the test's own score
            output = f"Partly passed: {points:g} of {column.max_points:g} points."
        elif cell is None or cell.error in (None, "did not run"):
            output = "Did not run" + (f": {result.message}" if result is not None and result.message else ".")
        else:
            output = f"Failed: {cell.error}"
        tests.append({
            "name": name, "number": str(number), "score": points, "max_score": column.max_points,
            "status": "passed" if passed else "failed", "output": output,
            "visibility": visibility["hidden" if column.grade_id in hidden else "visible"],
            "tags": ["hidden tests" if column.grade_id in hidden else "visible tests"],
        })
    score = sum(t.get("score", 0.0) for t in tests)
    max_score = sum(t.get("max_score", 0.0) for t in tests)
    status = "invalid notebook" if reason is not None else result.status
    flags = list(result.flags) if result is not None else []
    lines = []
    if reason is not None:
        lines.append(f"Your submission was not graded: {reason}")
    else:
        lines.append(f"{settings['assignment']}: {STATUS_TEXT.get(status, status)}"
                     + (f". {result.message}" if result.message else "."))
    shown = {t["visibility"] for t in tests if "score" in t}
    if shown <= {"visible"}:
        lines.append(f"Autograded score: {score:g} / {max_score:g}.")
    else:
        lines.append("Tests that include hidden tests show their result when your instructor publishes the grades.")
    if manual:
        lines.append("Graded by hand: " + ", ".join(manual) + ".")
    if flags:
        lines.append("Notes for your instructor: " + "; ".join(flags[:10]) + ("; ..." if len(flags) > 10 else ""))
    return {
        "score": score,
        "execution_time": int(round(result.seconds)) if result is not None else 0,
        "output": "\n".join(lines),
        "output_format": "text",
        "test_output_format": "text",
        "test_name_format": "text",
        "stdout_visibility": "hidden",
        "tests": tests,
        "extra_data": {"dlcourse": settings.get("dlcourse_version", ""), "assignment": settings["assignment"],
                       "status": status, "max_score": max_score, "flags": flags,
                       "isolation": dict(result.isolation) if result is not None else {}, **(extra or {})},
    }


def failure_results(message: str, settings: dict, detail: str = "") -> dict:
    """results.json when the autograder itself failed (no fault of the student's): score 0 and the reason."""
    return {
        "score": 0.0,
        "execution_time": 0,
        "output": ("The autograder could not grade this submission (not a problem with your work): "
                   f"{message}\nPlease tell your instructor; your submission is kept and can be graded again."),
        "output_format": "text",
        "stdout_visibility": "hidden",
        "tests": [],
        "extra_data": {"dlcourse": settings.get("dlcourse_version", ""), "assignment": settings.get("assignment", ""),
                       "status": "grader error", "error": message, "detail": detail[-8000:]},
    }
