"""The project at the end of an assignment (issue 28), seen from the per-assignment tests.

The project's cells are graded by their own tests cell and the rubric, never by the main exercises'
tests: the fast solution namespace (conftest.solution_namespace) takes only the definitions of its
solution cells (they train for a minute), and the rules for the main tests cells (visible checks with
hints, `exercise_tests_cells`) do not apply to the project's checks cell, which calls `dlcourse.projects`.
What they must get right instead: the checks cell names the project, metric and budget that the
`Project(...)` line sets up, or a correct run would be graded against another budget.
"""

from __future__ import annotations

import ast

from nbformat import NotebookNode

from dlcourse.instructor.cells import grade_id, role, strip_markers


def is_project_cell(cell: NotebookNode) -> bool:
    """A project's solution or tests cell (grade ids project_NN_... and test_project_NN)."""
    return (grade_id(cell) or "").startswith(("project_", "test_project_"))


def exercise_tests_cells(source: NotebookNode) -> list[tuple[str, str]]:
    """(grade id, visible code) of the main exercises' tests cells: every tests cell but the project's."""
    return [(grade_id(cell), strip_markers(cell.source, keep_hidden=False))
            for cell in source.cells if cell.cell_type == "code" and role(cell) == "tests" and not is_project_cell(cell)]


def _calls(code: str, name: str) -> list[ast.Call]:
    return [node for node in ast.walk(ast.parse(code)) if isinstance(node, ast.Call)
            and ast.unparse(node.func).split(".")[-1] == name]


def project_setup(source: NotebookNode) -> dict:
    """What the `Project(...)` line of the source sets up: name, metric, and the full and grading budgets."""
    calls = [call for cell in source.cells if cell.cell_type == "code" and not is_project_cell(cell)
             for call in _calls(cell.source, "Project")]
    assert len(calls) == 1, f"{len(calls)} Project(...) calls outside the project's graded cells; expected one"
    call = calls[0]
    keywords = {k.arg: k.value for k in call.keywords}
    budget = {k.arg: ast.literal_eval(k.value) for k in keywords["budget_steps"].keywords}
    return {"name": ast.literal_eval(call.args[0]), "metric": ast.literal_eval(keywords["metric"]),
            "higher_is_better": ast.literal_eval(keywords["higher_is_better"]), **budget}


def checked_setup(source: NotebookNode) -> dict:
    """What the project's tests cell checks the record against: name, metric and budget."""
    cells = [cell for cell in source.cells if (grade_id(cell) or "").startswith("test_project_")]
    assert len(cells) == 1, f"{len(cells)} test_project_ cells; expected one"
    code = cells[0].source
    well_formed, budget = _calls(code, "check_well_formed"), _calls(code, "check_budget")
    assert len(well_formed) == 1 and len(budget) == 1, "the project's tests cell runs each check once"
    checked = {"name": ast.literal_eval(well_formed[0].args[1]), "metric": ast.literal_eval(well_formed[0].args[2]),
               "full": ast.literal_eval(budget[0].args[1])}
    for check in ("submitted_record", "check_test_used_once", "check_reproduces"):
        assert _calls(code, check), f"the project's tests cell does not call projects.{check}"
    return checked


def assert_checks_match_setup(source: NotebookNode, assignment: str, metric: str, higher_is_better: bool) -> None:
    """The project's checks cell grades the project its `Project(...)` line sets up (name, metric, full
    budget), and the grader's re-run trains a few steps only."""
    setup, checked = project_setup(source), checked_setup(source)
    assert setup["name"] == checked["name"] == assignment
    assert setup["metric"] == checked["metric"] == metric and setup["higher_is_better"] is higher_is_better
    assert checked["full"] == setup["full"], "the tests cell checks another budget than the project's"
    assert setup["grading"] <= 20, "the grader's re-run trains a few steps only"


def run_project(source: NotebookNode, name: str, grading: bool, budget_steps: int | None = None,
                data_marker: str | None = None):
    """The notebook's first cell, the cells holding `data_marker` (its data, when the project reuses it),
    the `Project(...)` setup and the project's sweep (`project_NN_...` solution), run as plain Python under
    the grader's budget or, with `budget_steps`, a full run of that many steps; returns the project."""
    import matplotlib
    import pytest

    from tests.assignments.conftest import solution_namespace  # conftest imports this module

    matplotlib.use("Agg")
    with pytest.MonkeyPatch.context() as env:
        if grading:
            env.setenv("NBGRADER_EXECUTION", "autograde")
        else:
            env.delenv("NBGRADER_EXECUTION", raising=False)
        env.setenv("DLCOURSE_PROGRESS", "0")
        scope = solution_namespace(source, name)
        code = [cell.source for cell in source.cells if cell.cell_type == "code"]
        data = [c for c in code if data_marker and data_marker in c]
        setup = [c for c in code if "Project(" in c and not c.lstrip().startswith("###")]
        sweep = [strip_markers(cell.source, keep_hidden=False) for cell in source.cells
                 if is_project_cell(cell) and role(cell) == "solution"]
        for cell in [code[0], *data, *setup]:
            exec(compile(cell, f"<{name}>", "exec"), scope)
        if budget_steps is not None:
            project = scope["project"]
            scope["project"] = scope["Project"](project.name, project.metric, project.higher_is_better,
                                                budget_steps=budget_steps, data=project.data)
        exec(compile(sweep[0], f"<{name} project>", "exec"), scope)
        matplotlib.pyplot.close("all")
    return scope["project"]
