"""`dlcourse build`: one source -> the student notebook and the executed solution.

Student notebook: nbgrader's own preprocessors clear the solutions and hidden
tests, lock the test cells and record checksums, exactly as
``nbgrader generate_assignment`` does. Solution notebook: the markers and hidden
tests are removed (stock ``nbgrader generate_solution`` keeps both), then it is
executed in full, real training included. Both end with the self-check (a markdown cell and a
code cell calling `dlcourse.selfcheck.self_check` with the notebook's visible tests), and both
open with the badge row and the Colab setup cell, built from [tool.dlcourse] (the student repository and the ref students
install): generated_cells.

Nothing is written unless all of it worked: a syntax error (in the source, or in a student's cell
once the stub replaces the solution) stops the build before anything runs, and a cell that fails
while the solution runs (solution_run) is one line naming its source line (solution_failure). After a
change that cannot change the outputs (markdown, points, a visible test's hint, [tool.dlcourse]),
``build --keep-outputs`` (``--headers-only``, its older name) keeps the committed solution's
outputs and recomputes the self-check's: the bytes are those of a full build (kept_outputs).
This module is the pipeline that calls them, and what tells generated files from stale ones.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import nbformat
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions, ComputeChecksums, LockCells

from dlcourse.instructor.authoring.generated_cells import header_cells, self_check_cells
from dlcourse.instructor.authoring.kept_outputs import with_committed_outputs
from dlcourse.instructor.authoring.solution_failure import describe_failure
from dlcourse.instructor.authoring.solution_run import execute, printed_digest
from dlcourse.instructor.cells import CODE_STUB, graded_cells, grade_id, strip_markers
from dlcourse.instructor.course import Course, CourseError
from dlcourse.instructor.source import cell_start_lines, read_source, where_in_source


def student_notebook(course: Course, name: str, source: NotebookNode | None = None) -> NotebookNode:
    """The student version: solutions replaced by stubs, hidden tests removed, test cells locked."""
    nb = copy.deepcopy(source if source is not None else read_source(course.source_path(name)))
    resources: dict = {}
    for preprocessor in (ClearSolutions(code_stub=CODE_STUB), ClearHiddenTests(), LockCells(), ComputeChecksums()):
        nb, resources = preprocessor.preprocess(nb, resources)
    nb.cells = header_cells(course, f"assignments/{name}/{name}.ipynb", name) + nb.cells + self_check_cells(name, nb)
    return nb


def solution_cells(course: Course, name: str, source: NotebookNode | None = None) -> NotebookNode:
    """The solution version, not yet executed: markers and hidden tests gone, nbgrader metadata gone;
    its self-check lists the student notebook's tests (same text, so the same fingerprints)."""
    source = source if source is not None else read_source(course.source_path(name))
    closing = self_check_cells(name, student_notebook(course, name, source))
    nb = copy.deepcopy(source)
    for cell in nb.cells:
        cell.source = strip_markers(cell.source, keep_hidden=False)
        cell.metadata = {}
    nb.cells = header_cells(course, f"solutions/{name}/{name}.ipynb", name) + nb.cells + closing
    return nb


def write_notebook(nb: NotebookNode, path: Path) -> None:
    """Write with nbformat's canonical JSON (sorted keys, one-space indent): stable bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(nbformat.writes(nb) + "\n", encoding="utf-8")


def notebook_bytes(nb: NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


class BuildError(CourseError):
    """The solution failed while it ran; the message is one line: where in the source, and why."""


def build(course: Course, name: str, execute_solution: bool = True, log=print, keep_outputs: bool = False,
          headers_only: bool = False) -> dict:
    """Build one assignment; returns what was written and how long the solution ran.

    Nothing is written unless everything worked: a syntax error anywhere in the source stops it before
    anything runs (read_source), and a solution or visible test that fails while the solution runs
    stops it with one line (BuildError), the committed notebooks left as they were.

    keep_outputs (or headers_only, its older name): take the outputs of the committed solution instead
    of running it again, when only what cannot change them changed (markdown, points, header cells,
    the hints of visible tests; see with_committed_outputs); the bytes are those a full build writes."""
    source = read_source(course.source_path(name))
    student = student_notebook(course, name, source)
    check_student_syntax(course, name, source, student)
    solution = solution_cells(course, name, source)
    seconds = None
    if keep_outputs or headers_only:
        solution = with_committed_outputs(course, name, solution, source, student)
    elif execute_solution:
        log(f"{name}: executing the solution in full (real training) ...")
        started = time.perf_counter()
        try:
            execute(solution)
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as error:
            raise BuildError(describe_failure(course, name, source, solution, error)) from None
        seconds = time.perf_counter() - started
        log(f"{name}: solution ran in {seconds:.0f} s")
        starts = cell_start_lines(course.source_path(name)) or []
        labels = {cell.get("id"): f"line {start}" for cell, start in zip(source.cells, starts)}
        digest = printed_digest(solution, skip={grade_id(c) for c in graded_cells(source, "tests")}, labels=labels)
        if digest:
            log(f"{name}: what the solution printed last, cell by cell ({course.source_path(name).name}):")
        for line in digest:
            log(f"  {line}")
    write_notebook(student, course.student_path(name))
    write_notebook(solution, course.solution_path(name))
    return {
        "assignment": name,
        "student": course.student_path(name),
        "solution": course.solution_path(name),
        "solution_seconds": seconds,
    }


def check_student_syntax(course: Course, name: str, source: NotebookNode, student: NotebookNode) -> None:
    """Each solution cell as the student gets it (its solution blocks replaced by the stub) must still be
    Python: markers inside an expression make a stub that is not, and students could not run the cell."""
    ids = [c.get("id") for c in source.cells]
    for cell in graded_cells(student, "solution"):
        try:
            compile(cell.source, grade_id(cell), "exec")
        except SyntaxError as error:
            index = ids.index(cell.id) if cell.get("id") in ids else None
            where = (where_in_source(course.source_path(name), source, index, None) if index is not None
                     else f"{course.source_path(name)}, solution {grade_id(cell)!r}")
            raise CourseError(f"{where}: in the student notebook this cell is not valid Python once its solution "
                              f"is replaced by the stub ({error.msg}, line {error.lineno} of the student's cell): "
                              "put ### BEGIN SOLUTION / ### END SOLUTION around whole statements") from None


def refuse_to_clear_outputs(course: Course, name: str) -> None:
    """`build --no-execute` writes a solution without outputs; refuse when that would replace one
    with the outputs of a real run (the freshness test would pass, and students would lose them)."""
    path = course.solution_path(name)
    if not path.exists():
        return
    committed = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
    if any(c.cell_type == "code" and (c.outputs or c.execution_count) for c in committed.cells):
        raise CourseError(
            f"{path.relative_to(course.root)} holds the outputs of a real run and --no-execute would remove "
            f"them: run `dlcourse build {name} --keep-outputs` (after a change of markdown, points or a test's "
            f"hint) or `dlcourse build {name}`")


def freshness_problems(course: Course, name: str) -> list[str]:
    """What the course's freshness test fails on: generated files older than the source, and a committed
    solution whose code cells never ran (built with --no-execute: stale_files compares cells, not outputs)."""
    problems = [f"{path} is older than notebooks/" for path in stale_files(course, name)]
    path = course.solution_path(name)
    if path.exists():
        committed = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
        never_ran = [c.get("id", "?") for c in committed.cells if c.cell_type == "code" and not c.execution_count]
        if never_ran:
            problems.append(f"{path.relative_to(course.root)} never ran ({len(never_ran)} code cells without "
                            f"outputs, first {never_ran[0]!r}): run `dlcourse build {name}` without --no-execute")
    return problems
def strip_outputs(nb: NotebookNode) -> NotebookNode:
    """A copy with outputs and execution counts cleared: what 'the cells' of a notebook are."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def stale_files(course: Course, name: str) -> list[str]:
    """Generated files of an assignment that differ from what its source builds now."""
    source = read_source(course.source_path(name))
    stale = []
    student_path = course.student_path(name)
    expected_student = notebook_bytes(student_notebook(course, name, source))
    if not student_path.exists() or student_path.read_text(encoding="utf-8") != expected_student:
        stale.append(str(student_path.relative_to(course.root)))
    solution_path = course.solution_path(name)
    expected_cells = notebook_bytes(solution_cells(course, name, source))
    if not solution_path.exists():
        stale.append(str(solution_path.relative_to(course.root)))
    else:
        committed = strip_outputs(nbformat.reads(solution_path.read_text(encoding="utf-8"), as_version=4))
        if notebook_bytes(committed) != expected_cells:
            stale.append(str(solution_path.relative_to(course.root)))
    return stale


def require_fresh(course: Course, names: list[str], before: str, built_only: bool = False) -> None:
    """Stop, in one line, before `before` works from generated files older than notebooks/ (students
    and the grader would get different versions). built_only: only generated files that exist are
    checked (grading works from the source alone, and a grading machine may have no solutions/)."""
    stale, fix = [], []
    for name in names:
        if built_only and not course.student_path(name).exists():
            continue
        files = stale_files(course, name)
        if built_only:  # what was never built (a grading machine may hold no solutions/) is not stale
            files = [f for f in files if (course.root / f).exists()]
        if files:
            stale += files
            fix.append(name)
    if stale:
        missing = [f for f in stale if not (course.root / f).exists()]
        what = (f"{', '.join(missing)} {'does' if len(missing) == 1 else 'do'} not exist" if missing else
                f"{', '.join(stale)} {'is' if len(stale) == 1 else 'are'} older than notebooks/")
        raise CourseError(f"{what}: run `dlcourse build {' '.join(fix)}` before {before}")


def _assignment_title(course: Course, name: str) -> str:
    """The first markdown heading of an assignment's source, without the '#'."""
    for line in course.source_path(name).read_text(encoding="utf-8").splitlines():
        if line.startswith("# # "):
            return line[4:].strip()
    return name


def colab_index(course: Course, names: list[str] | None = None) -> tuple[str, NotebookNode]:
    """The Colab entry page: a README and an index notebook with one badge per assignment
    (every assignment, or those published)."""
    rows = []
    for name in course.assignments() if names is None else names:
        path = f"assignments/{name}/{name}.ipynb"
        badge = f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({course.colab_url(path)})"
        rows.append(f"| {name} | {_assignment_title(course, name)} | {badge} |")
    table = "| assignment | what it covers | open |\n| --- | --- | --- |\n" + "\n".join(rows)
    drive = (
        "## Keeping your work\n\n"
        "A Colab runtime forgets everything when it disconnects. Before you start, use "
        "**File > Save a copy in Drive**: your copy lives in your Google Drive and keeps your answers. "
        "To keep data sets and checkpoints too, run `dlcourse.mount_drive()` in a notebook "
        "(it asks for permission once) and save files under the folder it returns "
        "(`MyDrive/dlcourse`). When you are done, **File > Download > Download .ipynb** and hand that "
        "file in.\n\n"
        "## Turning on the GPU\n\n"
        "Only the assignments that train larger models ask for one"
        + (f" ({', '.join(n for n in (course.assignments() if names is None else names) if n in course.gpu)})"
           if course.gpu else "")
        + ": in those, **Runtime > Change runtime type > T4 GPU** before running anything. Every notebook "
        "also runs on a CPU, more slowly."
    )
    readme = (
        "# Open the course in Google Colab\n\n"
        "Click a badge to open an assignment in Colab; the first code cell installs the course "
        "package `dlcourse`. Nothing to set up.\n\n" + table + "\n\n" + drive + "\n"
    )
    index = nbformat.v4.new_notebook()
    index.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                      "language_info": {"name": "python"}, "colab": {"provenance": []}}
    intro = nbformat.v4.new_markdown_cell(
        "# Deep learning course: assignments\n\nOpen an assignment in Colab:\n\n" + table)
    intro.id = "assignments"
    keeping = nbformat.v4.new_markdown_cell(drive)
    keeping.id = "keeping-work"
    index.cells = [intro, keeping]
    return readme, index


def write_colab_index(course: Course) -> list[Path]:
    readme, index = colab_index(course)
    folder = course.root / "colab"
    folder.mkdir(exist_ok=True)
    (folder / "README.md").write_text(readme, encoding="utf-8")
    write_notebook(index, folder / "index.ipynb")
    return [folder / "README.md", folder / "index.ipynb"]


def stale_colab_files(course: Course) -> list[str]:
    readme, index = colab_index(course)
    expected = {"colab/README.md": readme, "colab/index.ipynb": notebook_bytes(index)}
    stale = []
    for relative, text in expected.items():
        path = course.root / relative
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(relative)
    return stale
