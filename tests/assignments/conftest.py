"""Fixtures for the per-assignment tests: the real course, loaded once per session, and an
assignment's solution namespace (what a perfect student's notebook defines), built one way for all."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from dlcourse.instructor.source import read_source
from dlcourse.instructor.cells import role, solution_texts, strip_markers
from dlcourse.instructor.course import Course, load_course
from tests.assignments.project_cells import is_project_cell

ROOT = Path(__file__).resolve().parents[2]
DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@pytest.fixture(scope="session")
def course() -> Course:
    return load_course(ROOT)


@pytest.fixture(scope="session")
def sources(course):
    """Assignment name -> its source notebook (read once)."""
    cache: dict = {}

    def source(name: str):
        if name not in cache:
            cache[name] = read_source(course.source_path(name))
        return cache[name]

    return source


def _definitions(code: str) -> str:
    """A provided cell's imports, functions, classes and constants, without what it runs (training,
    plotting, downloads)."""
    keep = []
    for node in ast.parse(code).body:
        if isinstance(node, DEFINITIONS):
            keep.append(node)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            try:
                ast.literal_eval(node.value)
            except ValueError:
                continue
            keep.append(node)
    return ast.unparse(ast.Module(body=keep, type_ignores=[]))


def solution_namespace(source, name: str) -> dict:
    """The notebook run as plain Python, the fast way: every solution cell whole (a project's: its
    definitions only), every other code cell's definitions only, no test cell."""
    scope: dict = {"__name__": f"{name}_notebook"}
    for index, cell in enumerate(source.cells):
        if cell.cell_type != "code" or role(cell) == "tests":
            continue
        code = strip_markers(cell.source, keep_hidden=False)
        # a project's solution cells run the project (training on the notebook's data): keep their definitions
        if role(cell) != "solution" or is_project_cell(cell):
            code = _definitions(code)
        exec(compile(code, f"<{name} cell {index}>", "exec"), scope)
    return scope


@pytest.fixture(scope="module")
def assignment(request) -> str:
    """The assignment a test module specifies: its NAME."""
    return request.module.NAME


@pytest.fixture(scope="module")
def solution_cells(sources, assignment) -> dict[str, str]:
    return solution_texts(sources(assignment))


@pytest.fixture(scope="module")
def solution(sources, assignment) -> dict:
    return solution_namespace(sources(assignment), assignment)
