"""A small course for grader tests: the red-team assignment (one function, three 1-point tests)."""

from __future__ import annotations

import copy
from pathlib import Path

from dlcourse.instructor.authoring.build import student_notebook
from dlcourse.instructor.source import read_source
from tests.conftest import make_course

NAME = "99_redteam"
CORRECT = "def square(x):\n    return x * x\n"
WRONG = "def square(x):\n    return x + 1\n"


def build_course(root: Path):
    """(course, source notebook, student notebook) of the red-team assignment under `root`."""
    course = make_course(root, source=(Path(__file__).parent / "source.py").read_text(), name=NAME)
    source = read_source(course.source_path(NAME))
    return course, source, student_notebook(course, NAME, source)


def with_solution(student, code: str):
    nb = copy.deepcopy(student)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "square":
            cell.source = code
    return nb


def insert_after(nb, grade_id: str, code: str):
    """A copy of `nb` with a code cell `code` right after the cell `grade_id`."""
    import nbformat

    nb = copy.deepcopy(nb)
    index = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(code))
    return nb
