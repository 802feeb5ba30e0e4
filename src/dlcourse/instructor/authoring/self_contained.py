"""Self-contained test cells: no test cell may use a name that only another test cell makes.

The grader puts back a test cell a student deleted (grading/restore.py), but a test that relies on an
import or a value from an earlier test cell still fails when that earlier cell is the one that broke
(it raised before its import, or the student ran the cells out of order). So each test cell must
stand on the notebook's own code and its own lines: it imports what it uses. `dlcourse check` runs
this over the source, hidden tests included, and names the cell, the name and where it came from.

The names are read from the code (assignments, imports, definitions), as a namespace without the
other tests' names would see them; names no cell binds (builtins, IPython's `display`) are fine.
"""

from __future__ import annotations

import ast
import builtins

from nbformat import NotebookNode

from dlcourse.instructor.cells import grade_id, role, strip_markers


def _parse(source: str) -> ast.Module | None:
    # IPython magics and shell lines are not Python; they bind nothing a test could borrow.
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def bound_names(tree: ast.AST) -> set[str]:
    """Every name the code binds: assignments, imports, definitions, loop and `as` targets, arguments."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.split(".")[0])
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    return names


def used_names(tree: ast.AST) -> set[str]:
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}


def borrowed_names(source: NotebookNode) -> list[str]:
    """One line per test cell that uses a name only other test cells bind; [] when every test stands alone."""
    tests: dict[str, ast.Module | None] = {}
    notebook_names = set(dir(builtins))
    for cell in source.cells:
        if cell.get("cell_type") != "code":
            continue
        if role(cell) == "tests":
            tests[grade_id(cell)] = _parse(strip_markers(cell.source, keep_hidden=True))
        else:
            tree = _parse(strip_markers(cell.source, keep_hidden=True))
            if tree is not None:
                notebook_names |= bound_names(tree)
    bound = {test: bound_names(tree) for test, tree in tests.items() if tree is not None}
    problems = []
    for test, tree in tests.items():
        if tree is None:
            problems.append(f"test cell {test} is not valid Python")
            continue
        missing = used_names(tree) - bound[test] - notebook_names
        for name in sorted(missing):
            makers = [other for other, names in bound.items() if other != test and name in names]
            if makers:
                problems.append(f"test cell {test} uses {name!r}, which only test cell {makers[0]} makes: "
                                f"import or define it in {test} too")
    return problems
