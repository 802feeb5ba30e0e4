"""What `dlcourse build` says when the solution fails while it runs: one line naming the source
line of the cell that raised (a visible test by its id) and the error's own message (an assertion's
text), instead of nbclient's CellExecutionError with its library tracebacks. A timeout or a dead
kernel names the cell that was running. Runs in the instructor's process, after the kernel stopped.
"""

from __future__ import annotations

import re

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode

from dlcourse.instructor import cells
from dlcourse.instructor.authoring.solution_run import ANSI, SOLUTION_CELL_TIMEOUT_S
from dlcourse.instructor.course import Course
from dlcourse.instructor.source import where_in_source


def describe_failure(course: Course, name: str, source: NotebookNode, solution: NotebookNode, error: Exception) -> str:
    """One line for a solution that failed while it ran: the source line of the cell that raised (a
    visible test, by its id), and the error's own message; no nbclient, asyncio or IPython frames."""
    path = course.source_path(name)
    failed = next((c for c in solution.cells if c.cell_type == "code"
                   and any(o.get("output_type") == "error" for o in c.get("outputs", []))), None)
    if isinstance(error, CellTimeoutError):
        why = f"ran longer than {SOLUTION_CELL_TIMEOUT_S} s (the build's limit per cell)"
    elif isinstance(error, DeadKernelError):
        why = "its kernel died (out of memory?)"
    elif failed is not None:
        output = next(o for o in failed.outputs if o.get("output_type") == "error")
        message = " ".join(ANSI.sub("", output.get("evalue", "")).split())
        why = f"{output.get('ename', 'Error')}: {message}" if message else output.get("ename", "Error")
    else:
        why = " ".join(ANSI.sub("", str(error)).split())[:300]
    if failed is None:  # a timeout or a dead kernel: the cell that was running has no error output
        failed = next((c for c in reversed(solution.cells) if c.cell_type == "code" and c.get("execution_count")),
                      None)
    ids = [c.get("id") for c in source.cells]
    if failed is None or failed.get("id") not in ids:
        what = f"cell {failed.get('id')!r}" if failed is not None else "the solution notebook"
        return f"{course.source_path(name)}: {what} failed while the solution ran: {why}; nothing written"
    index = ids.index(failed.id)
    cell = source.cells[index]
    line = _source_line(cell.source, _failing_line(failed))
    where = where_in_source(path, source, index, line)
    text = f": {cell.source.splitlines()[line - 1].strip()}" if line else ""
    kind = "visible test" if cells.role(cell) == "tests" else "cell"
    return f"{where}: {kind} fails on the solution: {why}{text}; nothing written (fix it, then build again)"


def _failing_line(cell: NotebookNode) -> int | None:
    """The line of a cell (as it ran) that raised, from IPython's traceback ('Cell In[7], line 3')."""
    output = next(o for o in cell.outputs if o.get("output_type") == "error")
    marker = f"Cell In[{cell.get('execution_count')}], line "
    for frame in output.get("traceback", []):
        plain = ANSI.sub("", frame)
        if marker in plain:
            return int(re.match(r"\d+", plain.split(marker, 1)[1]).group())
    return None


def _source_line(source: str, ran_line: int | None) -> int | None:
    """The line of a source cell that became line `ran_line` of the solution (markers and hidden tests gone)."""
    if ran_line is None:
        return None
    kept, number = [], 0
    for block in cells.segments(source):
        if block.kind is not None:
            number += 1  # its BEGIN marker
        for _ in block.lines:
            number += 1
            if block.kind != "hidden":
                kept.append(number)
        if block.kind is not None:
            number += 1  # its END marker
    return kept[ran_line - 1] if 0 < ran_line <= len(kept) else None
