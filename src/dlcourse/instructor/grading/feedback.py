"""Per-student feedback: one HTML page with the score of every test, the
student's own cells and outputs, and the visible part of each test cell only.
Runs in the grader process, after a notebook is graded.

Hidden tests never appear: every test cell's source is replaced by its visible
version (the source with the hidden block removed), and the grader's own
tracebacks of test cells name no line of test code.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from dlcourse.instructor.cells import grade_id, graded_cells, role, strip_markers
from dlcourse.instructor.grading.engine import GradeResult


def plain(text: str) -> str:
    """`text` (a student's name, a failure message) as a markdown code span: shown as typed, never read as
    markup, HTML, a link or LaTeX (renderers escape a code span, and MathJax skips <code>)."""
    text = " ".join(str(text).split())
    fence = "`" * (1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
    return f"{fence} {text} {fence}"


def outcome(score) -> str:
    """A test's result in words: passed, partly passed (partial credit) or failed."""
    points = score.points or 0.0
    if score.error is not None or not score.ran or points == 0 < score.max_points:
        return "failed"  # a 0-point test that raised too: it is listed, and failed
    return "passed" if points >= score.max_points else "partly passed"


def feedback_notebook(executed: NotebookNode, source: NotebookNode, result: GradeResult, student: str,
                      assignment: str) -> NotebookNode:
    nb = copy.deepcopy(executed)
    visible = {grade_id(c): strip_markers(c.source, keep_hidden=False) for c in graded_cells(source, "tests")}
    by_id = {c.grade_id: c for c in result.cells}
    for cell in nb.cells:
        cell_id = grade_id(cell)
        if cell_id in visible and role(cell) == "tests":
            cell.source = visible[cell_id]
        score = by_id.get(cell_id)
        if score is not None and score.kind == "tests":
            mark = outcome(score)
            note = nbformat.v4.new_markdown_cell(
                f"**{cell_id}: {mark}, {score.points or 0:g} / {score.max_points:g} points**"
                + (f" ({plain(score.error)})" if score.error and mark == "failed" else ""))
            cell.metadata["dlcourse_note"] = note.source
    cells = []
    for cell in nb.cells:
        cells.append(cell)
        note = cell.metadata.pop("dlcourse_note", None)
        if note:
            cells.append(nbformat.v4.new_markdown_cell(note))
    rows = "\n".join(
        f"| {c.grade_id} | {'graded by hand' if c.kind == 'answer' else outcome(c)}"
        f" | {'' if c.points is None else f'{c.points:g}'} / {c.max_points:g} |"
        for c in result.cells)
    summary = (f"# Feedback: {plain(assignment)}, {plain(student)}\n\n"
               f"**Autograded score: {result.score:g} / {result.max_score:g}**"
               + (f" (+ {result.manual_max_score:g} points graded by hand)" if result.manual_max_score else "")
               + f"\n\nStatus: {result.status}" + (f". {plain(result.message)}" if result.message else "")
               + "\n\n| cell | result | points |\n| --- | --- | --- |\n" + rows
               + "\n\nA test passes when it runs to the end without an error; one that ends with a score "
                 "(its cases, or a number) earns that part of its points. The grader also runs hidden "
                 "tests in the same cells; their code is not shown here.")
    nb.cells = [nbformat.v4.new_markdown_cell(summary)] + cells
    return nb


def write_feedback(path: Path, executed: NotebookNode, source: NotebookNode, result: GradeResult, student: str,
                   assignment: str) -> Path:
    from nbconvert import HTMLExporter

    nb = feedback_notebook(executed, source, result, student, assignment)
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".html.part")
    temporary.write_text(body, encoding="utf-8")
    temporary.replace(path)
    return path
