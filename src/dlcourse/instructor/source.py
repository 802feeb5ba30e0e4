"""Read one assignment source (a jupytext percent script) into an nbgrader source
notebook, and refuse a source that nbgrader would mis-grade.

A cell header carries at most one of ``solution="id"``, ``tests="id" points=N``,
``answer="id" points=N`` or ``rubric="id"`` (a project's rubric, right above the written answer it
grades; see notebooks/README.md); this module turns it into
nbgrader's cell metadata (schema 3) and gives every cell a stable id, so that
the generated notebooks are byte-for-byte reproducible.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import jupytext
import nbformat
from nbformat import NotebookNode

from dlcourse.instructor import cells
from dlcourse.instructor.cells import RUBRIC, ROLES, Block, RubricError, is_rubric, rubric_points
from dlcourse.instructor.course import CourseError

GRADE_ID = re.compile(r"^[A-Za-z0-9_-]{1,60}$")

# Metadata the kernel header of every generated notebook gets; fixed so builds are reproducible.
KERNEL_METADATA = {
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
    # Colab opens the notebook on a GPU runtime when one is free.
    "accelerator": "GPU",
    "colab": {"provenance": []},
}


class SourceError(CourseError):
    """A source that cannot be built; the message names the file and the cell."""


HEADER_KEYS = ("solution", "tests", "answer", "rubric", "points")
# `key=value` in a cell header: a quoted string, a JSON number, or anything else up to a space
HEADER_OPTION = re.compile(r"""([A-Za-z_][\w-]*)=("[^"]*"|'[^']*'|\S+)""")


def check_headers(text: str, path: Path) -> None:
    """Read every `# %%` header as an author wrote it, before jupytext does: jupytext drops what it
    cannot parse (an unquoted id, points=three, a key without a value) silently, and the cell then
    fails a later check for an unrelated reason. Each mistake here gets its own message."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.startswith("# %%"):
            continue
        where = f"{path}, line {number} ({line.strip()!r})"
        rest = re.sub(r"^\s*\[\w+\]", "", line[4:])  # [markdown]
        for key, value in HEADER_OPTION.findall(rest):
            if key not in HEADER_KEYS:
                close = difflib.get_close_matches(key, HEADER_KEYS, n=1, cutoff=0.6)
                if close:
                    raise SourceError(f"{where}: unknown key {key}=; did you mean {close[0]}=?")
                continue  # jupytext's own options (tags=...) pass through
            if key == "points":
                try:
                    float(value)
                except ValueError:
                    raise SourceError(f"{where}: points={value} is not a number; write points=2") from None
            elif value[0] not in "\"'":
                raise SourceError(f'{where}: the id in {key}={value} needs quotes: {key}="{value}"')
        for word in HEADER_OPTION.sub(" ", rest).split():
            if word in HEADER_KEYS:
                example = "points=2" if word == "points" else f'{word}="an_id" (letters, digits, _ and -)'
                raise SourceError(f"{where}: {word} has no value; write {example}")


def read_source(path: Path) -> NotebookNode:
    """The source notebook: solutions and hidden tests in place, nbgrader metadata on every graded cell."""
    path = Path(path)
    try:
        check_headers(path.read_text(encoding="utf-8"), path)
    except OSError as error:
        raise SourceError(f"{path}: cannot read it ({error.strerror or error})") from None
    try:
        nb = jupytext.read(path, fmt="py:percent")
    except Exception as error:  # jupytext raises many types on a broken header
        raise SourceError(f"{path}: jupytext cannot read it ({error})") from error
    seen: dict[str, int] = {}
    for index, cell in enumerate(nb.cells, start=1):
        where = f"{path}, cell {index} ({_first_line(cell)!r})"
        role, grade_id, points = _role(cell, where)
        _check_markers(cell, role, where)
        cell.metadata = {}
        if role:
            if grade_id in seen:
                raise SourceError(
                    f"{where}: id {grade_id!r} is already used by cell {seen[grade_id]}; "
                    "every graded cell needs its own id"
                )
            seen[grade_id] = index
            cell.metadata["nbgrader"] = _nbgrader_metadata(role, grade_id, points)
            cell.id = grade_id
        else:
            cell.id = f"cell-{index:03d}"
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    _check_rubrics(nb, path)
    if not seen:
        raise SourceError(f"{path}: no graded cell (solution=, tests= or answer=) in the source")
    nb.metadata = dict(KERNEL_METADATA)
    nb.nbformat, nb.nbformat_minor = 4, 5
    nbformat.validate(nb)
    return nb


def _first_line(cell: NotebookNode) -> str:
    for line in cell.source.splitlines():
        if line.strip():
            return line.strip()[:60]
    return ""


def _role(cell: NotebookNode, where: str) -> tuple[str | None, str | None, float | None]:
    roles = [r for r in (*ROLES, RUBRIC) if r in cell.metadata]
    if len(roles) > 1:
        raise SourceError(f"{where}: a cell has one role, this one has {roles}")
    if not roles:
        if "points" in cell.metadata:
            raise SourceError(f"{where}: points= on a cell that is not tests= or answer=")
        return None, None, None
    role = roles[0]
    grade_id = cell.metadata[role]
    if not isinstance(grade_id, str) or not GRADE_ID.match(grade_id):
        raise SourceError(
            f"{where}: {role}={grade_id!r} is not a valid id (letters, digits, _ and -, at most 60)"
        )
    if role == "answer" and cell.cell_type != "markdown":
        raise SourceError(f"{where}: answer= is for markdown cells (written answers)")
    if role == RUBRIC:
        if cell.cell_type != "markdown":
            raise SourceError(f"{where}: rubric= is for markdown cells (a table of criteria and points)")
        if "points" in cell.metadata:
            raise SourceError(f"{where}: points= belongs on the answer the rubric grades, not on rubric {grade_id!r}")
        return role, grade_id, None
    if role in ("solution", "tests") and cell.cell_type != "code":
        raise SourceError(f"{where}: {role}= is for code cells")
    points = cell.metadata.get("points")
    if role in ("tests", "answer"):
        if points is None:
            raise SourceError(f"{where}: graded cell {grade_id!r} has no points; add points=N to its header")
        if not isinstance(points, (int, float)) or isinstance(points, bool) or points <= 0:
            raise SourceError(f"{where}: points={points!r} must be a positive number")
    elif points is not None:
        raise SourceError(f"{where}: points= belongs on the tests cell, not on solution {grade_id!r}")
    return role, grade_id, points


def _nbgrader_metadata(role: str, grade_id: str, points: float | None) -> dict:
    if role == RUBRIC:  # nbgrader's read-only cell: locked, not graded, not a solution
        return {"grade": False, "grade_id": grade_id, "locked": True, "schema_version": 3, "solution": False,
                "task": False}
    meta = {
        "grade": role in ("tests", "answer"),
        "grade_id": grade_id,
        "locked": role == "tests",
        "schema_version": 3,
        "solution": role in ("solution", "answer"),
        "task": False,
    }
    if points is not None:
        meta["points"] = points
    return meta


def _check_rubrics(nb: NotebookNode, path: Path) -> None:
    """Every rubric sits right above the written answer it grades, and its points add up to the answer's."""
    for index, cell in enumerate(nb.cells):
        if not is_rubric(cell):
            continue
        meta = cell.metadata["nbgrader"]
        where = f"{path}, cell {index + 1} ({_first_line(cell)!r})"
        rubric = meta["grade_id"]
        below = nb.cells[index + 1].metadata.get("nbgrader", {}) if index + 1 < len(nb.cells) else {}
        if not (below.get("grade") and below.get("solution")):
            raise SourceError(f"{where}: rubric {rubric!r} must be followed by the written answer it grades "
                              "(a markdown cell with answer=\"...\" points=N)")
        try:
            criteria = rubric_points(cell.source)
        except RubricError as error:
            raise SourceError(f"{where}: rubric {rubric!r}: {error}") from None
        total = sum(points for _, points in criteria)
        if abs(total - float(below["points"])) > 1e-9:
            raise SourceError(f"{where}: rubric {rubric!r} gives {total:g} points in all, but the answer below it "
                              f"({below['grade_id']!r}) is worth points={below['points']:g}; make them agree")


def split_blocks(source: str, where: str = "cell") -> tuple[list[str], list[Block]]:
    """A cell's public lines and marked blocks (``cells.split_blocks``); SourceError on unpaired markers."""
    try:
        return cells.split_blocks(source, where)
    except cells.MarkerError as error:
        raise SourceError(str(error)) from None


def _check_markers(cell: NotebookNode, role: str | None, where: str) -> None:
    _, blocks = split_blocks(cell.source, where)
    kinds = {b.kind for b in blocks}
    if "solution" in kinds and role not in ("solution", "answer"):
        raise SourceError(
            f"{where}: solution markers in a cell that is not solution= or answer=; "
            "the student would see the solution"
        )
    if "hidden" in kinds and role != "tests":
        raise SourceError(f"{where}: hidden-test markers belong in a tests= cell")
    if role == "solution" and "solution" not in kinds:
        raise SourceError(
            f"{where}: a solution= cell needs ### BEGIN SOLUTION / ### END SOLUTION around the lines the "
            "student writes; without them the student notebook loses the whole cell (signature and docstring too)"
        )
