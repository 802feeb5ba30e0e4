"""Grade one notebook: restore the instructor's graded cells into the submission (`restore`),
run it top to bottom in a fresh, confined kernel process, and score every graded cell.
Runs in the grader process (the `dlcourse grade` / `dlcourse check` process, or a Dask worker).

This is the one grading path: `dlcourse check` (solutions, blanks, mutants) and
`dlcourse grade` (students) both go through `grade_notebook`. Scoring follows
nbgrader's rules for autograder tests (full points when the cell ran to the end,
zero otherwise) with one deliberate difference: a test passes or fails on the
verdict the guarded test runner sends (did the test raise?), never on what the
cell printed, so stderr output, warnings and progress bars cannot cost points.

Each submission runs in its own kernel process forked from a warm template
(``template``) that has already imported torch: no two submissions share a process,
and none pays the seconds of Python start-up and imports. The kernel is confined as
``policy`` says (namespaces, hidden folders, its own uid, rlimits) and talks to this
module with the messages of ``protocol`` (JSON only: the other end runs student code).
"""

from __future__ import annotations

import enum
import os
import secrets
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from dlcourse.instructor.cells import nbgrader_metadata, role, score_columns
from dlcourse.instructor.grading import policy, settings
from dlcourse.instructor.grading.autotests import expand_autotests, has_autotests
from dlcourse.instructor.grading.protocol import MAX_MESSAGE, STOP, CellReply, Hello, RunCell
from dlcourse.instructor.grading.restore import MISSING_ANSWER_KEY, restore, unchanged_answers
from dlcourse.instructor.grading.template import Template, given_or_own


class Status(str, enum.Enum):
    """How grading one notebook ended, best first: when a run hits several problems, the worst wins."""

    GRADED = "graded"
    OUT_OF_MEMORY = "out of memory"
    TIMED_OUT = "timed out"
    CRASHED = "crashed"
    INVALID = "invalid notebook"

    def __str__(self) -> str:
        return self.value

    def worse(self, other: str) -> Status:
        other = Status(other)
        order = list(Status)
        return other if order.index(other) > order.index(self) else self


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
    status: Status
    cells: list[CellScore] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    message: str = ""
    seconds: float = 0.0
    kernel_seconds: float = 0.0
    cell_seconds: float = 0.0  # time the kernel spent executing cells (the rest is overhead)
    isolation: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.status = Status(self.status)  # also from JSON (a Dask worker's result)

    @property
    def score(self) -> float:
        return sum(c.points or 0.0 for c in self.cells if c.kind == "tests")

    @property
    def max_score(self) -> float:
        return sum(c.max_points for c in self.cells if c.kind == "tests")

    @property
    def manual_max_score(self) -> float:
        return sum(c.max_points for c in self.cells if c.kind == "answer")


# -- the kernel processes --------------------------------------------------------------------

# -- one notebook ---------------------------------------------------------------------------


def grade_notebook(
    submission: NotebookNode,
    source: NotebookNode,
    *,
    cell_timeout: float = settings.CELL_TIMEOUT_S,
    timeout: float = settings.TIMEOUT_S,
    workdir: Path | None = None,
    env: dict | None = None,
    memory_mb: int | None = settings.MEMORY_MB,
    output_limit: int = settings.OUTPUT_LIMIT,
    files: dict[str, Path] | None = None,
    isolate: bool = True,
    hide: list[str] | None = None,
    threads: int | None = None,
    notebook_name: str = "submission.ipynb",
    interrupt_grace: float = settings.INTERRUPT_GRACE_S,
    template: Template | None = None,
    native_code: bool = False,
    stop_at_first_failure: bool = False,
    autotests: tuple[Path | None, ...] = (),
) -> tuple[GradeResult, NotebookNode]:
    """Grade one submission against the source notebook; returns the result and the executed notebook.

    `files` are copied into the working copy next to the notebook (the student's other files, the
    assignment's public files). `workdir`, when given, must be an empty folder the caller owns.
    `template` is the running template process to fork the kernel from; a caller grading many
    notebooks passes one (``with Template() as template``), a single call without it starts and
    closes its own (seconds of imports). `native_code` lets the notebook load native code of its own
    (cffi, a shared object it wrote): only for a course that needs it (docs/grading.md, "Its own memory").
    `stop_at_first_failure`: stop after the first test cell that fails (later cells "did not run"); for
    `dlcourse check`, which only asks whether a known-wrong notebook loses points.
    `autotests`: where to look for the ``autotests.yml`` that nbgrader's ``### AUTOTEST`` lines in the
    source's tests stand for (the assignment's source folder, then the course root); they are expanded as
    ``nbgrader generate_assignment`` expands them (`autotests`), once per process. A source with such lines
    and no file raises `AutotestError`: graded as they stand they are comments, and a blank notebook passes.
    """
    started = time.perf_counter()
    if has_autotests(source):
        source = expand_autotests(source, *autotests)
    nb, flags = restore(submission, source)
    unchanged = unchanged_answers(nb, source)
    ensure_ids(nb)
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            cell.outputs = []
            cell.execution_count = None
    scores = {column.grade_id: CellScore(*column) for column in score_columns(source)}
    result = GradeResult(status=Status.GRADED, flags=flags)
    verdicts: dict[int, str] = {}
    partial: dict[int, float] = {}  # cell index -> the points a test's last value gave
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
    pid = uid = None
    kernel_started = time.perf_counter()
    try:
        with given_or_own(template) as template:
            uid = template.next_uid() if os.geteuid() == 0 and isolate else None
            config = policy.kernel_config(folder, uid=uid, isolate=isolate, hide=hide, env=env, memory_mb=memory_mb,
                                          output_limit=output_limit, threads=threads, native_code=native_code)
            pid, conn, hello = _start_kernel(template, config)
            with conn:
                result.isolation = hello.isolation
                result.flags += [f"isolation: {e}" for e in result.isolation.get("errors", [])]
                if _run_cells(nb, conn, pid, result, verdicts, cell_timeout, started + timeout, timeout,
                              interrupt_grace, stop_at_first_failure, partial):  # every request had its one reply: anything more is unasked for
                    _nothing_pending_after_the_last_cell(conn, verdicts, result)
                try:
                    conn.send_bytes(STOP)
                except OSError:
                    pass
                policy.kill(pid, uid)  # before a template of our own closes
                pid = None
    except (EOFError, OSError, RuntimeError, ValueError) as error:
        result.status = result.status.worse(Status.CRASHED)
        result.message = result.message or f"the kernel could not run: {error}"
    finally:
        if pid is not None:
            policy.kill(pid, uid)
        if owned:
            shutil.rmtree(folder, ignore_errors=True)
    result.kernel_seconds = time.perf_counter() - kernel_started

    for index, cell in enumerate(nb.cells):
        grade_id = nbgrader_metadata(cell).get("grade_id")
        score = scores.get(grade_id)
        if score is None:
            continue
        if score.kind == "answer":
            score.ran = True  # graded by hand in the formgrader; a missing answer starts at 0
            if cell.metadata.get(MISSING_ANSWER_KEY):
                score.points, score.error = 0.0, f"written answer {grade_id} missing"
            elif grade_id in unchanged:  # nbgrader scores it 0 too (its checksum is the released cell's)
                score.points, score.error = 0.0, f"No response: answer {grade_id} is as it was handed out"
            continue
        verdict = verdicts.get(index)
        score.ran = verdict is not None
        score.points = score.max_points if verdict == "ok" else 0.0
        if verdict == "ok" and index in partial:  # the number the test ended with, within 0..points
            score.points = min(max(partial[index], 0.0), score.max_points)
        if verdict == VOIDED:
            score.error = "voided: the kernel sent a reply the grader did not ask for, so no verdict of it counts"
        elif verdict == "error":
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            score.error = (
                f"{errors[-1].get('ename')}: {errors[-1].get('evalue')}" if errors else "the cell raised"
            )
        elif verdict is None:
            score.error = "did not run"
    result.cells = list(scores.values())
    result.seconds = time.perf_counter() - started
    return result, nb


VOIDED = "voided"  # a verdict that code in the kernel could have forged


def _void(verdicts: dict, result: GradeResult, what: str) -> None:
    """A reply the grader did not ask for: student code wrote on the kernel's socket, so any verdict
    received since student code first ran could be its forgery. None of them counts; the notebook stops."""
    for index in verdicts:
        verdicts[index] = VOIDED
    result.flags.append(f"tampering suspected: {what}; every verdict of this notebook voided")
    result.status = result.status.worse(Status.CRASHED)
    result.message = "the kernel's replies were tampered with: no test counts and later cells did not run"


def _nothing_pending_after_the_last_cell(conn: Connection, verdicts: dict, result: GradeResult,
                                         wait: float = settings.STOP_WAIT_S) -> None:
    """One more request, an empty cell, whose reply must be the next message. A reply queued before it
    is one nobody asked for: typically the real reply to the last cell, after a forged one the grader
    took for it (the runner sends a cell's reply before it reads the next request, so it cannot be late)."""
    nonce = secrets.token_hex(16)
    try:
        conn.send_bytes(RunCell(index=-1, kind="code", grade_id=None, source="", nonce=nonce,
                                instructor=True).encode())
        if not conn.poll(wait):
            return  # a kernel too busy to answer an empty cell: nothing is concluded from silence
        reply = CellReply.parse(conn.recv_bytes(MAX_MESSAGE))
    except (EOFError, OSError, ValueError):
        return
    if reply is None or reply.nonce != nonce or reply.index != -1:
        _void(verdicts, result, "a reply after the last cell")


def _start_kernel(template: Template, config, attempts: int = 2) -> tuple[int, Connection, Hello]:
    """A confined kernel that said hello: (pid, connection, hello). A kernel or template that fails to
    start (before any student code ran) is retried once."""
    for attempt in range(attempts):
        pid = None
        try:
            pid, conn = template.spawn(config)
            if not conn.poll(settings.KERNEL_START_S):
                conn.close()
                raise EOFError(f"the kernel did not start within {settings.KERNEL_START_S:g} s")
            return pid, conn, Hello.parse(conn.recv_bytes(MAX_MESSAGE))
        except (EOFError, OSError, RuntimeError, ValueError):
            if pid is not None:
                policy.kill(pid, config.uid)
            if attempt == attempts - 1:
                raise
            time.sleep(1)  # (a dead template is restarted by spawn; live kernels keep theirs)


def _run_cells(nb, conn: Connection, pid: int, result: GradeResult, verdicts: dict, cell_timeout: float,
               deadline: float, timeout: float, interrupt_grace: float = settings.INTERRUPT_GRACE_S,
               stop_at_first_failure: bool = False, partial: dict | None = None) -> bool:
    """Send the code cells one by one; a cell over its time is interrupted, a stuck one killed. True when
    every request sent got its one reply (False: a cell left running, a dead kernel, a voided notebook)."""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            result.status = result.status.worse(Status.TIMED_OUT)
            result.message = f"stopped after {timeout:g} s (the notebook's time limit); later cells did not run"
            return True
        grade_id = nbgrader_metadata(cell).get("grade_id")
        kind = "test" if role(cell) == "tests" else "code"
        nonce = secrets.token_hex(16)
        conn.send_bytes(RunCell(index=index, kind=kind, grade_id=grade_id, source=cell.source, nonce=nonce,
                                instructor=not nbgrader_metadata(cell).get("solution")).encode())
        wait = min(cell_timeout, remaining)
        interrupted = False
        if not conn.poll(wait):
            interrupted = True
            try:
                os.kill(pid, signal.SIGINT)
            except OSError:
                pass
            if not conn.poll(interrupt_grace):
                result.status = result.status.worse(Status.TIMED_OUT)
                limit = "cell" if wait == cell_timeout else "notebook"
                result.message = (f"cell {index} ran past the {limit} time limit ({wait:g} s) and could not be "
                                  "interrupted; later cells did not run")
                cell.outputs = [nbformat.v4.new_output("error", ename="TimeoutError", evalue=result.message,
                                                       traceback=[result.message])]
                return False
        try:
            reply = CellReply.parse(conn.recv_bytes(MAX_MESSAGE))
        except (EOFError, OSError) as error:
            result.status = result.status.worse(Status.CRASHED)
            result.message = (f"the kernel died while running cell {index} "
                              f"(it exited, was killed, or ran out of memory: {error or 'no reply'}); "
                              "later cells did not run")
            return False
        if reply is None or reply.nonce != nonce or reply.index != index:
            _void(verdicts, result, f"a forged or out-of-order reply for cell {index}")
            return False
        outputs = [nbformat.from_dict(o) for o in reply.outputs]
        cell.outputs = outputs
        cell.execution_count = reply.execution_count
        result.cell_seconds += reply.seconds
        verdicts[index] = reply.status
        if reply.score is not None and kind == "test" and partial is not None:
            partial[index] = float(reply.score)
        result.flags += reply.flags
        if interrupted:
            result.status = result.status.worse(Status.TIMED_OUT)
            result.message = f"cell {index} ran past the time limit ({wait:g} s) and was interrupted"
            verdicts[index] = "error"
        if any(o.get("ename") == "MemoryError" for o in outputs if o.get("output_type") == "error"):
            result.status = result.status.worse(Status.OUT_OF_MEMORY)
            result.message = result.message or f"cell {index} hit the memory limit (MemoryError)"
        if stop_at_first_failure and kind == "test" and verdicts[index] != "ok":
            result.message = result.message or f"stopped at the first failing test (cell {index})"
            return True
    return True


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
