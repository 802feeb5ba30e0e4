"""Grade one notebook: restore the instructor's test cells into the submission,
run it top to bottom in a fresh, confined kernel process, and score every graded cell.

This is the one grading path: `dlcourse check` (solutions, blanks, mutants) and
`dlcourse grade` (students) both go through `grade_notebook`. Scoring follows
nbgrader's rules for autograder tests (full points when the cell ran to the end,
zero otherwise) with one deliberate difference: a test passes or fails on the
verdict the guarded test runner sends (did the test raise?), never on what the
cell printed, so stderr output, warnings and progress bars cannot cost points.

Each submission runs in its own process forked from a warm template (``zygote``)
that has already imported torch: no two submissions share a process, and none
pays the seconds of Python start-up and imports. The process is confined by
``sandbox`` (namespaces, hidden folders, its own uid, rlimits) and talks to this
module over a socket with JSON messages only (never pickle: the other end runs
student code).
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from dlcourse.cells import graded_cells, nbgrader_metadata, role, score_columns, strip_markers
from dlcourse.grading.zygote import Zygote, zygote  # noqa: F401 (re-exported)

STATUS_GRADED = "graded"
STATUS_TIMED_OUT = "timed out"
STATUS_CRASHED = "crashed"
STATUS_INVALID = "invalid notebook"


@dataclass
class CellScore:
    grade_id: str
    kind: str  # "tests" (autograded) or "answer" (graded by hand)
    max_points: float
    points: float | None = None  # None: waits for a human
    ran: bool = False
    error: str | None = None


@dataclass
class GradeResult:
    status: str
    cells: list[CellScore] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    message: str = ""
    seconds: float = 0.0
    kernel_seconds: float = 0.0
    cell_seconds: float = 0.0  # time the kernel spent executing cells (the rest is overhead)
    isolation: dict = field(default_factory=dict)

    @property
    def score(self) -> float:
        return sum(c.points or 0.0 for c in self.cells if c.kind == "tests")

    @property
    def max_score(self) -> float:
        return sum(c.max_points for c in self.cells if c.kind == "tests")

    @property
    def manual_max_score(self) -> float:
        return sum(c.max_points for c in self.cells if c.kind == "answer")


def _normalized(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def restore_tests(submission: NotebookNode, source: NotebookNode) -> tuple[NotebookNode, list[str]]:
    """The submission with every test cell taken from the instructor's source.

    Test cells are found by grade id, or by content when an editor stripped the
    metadata; a deleted test cell is put back after the cell that preceded it in
    the source, a duplicated one is kept once. Returns the notebook and flags
    describing what had to be repaired.
    """
    nb = copy.deepcopy(submission)
    flags: list[str] = []
    source_tests = {c.metadata.nbgrader["grade_id"]: c for c in graded_cells(source, "tests")}
    visible = {gid: _normalized(strip_markers(c.source, keep_hidden=False)) for gid, c in source_tests.items()}
    placed: set[str] = set()
    cells: list[NotebookNode] = []
    for cell in nb.cells:
        grade_id = nbgrader_metadata(cell).get("grade_id")
        if grade_id not in source_tests and cell.get("cell_type") == "code":
            # metadata stripped or rewritten: recognise the test by its visible text
            text = _normalized(cell.get("source", ""))
            grade_id = next((gid for gid, v in visible.items() if v and v == text), grade_id)
            if grade_id in source_tests and grade_id not in placed:
                flags.append(f"test cell {grade_id} recognised by content")
        if grade_id in source_tests:
            if grade_id in placed:
                flags.append(f"duplicate of test cell {grade_id} dropped")
                continue
            placed.add(grade_id)
            cells.append(copy.deepcopy(source_tests[grade_id]))
            continue
        if role(cell) == "tests":
            flags.append(f"unknown test cell {nbgrader_metadata(cell).get('grade_id')!r} ignored")
            cell.metadata.pop("nbgrader", None)
        cells.append(cell)
    # Put back deleted test cells after the cell that precedes them in the source.
    order = [c.get("id") for c in source.cells]
    for grade_id, test in source_tests.items():
        if grade_id in placed:
            continue
        flags.append(f"missing test cell {grade_id} restored")
        previous_ids = set(order[: order.index(test.id)])
        previous_ids |= {nbgrader_metadata(c).get("grade_id") for c in source.cells[: order.index(test.id)]}
        position = len(cells)
        for index, cell in enumerate(cells):
            if cell.get("id") in previous_ids or nbgrader_metadata(cell).get("grade_id") in previous_ids:
                position = index + 1
        cells.insert(position, copy.deepcopy(test))
        placed.add(grade_id)
    # A test moved above the solution it tests goes back below it.
    for grade_id, test in source_tests.items():
        before = source.cells[: order.index(test.id)]
        solutions = [nbgrader_metadata(c).get("grade_id") for c in before if nbgrader_metadata(c).get("solution")]
        if not solutions:
            continue
        anchor = solutions[-1]
        where = {(nbgrader_metadata(c).get("grade_id")): i for i, c in enumerate(cells) if nbgrader_metadata(c).get("grade_id")}
        if anchor in where and where[grade_id] < where[anchor]:
            moved = cells.pop(where[grade_id])
            cells.insert(where[anchor], moved)  # the anchor shifted up by one
            flags.append(f"test cell {grade_id} moved back below {anchor}")
    nb.cells = cells
    return nb, flags


# -- the kernel processes --------------------------------------------------------------------

STATUS_OUT_OF_MEMORY = "out of memory"
# The worse of two statuses wins when a run hits several problems.
STATUS_ORDER = [STATUS_GRADED, STATUS_OUT_OF_MEMORY, STATUS_TIMED_OUT, STATUS_CRASHED, STATUS_INVALID]
INTERRUPT_GRACE_S = 5.0
MAX_REPLY = 16 * 2**20


def worse(a: str, b: str) -> str:
    return max(a, b, key=lambda s: STATUS_ORDER.index(s) if s in STATUS_ORDER else 0)


def default_hide() -> list[str]:
    """Folders a kernel must not see: homes, and the folder holding the course repository."""
    hide = ["/root", "/home", "/srv", "/mnt", "/media", "/var/log", "/var/mail"]
    try:
        from dlcourse.course import find_root

        root = find_root()
        hide += [str(root.parent if root.parent != root.parent.parent else root)]
    except Exception:
        pass
    import dlcourse

    repo = Path(dlcourse.__file__).resolve().parents[2]
    hide.append(str(repo.parent if repo.parent != repo.parent.parent else repo))
    return hide


def default_expose() -> list[str]:
    """What stays readable under the hidden folders: Python, installed packages, the public package and data."""
    import site

    import dlcourse

    package = Path(dlcourse.__file__).resolve().parent
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(package.parent), str(package.parents[1] / "data")}
    try:
        paths.update(site.getsitepackages())
    except AttributeError:
        pass
    for entry in sys.path:  # editable installs and .pth folders
        if entry and "site-packages" in entry:
            paths.add(entry)
    return sorted(str(Path(p).resolve()) for p in paths if p and Path(p).exists())


def kernel_env(extra: dict | None, workdir: str) -> dict:
    keep = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES",
            "CUDA_HOME", "LD_LIBRARY_PATH", "DLCOURSE_DEVICE", "DLCOURSE_DATA", "DLCOURSE_OFFLINE", "PYTHONHASHSEED")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(HOME=workdir, TMPDIR="/tmp", MPLBACKEND="module://matplotlib_inline.backend_inline",
               MPLCONFIGDIR="/tmp/.matplotlib", XDG_CACHE_HOME="/tmp/.cache", IPYTHONDIR="/tmp/.ipython",
               PYTHONUNBUFFERED="1")
    env.update(extra or {})
    env["NBGRADER_EXECUTION"] = "autograde"
    return env


def _kill(pid: int, uid: int | None) -> None:
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            target()
        except OSError:
            pass
    if uid is not None and os.geteuid() == 0:
        from dlcourse.grading.sandbox import kill_uid

        kill_uid(uid)


# -- one notebook ---------------------------------------------------------------------------


def grade_notebook(
    submission: NotebookNode,
    source: NotebookNode,
    *,
    cell_timeout: float = 120,
    timeout: float = 600,
    workdir: Path | None = None,
    env: dict | None = None,
    memory_mb: int | None = 4096,
    output_limit: int = 2 * 2**20,
    files: dict[str, Path] | None = None,
    isolate: bool = True,
    hide: list[str] | None = None,
    threads: int | None = None,
    notebook_name: str = "submission.ipynb",
    interrupt_grace: float = INTERRUPT_GRACE_S,
) -> tuple[GradeResult, NotebookNode]:
    """Grade one submission against the source notebook; returns the result and the executed notebook.

    `files` are copied into the working copy next to the notebook (the student's other files, the
    assignment's public files). `workdir`, when given, must be an empty folder the caller owns.
    """
    started = time.perf_counter()
    nb, flags = restore_tests(submission, source)
    ensure_ids(nb)
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            cell.outputs = []
            cell.execution_count = None
    scores = {column.grade_id: CellScore(*column) for column in score_columns(source)}
    result = GradeResult(status=STATUS_GRADED, flags=flags)
    verdicts: dict[int, str] = {}
    owned = workdir is None
    folder = Path(workdir or tempfile.mkdtemp(prefix="dlcourse-grade-"))
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    for name, path in (files or {}).items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    # The student's own notebook as handed in: never the restored one, which holds hidden tests.
    nbformat.write(submission, str(folder / notebook_name))
    template = zygote()
    uid = template.next_uid() if os.geteuid() == 0 and isolate else None
    config = {
        "workdir": str(folder.resolve()), "uid": uid, "isolate": isolate,
        "hide": hide if hide is not None else default_hide(), "expose": default_expose(),
        "memory_mb": memory_mb, "output_limit": output_limit, "threads": threads,
        "env": kernel_env(env, str(folder.resolve())),
    }
    pid = None
    kernel_started = time.perf_counter()
    try:
        pid, conn, hello = _start_kernel(template, config)
        with conn:
            result.isolation = hello.get("isolation", {})
            result.flags += [f"isolation: {e}" for e in result.isolation.get("errors", [])]
            _run_cells(nb, conn, pid, result, verdicts, cell_timeout, started + timeout, timeout, interrupt_grace)
            try:
                conn.send_bytes(json.dumps({"op": "stop"}).encode())
            except OSError:
                pass
    except (EOFError, OSError, RuntimeError, ValueError) as error:
        result.status = worse(result.status, STATUS_CRASHED)
        result.message = result.message or f"the kernel could not run: {error}"
    finally:
        if pid is not None:
            _kill(pid, uid)
        if owned:
            shutil.rmtree(folder, ignore_errors=True)
    result.kernel_seconds = time.perf_counter() - kernel_started

    for index, cell in enumerate(nb.cells):
        grade_id = nbgrader_metadata(cell).get("grade_id")
        score = scores.get(grade_id)
        if score is None:
            continue
        if score.kind == "answer":
            score.ran = True
            continue  # graded by hand in the formgrader
        verdict = verdicts.get(index)
        score.ran = verdict is not None
        score.points = score.max_points if verdict == "ok" else 0.0
        if verdict == "error":
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            score.error = (
                f"{errors[-1].get('ename')}: {errors[-1].get('evalue')}" if errors else "the cell raised"
            )
        elif verdict is None:
            score.error = "did not run"
    result.cells = list(scores.values())
    result.seconds = time.perf_counter() - started
    return result, nb


def _start_kernel(template, config: dict, attempts: int = 2):
    """A confined kernel that said hello: (pid, connection, hello). A kernel or template that fails to
    start (before any student code ran) is retried once."""
    for attempt in range(attempts):
        pid = None
        try:
            pid, conn = template.spawn(config)
            if not conn.poll(120):
                conn.close()
                raise EOFError("the kernel did not start within 120 s")
            return pid, conn, json.loads(conn.recv_bytes(MAX_REPLY))
        except (EOFError, OSError, RuntimeError, ValueError):
            if pid is not None:
                _kill(pid, config.get("uid"))
            if attempt == attempts - 1:
                raise
            time.sleep(1)  # (a dead template is restarted by spawn; live kernels keep theirs)


def _run_cells(nb, conn: Connection, pid: int, result: GradeResult, verdicts: dict, cell_timeout: float,
               deadline: float, timeout: float, interrupt_grace: float = INTERRUPT_GRACE_S) -> None:
    """Send the code cells one by one; a cell over its time is interrupted, a stuck one killed."""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            result.status = worse(result.status, STATUS_TIMED_OUT)
            result.message = f"stopped after {timeout:g} s (the notebook's time limit); later cells did not run"
            return
        grade_id = nbgrader_metadata(cell).get("grade_id")
        kind = "test" if role(cell) == "tests" else "code"
        nonce = secrets.token_hex(16)
        conn.send_bytes(json.dumps({"op": "run", "index": index, "kind": kind, "grade_id": grade_id,
                                    "source": cell.source, "nonce": nonce,
                                    "instructor": not nbgrader_metadata(cell).get("solution")}).encode())
        wait = min(cell_timeout, remaining)
        interrupted = False
        if not conn.poll(wait):
            interrupted = True
            try:
                os.kill(pid, signal.SIGINT)
            except OSError:
                pass
            if not conn.poll(interrupt_grace):
                result.status = worse(result.status, STATUS_TIMED_OUT)
                limit = "cell" if wait == cell_timeout else "notebook"
                result.message = (f"cell {index} ran past the {limit} time limit ({wait:g} s) and could not be "
                                  "interrupted; later cells did not run")
                cell.outputs = [nbformat.v4.new_output("error", ename="TimeoutError", evalue=result.message,
                                                       traceback=[result.message])]
                return
        try:
            reply = json.loads(conn.recv_bytes(MAX_REPLY))
        except (EOFError, OSError) as error:
            result.status = worse(result.status, STATUS_CRASHED)
            result.message = (f"the kernel died while running cell {index} "
                              f"(it exited, was killed, or ran out of memory: {error or 'no reply'}); "
                              "later cells did not run")
            return
        if not isinstance(reply, dict) or reply.get("nonce") != nonce or reply.get("index") != index:
            result.flags.append(f"tampering suspected: a forged or out-of-order reply for cell {index}")
            result.status = worse(result.status, STATUS_CRASHED)
            result.message = "the kernel's replies were tampered with; later cells did not run"
            return
        outputs = [nbformat.from_dict(o) for o in reply.get("outputs", []) if _valid_output(o)]
        cell.outputs = outputs
        cell.execution_count = reply.get("execution_count")
        try:
            result.cell_seconds += float(reply.get("seconds", 0.0))
        except (TypeError, ValueError):
            pass
        verdicts[index] = "ok" if reply.get("status") == "ok" else "error"
        result.flags += [str(f) for f in reply.get("flags", [])]
        if interrupted:
            result.status = worse(result.status, STATUS_TIMED_OUT)
            result.message = f"cell {index} ran past the time limit ({wait:g} s) and was interrupted"
            verdicts[index] = "error"
        if any(o.get("ename") == "MemoryError" for o in outputs if o.get("output_type") == "error"):
            result.status = worse(result.status, STATUS_OUT_OF_MEMORY)
            result.message = result.message or f"cell {index} hit the memory limit (MemoryError)"


_OUTPUT_FIELDS = {
    "stream": {"name": str, "text": str},
    "display_data": {"data": dict, "metadata": dict},
    "execute_result": {"data": dict, "metadata": dict},
    "error": {"ename": str, "evalue": str, "traceback": list},
}


def _valid_output(output) -> bool:
    """An output the kernel sent has the shape nbformat requires (it comes from untrusted code)."""
    if not isinstance(output, dict) or output.get("output_type") not in _OUTPUT_FIELDS:
        return False
    fields = _OUTPUT_FIELDS[output["output_type"]]
    if not all(isinstance(output.get(k), t) for k, t in fields.items()):
        return False
    if output["output_type"] == "stream" and output["name"] not in ("stdout", "stderr"):
        return False
    if output["output_type"] == "execute_result" and not isinstance(output.get("execution_count"), (int, type(None))):
        return False
    extra = set(output) - set(fields) - {"output_type", "execution_count"}
    return not extra


def ensure_ids(nb: NotebookNode) -> None:
    """Every cell gets a unique, valid id (editors drop or duplicate them)."""
    import re

    seen: set[str] = set()
    for index, cell in enumerate(nb.cells):
        cell_id = cell.get("id")
        if not isinstance(cell_id, str) or not re.fullmatch(r"[a-zA-Z0-9-_]{1,64}", cell_id) or cell_id in seen:
            cell_id = f"cell-{index}-{secrets.token_hex(4)}"
            cell["id"] = cell_id
        seen.add(cell_id)
    nb.nbformat, nb.nbformat_minor = 4, max(5, nb.get("nbformat_minor", 5))


def read_notebook(path: Path) -> NotebookNode:
    return nbformat.read(str(path), as_version=4)
