"""The cells of a graded notebook, one vocabulary for authoring and grading: the solution and
hidden-test markers, a cell's nbgrader metadata, role, grade id and points, the graded cells of a
notebook, what a perfect student writes in each, and the columns of a score row.

Plain data in and out (nbformat cells); imported by `authoring/` and `grading/` alike, it imports
neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from dlcourse.selfcheck import STUB_MESSAGE

if TYPE_CHECKING:  # plain dicts at run time: no nbformat needed
    from nbformat import NotebookNode

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"
ROLES = ("solution", "tests", "answer")
# A project's rubric: a read-only (locked, ungraded) markdown cell right above the written answer it
# grades, so the formgrader shows it beside the grade box; its table's points add up to the answer's.
RUBRIC = "rubric"
# What a solution block becomes in the student notebook (nbgrader's ClearSolutions); the student side
# (dlcourse.selfcheck) owns its message.
CODE_STUB = {"python": f'# YOUR CODE HERE\nraise NotImplementedError("{STUB_MESSAGE}")'}
MARKERS = {BEGIN_SOLUTION: ("begin", "solution"), END_SOLUTION: ("end", "solution"),
           BEGIN_HIDDEN: ("begin", "hidden"), END_HIDDEN: ("end", "hidden")}


# The cells `dlcourse build` puts around the source's, by id and by how each one opens (Colab drops
# cell ids): the badge row and the setup cell first, the self-check last. Not the student's, not graded.
GENERATED_CELLS = {
    "badges": "[![Open In Colab]",
    "colab-setup": "# Setup: in Google Colab",
    "self-check-note": "## Self-check",
    "self-check": "from dlcourse.selfcheck import self_check",
}


def is_generated(cell: NotebookNode) -> bool:
    """One of the cells build adds (badges, setup, self-check), with or without its id."""
    source = cell.get("source", "") if isinstance(cell, dict) else ""
    source = "".join(source) if isinstance(source, list) else source
    return cell.get("id") in GENERATED_CELLS or source.lstrip().startswith(tuple(GENERATED_CELLS.values()))


class MarkerError(ValueError):
    """Unpaired or nested markers; the message names the cell and the line."""


@dataclass(frozen=True)
class Block:
    """A run of lines inside one cell: public (kind None), or a marked "solution" or "hidden" block,
    without its marker lines."""

    kind: str | None
    lines: tuple[str, ...]


class ScoreColumn(NamedTuple):
    """One graded cell in a score row: auto-graded tests or a hand-graded answer, and its points."""

    grade_id: str
    kind: str  # "tests" or "answer"
    max_points: float


def nbgrader_metadata(cell: NotebookNode) -> dict:
    """A cell's nbgrader metadata; {} when it is missing or mangled (editors rewrite metadata)."""
    metadata = cell.get("metadata") if isinstance(cell, dict) else None
    meta = metadata.get("nbgrader") if isinstance(metadata, dict) else None
    if not isinstance(meta, dict):
        return {}
    if not isinstance(meta.get("grade_id"), str):
        meta = {k: v for k, v in meta.items() if k != "grade_id"}
    return meta


def role(cell: NotebookNode) -> str | None:
    """'tests', 'answer' or 'solution' from a cell's nbgrader metadata; None for a plain cell."""
    meta = nbgrader_metadata(cell)
    if meta.get("grade"):
        return "answer" if meta.get("solution") else "tests"
    return "solution" if meta.get("solution") else None


def is_rubric(cell: NotebookNode) -> bool:
    """A rubric cell: nbgrader's read-only kind (locked, neither graded nor a solution) with a grade id."""
    meta = nbgrader_metadata(cell)
    return bool(meta.get("locked")) and not meta.get("grade") and not meta.get("solution") and "grade_id" in meta


class RubricError(ValueError):
    """A rubric without a points column or with a row whose points are not a number."""


def rubric_points(markdown: str) -> list[tuple[str, float]]:
    """The criteria of a rubric's markdown table and their points: (criterion, points) per row.

    The table's header row has a column named "points"; the first column names the criterion."""
    rows = [line.strip() for line in markdown.splitlines() if line.strip().startswith("|")]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    if not cells:
        raise RubricError("it has no table: write a markdown table with a 'points' column, one row per criterion")
    header = [c.lower() for c in cells[0]]
    if "points" not in header:
        raise RubricError(f"its table's header {cells[0]} has no 'points' column")
    column = header.index("points")
    criteria = []
    for row in cells[1:]:
        if all(set(c) <= set("-: ") for c in row):  # the |---|---| line under the header
            continue
        value = row[column] if column < len(row) else ""
        try:
            criteria.append((row[0], float(value)))
        except ValueError:
            raise RubricError(f"criterion {row[0]!r} has points {value!r}, not a number") from None
    if not criteria:
        raise RubricError("its table has no criteria (rows under the header)")
    return criteria


def grade_id(cell: NotebookNode) -> str | None:
    return nbgrader_metadata(cell).get("grade_id")


def graded_cells(nb: NotebookNode, *roles: str) -> list[NotebookNode]:
    """The cells of a notebook with one of `roles` (solution, tests, answer), in notebook order."""
    return [c for c in nb.cells if role(c) in roles]


def score_columns(nb: NotebookNode) -> list[ScoreColumn]:
    """The empty score row of a source notebook: every tests and answer cell with its points."""
    return [ScoreColumn(grade_id(c), role(c), float(nbgrader_metadata(c)["points"]))
            for c in graded_cells(nb, "tests", "answer")]


def segments(source: str, where: str = "cell") -> list[Block]:
    """The cell's lines in order, cut into public runs and marked blocks (the one marker parser);
    MarkerError on a marker without its partner or inside another block."""
    out: list[Block] = []
    kind: str | None = None
    current: list[str] = []
    for number, line in enumerate(source.splitlines(), start=1):
        marker = line.strip()
        if marker not in MARKERS:
            current.append(line)
            continue
        edge, marked = MARKERS[marker]
        if edge == "begin" and kind is not None:
            raise MarkerError(f"{where}, line {number}: {marker!r} inside an open {kind} block")
        if edge == "end" and kind != marked:
            raise MarkerError(f"{where}, line {number}: {marker!r} without a matching BEGIN")
        if current or kind is not None:
            out.append(Block(kind, tuple(current)))
        kind, current = (marked if edge == "begin" else None), []
    if kind is not None:
        raise MarkerError(f"{where}: a {kind} block is opened but never closed")
    if current:
        out.append(Block(None, tuple(current)))
    return out


def split_blocks(source: str, where: str = "cell") -> tuple[list[str], list[Block]]:
    """A cell's public lines, and its marked blocks."""
    parts = segments(source, where)
    return [line for b in parts if b.kind is None for line in b.lines], [b for b in parts if b.kind is not None]


def strip_markers(source: str, keep_hidden: bool) -> str:
    """The cell as the solution shows it: marker lines gone, solution kept, hidden tests kept or dropped."""
    kept = [line for b in segments(source) if keep_hidden or b.kind != "hidden" for line in b.lines]
    return "\n".join(kept).rstrip("\n")


def solution_texts(nb: NotebookNode, roles: tuple[str, ...] = ("solution",)) -> dict[str, str]:
    """grade id -> what a perfect student writes there (markers and hidden tests gone), for the
    cells of a source notebook with one of `roles` ("solution", and "answer" for written answers)."""
    return {grade_id(cell): strip_markers(cell.source, keep_hidden=False) for cell in graded_cells(nb, *roles)}
