"""`dlcourse check`: prove an assignment right before students see it.

For each assignment, through the grading engine every submission goes through:
the solution must score full marks, the blank student notebook must score 0
without crashing the grader, and every mutant (a known-wrong edit of a solution cell in
autograder/NN_name/mutants.toml) must lose points. The leak scan must find no
solution or hidden-test line in the generated files, and they must not be stale.
"""

from __future__ import annotations

import copy
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import nbformat
from nbformat import NotebookNode

from dlcourse.instructor.authoring.build import stale_files, student_notebook
from dlcourse.instructor.authoring.leaks import Leak, scan_notebook
from dlcourse.instructor.authoring.mutants import Mutant, MutantError, read_mutants
from dlcourse.instructor.authoring.self_contained import borrowed_names
from dlcourse.instructor.source import read_source
from dlcourse.instructor.cells import grade_id, score_columns, solution_texts
from dlcourse import tables
from dlcourse.instructor.course import Course
from dlcourse.instructor.grading.engine import GradeResult, Status, grade_notebook
from dlcourse.instructor.grading.settings import default_workers
from dlcourse.instructor.grading.template import Template, given_or_own

@dataclass
class CheckReport:
    assignment: str
    points: float = 0.0
    manual_points: float = 0.0
    solution: GradeResult | None = None
    blank: GradeResult | None = None
    mutants: list[tuple[Mutant, GradeResult]] = field(default_factory=list)
    leaks: list[Leak] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def mutants_caught(self) -> int:
        return sum(1 for _, r in self.mutants if r.score < r.max_score)

    @property
    def ok(self) -> bool:
        return not self.problems


def find_mutants(course: Course, name: str, source: NotebookNode) -> list[Mutant]:
    """The mutants of an assignment; one naming an unknown solution id is an error."""
    return read_mutants(course.mutants_path(name), set(solution_texts(source)))


def solved_notebook(student: NotebookNode, source: NotebookNode, replace: dict[str, str] | None = None,
                    outputs: dict[str, list] | None = None) -> NotebookNode:
    """The student notebook filled in with the source's solutions (a perfect student),
    with some solution cells replaced (a mutant); `outputs` (cell id -> outputs, `executed_outputs`)
    are what the student's run printed, as in a notebook handed in after Run All."""
    nb = copy.deepcopy(student)
    answers = solution_texts(source, roles=("solution", "answer"))
    answers.update(replace or {})
    for cell in nb.cells:
        if grade_id(cell) in answers and cell.metadata.nbgrader.get("solution"):
            cell.source = answers[grade_id(cell)]
        if outputs and cell.cell_type == "code" and cell.get("id") in outputs:
            cell.outputs = copy.deepcopy(outputs[cell.id])
    return nb


def executed_outputs(course: Course, name: str) -> dict[str, list]:
    """cell id -> outputs of the executed solution notebook ({} when it was never built). A project's
    checks read the record its run printed in the notebook handed in (dlcourse.projects)."""
    path = course.solution_path(name)
    if not path.exists():
        return {}
    executed = nbformat.read(str(path), as_version=4)
    return {cell.id: cell.outputs for cell in executed.cells if cell.cell_type == "code" and cell.get("id")}


def check_assignment(course: Course, name: str, workers: int | None = None, log=print,
                     template: Template | None = None) -> CheckReport:
    """Grade the solution, the blank notebook and every mutant, look for leaks and stale files. The
    kernels fork from `template` (``dlcourse check`` passes one for all assignments), else from a
    template of this call's own."""
    started = time.perf_counter()
    report = CheckReport(assignment=name)
    source = read_source(course.source_path(name))
    student = student_notebook(course, name, source)
    mutants = find_mutants(course, name, source)
    report.points = sum(c.max_points for c in score_columns(source) if c.kind == "tests")
    report.manual_points = sum(c.max_points for c in score_columns(source) if c.kind == "answer")

    # The solution and the mutants are handed in as run (with the executed solution's outputs); the blank as never run.
    outputs = executed_outputs(course, name)
    runs: list[tuple[str, NotebookNode]] = [
        ("solution", solved_notebook(student, source, outputs=outputs)),
        ("blank", student),
    ]
    solutions = solution_texts(source)
    applied = []
    for mutant in mutants:
        try:
            code = mutant.apply(solutions[mutant.grade_id])
        except MutantError as error:
            report.problems.append(str(error))
            continue
        applied.append(mutant)
        runs.append((f"mutant {mutant.label}", solved_notebook(student, source, {mutant.grade_id: code}, outputs)))

    workers = workers or default_workers()
    log(f"{name}: grading {len(runs)} notebooks ({len(mutants)} mutants) with {workers} workers ...")
    # One BLAS/torch thread per core each: more would make the kernels fight over the cores.
    threads = max(1, (os.cpu_count() or 1) // workers)
    with given_or_own(template) as template, ThreadPoolExecutor(max_workers=workers) as pool:
        # A mutant is caught as soon as one test fails: the rest of its notebook (training included) need
        # not run. The solution and the blank run in full (a blank that passes a later test is a weak test).
        results = list(pool.map(lambda run: grade_notebook(run[1], source, threads=threads, template=template,
                                                           stop_at_first_failure=run[0].startswith("mutant"))[0],
                                runs))

    report.solution, report.blank = results[0], results[1]
    report.mutants = list(zip(applied, results[2:]))

    sol = report.solution
    if sol.status != Status.GRADED or sol.score != sol.max_score:
        failing = [f"{c.grade_id} ({c.error})" for c in sol.cells if c.kind == "tests" and c.points != c.max_points]
        report.problems.append(
            f"solution scores {sol.score:g}/{sol.max_score:g} ({sol.status}); failing: {', '.join(failing) or sol.message}"
        )
    blank = report.blank
    if blank.status != Status.GRADED:
        report.problems.append(f"blank notebook did not grade cleanly: {blank.status} {blank.message}")
    if blank.score != 0:
        passing = [c.grade_id for c in blank.cells if c.kind == "tests" and c.points]
        report.problems.append(f"blank notebook scores {blank.score:g}, not 0; passing: {', '.join(passing)}")
    for mutant, result in report.mutants:
        if result.score >= result.max_score:
            report.problems.append(f"mutant {mutant.label} not caught: it scores full marks")
    uncovered = sorted(gid for gid in solutions if sum(m.grade_id == gid for m in mutants) < 2)
    if uncovered:
        report.problems.append(f"solution cells with fewer than 2 mutants: {', '.join(uncovered)}")

    for path, allow_solutions in ((course.student_path(name), False), (course.solution_path(name), True)):
        if path.exists():
            report.leaks += scan_notebook(path, source, allow_solutions, course.root)
    # the leak gate of `dlcourse publish`, over what it would write (package, data, README, colab/)
    from dlcourse.instructor.authoring.publish import check_leaks

    report.leaks += check_leaks(course, name)
    if report.leaks:
        report.problems.append(f"{len(report.leaks)} leak(s): " + "; ".join(str(l) for l in report.leaks[:5]))
    # Test cells that use what only another test cell makes (self_contained.py): a deleted or failing
    # test cell would take the next ones down with it.
    report.problems += borrowed_names(source)
    report.stale = stale_files(course, name)
    if report.stale:
        report.problems.append(f"stale generated files (run `dlcourse build {name}`): {', '.join(report.stale)}")
    report.seconds = time.perf_counter() - started
    return report


def format_table(reports: list[CheckReport]) -> str:
    header = ("assignment", "points", "solution", "blank", "mutants", "leaks", "seconds", "result")
    rows = []
    for r in reports:
        rows.append((
            r.assignment,
            f"{r.points:g}" + (f" (+{r.manual_points:g} manual)" if r.manual_points else ""),
            f"{r.solution.score:g}" if r.solution else "-",
            f"{r.blank.score:g}" if r.blank else "-",
            f"{r.mutants_caught}/{len(r.mutants)}",
            str(len(r.leaks)),
            f"{r.seconds:.0f}",
            "ok" if r.ok else "FAIL",
        ))
    lines = tables.format_table(header, rows)
    for r in reports:
        for problem in r.problems:
            lines.append(f"{r.assignment}: {problem}")
    return "\n".join(lines)
