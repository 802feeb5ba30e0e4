"""`dlcourse build`: one source -> the student notebook and the executed solution.

Student notebook: nbgrader's own preprocessors clear the solutions and hidden
tests, lock the test cells and record checksums, exactly as
``nbgrader generate_assignment`` does. Solution notebook: the markers and hidden
tests are removed (stock ``nbgrader generate_solution`` keeps both), then it is
executed in full, real training included. Both end with the self-check (a markdown cell and a
code cell calling `dlcourse.selfcheck.self_check` with the notebook's visible tests), and both
open with the badge row and the Colab setup cell, built from [tool.dlcourse] (the student repository and the ref students
install).

Nothing is written unless all of it worked: a syntax error (in the source, or in a student's cell
once the stub replaces the solution) stops the build before anything runs, and a cell that fails
while the solution runs is one line naming its source line (describe_failure). After a change that
cannot change the outputs (markdown, points, a visible test's hint, [tool.dlcourse]),
``build --keep-outputs`` (``--headers-only``, its older name) keeps the committed solution's
outputs and recomputes the self-check's: the bytes are those of a full build.
"""

from __future__ import annotations

import ast
import copy
import itertools
import json
import os
import re
import string
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions, ComputeChecksums, LockCells

from dlcourse.instructor import cells
from dlcourse.instructor.source import cell_start_lines, read_source, where_in_source
from dlcourse.instructor.cells import (CODE_STUB, GENERATED_CELLS, graded_cells, grade_id, is_generated,
                                       nbgrader_metadata, strip_markers)
from dlcourse.selfcheck import STOP_ON_ERROR_ENV, CellRun, fingerprint, tally
from dlcourse.instructor.course import Course, CourseError

# A whole solution run (real training) must fit in this; the issue budget is 5 minutes on a CPU.
SOLUTION_CELL_TIMEOUT_S = 900

# How the setup cell knows it runs in Colab: the same test as dlcourse.env.in_colab() (Colab's kernel
# imports google.colab at start and sets COLAB_RELEASE_TAG), which the cell cannot import: it installs it.
COLAB_CHECK = '"google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ'

# The first code cell of every notebook. $url, $ref and $repository come from [tool.dlcourse];
# $mirror is the line that sets the course's data mirror, when it has one.
SETUP_CELL = string.Template('''# Setup: in Google Colab this installs the course package `dlcourse`
# (version $ref of github.com/$repository) and leaves Colab's
# own torch, torchvision, numpy and matplotlib as they are. Anywhere else
# (JupyterLab, a laptop, the grader) it does nothing. Running it again is harmless.
import os
import sys
$mirror
if ''' + COLAB_CHECK + ''':
    import importlib
    import importlib.metadata as metadata
    import json
    import subprocess

    URL, REF = "$url", "$ref"

    def installed(name):
        """(version, pip's record of where it came from), or (None, {}) when not installed."""
        importlib.invalidate_caches()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            return None, {}
        return dist.version, json.loads(dist.read_text("direct_url.json") or "{}")

    before = {name: installed(name) for name in ("dlcourse", "torch", "torchvision", "numpy", "matplotlib")}
    version, origin = installed("dlcourse")
    if (origin.get("url"), origin.get("vcs_info", {}).get("requested_revision")) != (URL, REF):
        # Another version already here: pip would keep it (same name and version), so replace
        # just dlcourse; a first install brings the dependencies Colab lacks, if any.
        again = ["--force-reinstall", "--no-deps"] if version else []
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *again,
             f"dlcourse @ git+{URL}@{REF}"],
            capture_output=True, text=True,
        )
        if done.returncode != 0:
            print("\\n".join((done.stdout + done.stderr).strip().splitlines()[-15:]))
            raise RuntimeError(
                f"pip could not install dlcourse from {URL}@{REF} (its last lines are above). "
                "Check that the runtime has internet, then Runtime > Restart session and run "
                "this cell again; if it fails again, send the lines above to the course staff."
            )
        version, origin = installed("dlcourse")
    commit = origin.get("vcs_info", {}).get("commit_id", "unknown")[:12]
    print(f"dlcourse {version} from {URL}@{REF} (commit {commit})")
    changed = [name for name, old in before.items() if name in sys.modules and installed(name) != old]
    if changed:
        print(f"RESTART NEEDED: {', '.join(changed)} changed after it was imported. "
              "Runtime > Restart session, then run the notebook from the top.")''')

# Above the setup cell: Colab's runtime type is chosen first, since changing it starts a new machine.
# Only the assignments in [tool.dlcourse.gpu] ask for a GPU, each saying why; the others say they need
# none, so that students keep Colab's free GPU time for those.
GPU_NOTE = ("**In Colab:** first **Runtime > Change runtime type > T4 GPU**: {why}. (Changing it later starts a "
            "new machine and loses what has run.) ")
CPU_NOTE = ("**In Colab:** this notebook needs no GPU: keep the default CPU runtime, and save your free GPU "
            "time for the assignments that ask for one. ")
START_NOTE = ("Then **File > Save a copy in Drive**, and run the cells from the top: the first one installs "
              "the course package `dlcourse`.")


def runtime_note(course: Course, name: str) -> str:
    why = course.gpu.get(name)
    return (GPU_NOTE.format(why=why) if why else CPU_NOTE) + START_NOTE


def setup_cell_source(course: Course) -> str:
    mirror = ("\n# Data sets download from the course's mirror first (a student's own setting wins).\n"
              f"os.environ.setdefault(\"DLCOURSE_DATA_MIRROR\", {json.dumps(course.data_mirror)})\n"
              if course.data_mirror else "")
    return SETUP_CELL.substitute(url=course.git_url(), ref=course.ref, repository=course.repository, mirror=mirror)


def header_cells(course: Course, relative_path: str, name: str) -> list[NotebookNode]:
    """The badge row and the setup cell every generated notebook opens with."""
    badges = (
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"({course.colab_url(relative_path)}) "
        f"[![View on GitHub](https://img.shields.io/badge/view%20on-GitHub-181717?logo=github)]"
        f"({course.github_url(relative_path)})\n\n" + runtime_note(course, name)
    )
    badge_cell = nbformat.v4.new_markdown_cell(badges)
    badge_cell.id = "badges"
    setup_cell = nbformat.v4.new_code_cell(setup_cell_source(course))
    setup_cell.id = "colab-setup"
    return [badge_cell, setup_cell]


HEADER_IDS = ("badges", "colab-setup")

SELF_CHECK_NOTE = (
    GENERATED_CELLS["self-check-note"] + "\n\n"
    "Run this last. It lists the visible tests above: passed, failed, or not run in this session "
    "(it is not graded; the grader runs every test again, hidden ones too). Hand in only after a "
    "restart and a run of every cell from the top shows what you expect here."
)


def visible_tests(student: NotebookNode) -> tuple[dict[str, tuple[float, str]], float]:
    """What the self-check is given: test id -> (points, fingerprint of its text), and the written answers' points."""
    tests = {grade_id(c): (nbgrader_metadata(c)["points"], fingerprint(c.source)) for c in graded_cells(student, "tests")}
    return tests, sum(float(nbgrader_metadata(c)["points"]) for c in graded_cells(student, "answer"))


def self_check_cells(name: str, student: NotebookNode) -> list[NotebookNode]:
    """The closing cells of every generated notebook: the tally of the student notebook's visible tests."""
    visible, hand_graded = visible_tests(student)
    tests = "".join(f"\n    {test!r}: ({points:g}, {mark!r})," for test, (points, mark) in visible.items())
    code = (GENERATED_CELLS["self-check"] + "\n\n"
            "# test -> (points, fingerprint of its cell's text)\n"
            f"self_check({name!r}, {{{tests}\n}}, hand_graded_points={hand_graded:g})")
    note = nbformat.v4.new_markdown_cell(SELF_CHECK_NOTE)
    note.id = "self-check-note"
    cell = nbformat.v4.new_code_cell(code)
    cell.id = "self-check"
    return [note, cell]


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


def execute(nb: NotebookNode, cell_timeout: int = SOLUTION_CELL_TIMEOUT_S) -> NotebookNode:
    """Run a notebook top to bottom in a fresh kernel, in a scratch folder so it leaves no files behind."""
    metadata = copy.deepcopy(nb.metadata)
    with tempfile.TemporaryDirectory(prefix="dlcourse-build-") as workdir:
        client = NotebookClient(
            nb,
            timeout=cell_timeout,
            kernel_name="python3",
            record_timing=False,  # timestamps would make every build differ
            resources={"metadata": {"path": workdir}},
        )
        # Text progress bars would fill the solution notebook with carriage returns. A cell that
        # raises stops the build (students' Run All goes on past it: dlcourse.selfcheck).
        client.execute(env={**os.environ, "DLCOURSE_PROGRESS": "0", STOP_ON_ERROR_ENV: "1"})
    # The kernel writes its own language_info (Python patch version...): keep ours, so
    # the notebook's cells and metadata do not depend on the machine that built it.
    nb.metadata = metadata
    strip_widgets(nb)
    return nb


WIDGET_MIME = ("application/vnd.jupyter.widget-view+json", "application/vnd.jupyter.widget-state+json")


def strip_widgets(nb: NotebookNode) -> NotebookNode:
    """Drop widget outputs (a tqdm.auto bar's frozen "0/1500") and saved widget state: a reader
    sees the build's widget as a stale snapshot, never the live one."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not any(m in o.get("data", {}) for m in WIDGET_MIME)]
        cell.metadata.pop("widgets", None)
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


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


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


def printed_digest(solution: NotebookNode, skip: set[str] = frozenset(), most: int = 12,
                   labels: dict[str, str] | None = None) -> list[str]:
    """The last printed line of each code cell that printed (training results, accuracies), the last
    `most` of them, but for the generated cells and those in `skip` (the tests, whose lines only confirm):
    what an author reads after a build to see that the run went as the text says."""
    lines = []
    for cell in solution.cells:
        if cell.cell_type != "code" or is_generated(cell) or cell.get("id") in skip:
            continue
        text = "".join(o.get("text", "") for o in cell.get("outputs", [])
                       if o.get("output_type") == "stream" and o.get("name") == "stdout")
        printed = [line.strip() for line in ANSI.sub("", text).replace("\r", "\n").splitlines() if line.strip()]
        if printed:
            lines.append(f"{(labels or {}).get(cell.get('id'), cell.get('id'))}: {printed[-1][:150]}")
    return lines[-most:]


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


def _code_without_hints(code: str) -> str:
    """A test cell's code with what only a failure shows taken out (assert messages, hint= arguments
    given as text): two cells equal here behave the same when their tests pass."""
    try:
        tree = ast.parse(code)
    except SyntaxError:  # IPython syntax: compare as written
        return code
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert) and isinstance(node.msg, (ast.Constant, ast.JoinedStr)):
            node.msg = None
        elif isinstance(node, ast.Call):
            node.keywords = [k for k in node.keywords
                             if not (k.arg == "hint" and isinstance(k.value, (ast.Constant, ast.JoinedStr)))]
    return ast.dump(tree)


def with_committed_outputs(course: Course, name: str, solution: NotebookNode, source: NotebookNode,
                           student: NotebookNode) -> NotebookNode:
    """The unexecuted solution with the outputs of the committed one, when none of them can differ:
    every code cell the same, in the same order, but for the header cells and the self-check (whose
    output is computed here) and for the hints of visible tests (shown only when a test fails, and
    every visible test passed in the committed run). Markdown may change freely."""
    path = course.solution_path(name)
    relative = path.relative_to(course.root)
    rerun = f"run `dlcourse build {name}` (without --keep-outputs) to run the solution again"
    if not path.exists():
        raise CourseError(f"{relative} does not exist: {rerun}")
    committed = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
    tests = {cells.grade_id(c) for c in cells.graded_cells(source, "tests")}

    def body(nb: NotebookNode) -> list[NotebookNode]:
        return [c for c in nb.cells if c.cell_type == "code" and not is_generated(c)]

    old_cells, new_cells = body(committed), body(solution)
    if any(not c.execution_count for c in old_cells):
        raise CourseError(f"{relative} was never executed (built with --no-execute): {rerun}")
    for old, new in itertools.zip_longest(old_cells, new_cells):
        if old is None or new is None:
            raise CourseError(f"{relative}: the source has {len(new_cells)} code cells, the executed solution "
                              f"{len(old_cells)}: {rerun}")
        same = (old.source == new.source or
                (new.get("id") in tests and _code_without_hints(old.source) == _code_without_hints(new.source)))
        if not same:
            index = [c.get("id") for c in source.cells].index(new.id) if new.get("id") in [
                c.get("id") for c in source.cells] else None
            where = (where_in_source(course.source_path(name), source, index, None) if index is not None
                     else f"cell {new.get('id')!r}")
            raise CourseError(f"{where}: its code changed since the solution ran (only markdown, points and "
                              f"the hints of visible tests may): {rerun}")
        new.outputs, new.execution_count = old.outputs, old.execution_count
    by_id = {c.get("id"): c for c in committed.cells}
    for cell in solution.cells:
        if cell.cell_type == "code" and cell.get("id") in HEADER_IDS and by_id.get(cell.id) is not None:
            old = by_id[cell.id]
            cell.outputs, cell.execution_count = old.get("outputs", []), old.get("execution_count")
    _recompute_self_check(solution, committed, name, student, relative, rerun)
    return solution


def _recompute_self_check(solution, committed, name, student, relative, rerun) -> None:
    """The self-check cell's output with the new points and fingerprints, each visible test passed or
    not run as the committed run's self-check shows it (a build stops at a failed one)."""
    old = next((c for c in committed.cells if c.get("id") == "self-check"), None)
    new = next(c for c in solution.cells if c.get("id") == "self-check")
    printed = "".join(o.get("text", "") for o in (old.outputs if old is not None else []))
    visible, hand_graded = visible_tests(student)
    status = {}
    for line in printed.splitlines():
        words = line.split()
        if words and words[0] in visible:
            status[words[0]] = " ".join(words[2:])
    if old is None or any(status.get(test) not in ("passed", "not run") for test in visible):
        raise CourseError(f"{relative}: its self-check does not show how each visible test ran: {rerun}")
    runs = {mark: CellRun(None) for test, (_, mark) in visible.items() if status[test] == "passed"}
    new.outputs = [nbformat.v4.new_output("stream", name="stdout",
                                          text="\n".join(tally(name, visible, runs, hand_graded)) + "\n")]
    new.execution_count = old.execution_count


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
