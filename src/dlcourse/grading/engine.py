"""Grade one notebook: restore the instructor's test cells into the submission,
run it top to bottom in a fresh kernel, and score every graded cell.

This is the one grading path: `dlcourse check` (solutions, blanks, mutants) and
`dlcourse grade` (students) both go through `grade_notebook`. Scoring follows
nbgrader's rules for autograder tests (full points when the cell ran to the end,
zero otherwise) with one deliberate difference: a test passes or fails on the
kernel's own execute reply, never on what the cell printed, so stderr output,
warnings and progress bars cannot cost points.
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode

from dlcourse.authoring.source import strip_markers

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

    @property
    def score(self) -> float:
        return sum(c.points or 0.0 for c in self.cells if c.kind == "tests")

    @property
    def max_score(self) -> float:
        return sum(c.max_points for c in self.cells if c.kind == "tests")

    @property
    def manual_max_score(self) -> float:
        return sum(c.max_points for c in self.cells if c.kind == "answer")


def _nbgrader(cell: NotebookNode) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _is_test(cell: NotebookNode) -> bool:
    meta = _nbgrader(cell)
    return bool(meta.get("grade")) and not meta.get("solution")


def _is_answer(cell: NotebookNode) -> bool:
    meta = _nbgrader(cell)
    return bool(meta.get("grade")) and bool(meta.get("solution"))


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
    source_tests = {c.metadata.nbgrader["grade_id"]: c for c in source.cells if _is_test(c)}
    visible = {gid: _normalized(strip_markers(c.source, keep_hidden=False)) for gid, c in source_tests.items()}
    placed: set[str] = set()
    cells: list[NotebookNode] = []
    for cell in nb.cells:
        grade_id = _nbgrader(cell).get("grade_id")
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
        if _is_test(cell):
            flags.append(f"unknown test cell {_nbgrader(cell).get('grade_id')!r} ignored")
            cell.metadata.pop("nbgrader", None)
        cells.append(cell)
    # Put back deleted test cells after the cell that precedes them in the source.
    order = [c.id for c in source.cells]
    for grade_id, test in source_tests.items():
        if grade_id in placed:
            continue
        flags.append(f"missing test cell {grade_id} restored")
        previous_ids = order[: order.index(test.id)]
        position = len(cells)
        for index, cell in enumerate(cells):
            if cell.get("id") in previous_ids or _nbgrader(cell).get("grade_id") in previous_ids:
                position = index + 1
        cells.insert(position, copy.deepcopy(test))
        placed.add(grade_id)
    nb.cells = cells
    return nb, flags


def grade_notebook(
    submission: NotebookNode,
    source: NotebookNode,
    *,
    cell_timeout: float = 120,
    timeout: float = 600,
    workdir: Path | None = None,
    env: dict | None = None,
) -> tuple[GradeResult, NotebookNode]:
    """Grade one submission against the source notebook; returns the result and the executed notebook."""
    started = time.perf_counter()
    nb, flags = restore_tests(submission, source)
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            cell.outputs = []
            cell.execution_count = None
    scores = {
        c.metadata.nbgrader["grade_id"]: CellScore(
            grade_id=c.metadata.nbgrader["grade_id"],
            kind="tests" if _is_test(c) else "answer",
            max_points=float(c.metadata.nbgrader["points"]),
        )
        for c in source.cells
        if _is_test(c) or _is_answer(c)
    }
    result = GradeResult(status=STATUS_GRADED, flags=flags)
    replies: dict[int, str] = {}

    def on_cell_executed(cell, cell_index, execute_reply):
        replies[cell_index] = execute_reply.get("content", {}).get("status", "error")

    kernel_env = {**os.environ, **(env or {}), "NBGRADER_EXECUTION": "autograde"}
    with tempfile.TemporaryDirectory(prefix="dlcourse-grade-") as scratch:
        cwd = str(workdir or scratch)
        client = NotebookClient(
            nb,
            timeout=cell_timeout,
            kernel_name="python3",
            allow_errors=True,
            record_timing=False,
            interrupt_on_timeout=True,
            on_cell_executed=on_cell_executed,
            resources={"metadata": {"path": cwd}},
        )
        kernel_started = time.perf_counter()
        try:
            with client.setup_kernel(env=kernel_env, cwd=cwd):
                for index, cell in enumerate(nb.cells):
                    if time.perf_counter() - started > timeout:
                        result.status = STATUS_TIMED_OUT
                        result.message = f"stopped after {timeout:.0f} s; later cells did not run"
                        break
                    if cell.cell_type != "code":
                        continue
                    client.execute_cell(cell, index)
        except DeadKernelError as error:
            result.status = STATUS_CRASHED
            result.message = f"the kernel died ({error}); cells after that did not run"
        except CellTimeoutError as error:
            result.status = STATUS_TIMED_OUT
            result.message = str(error)
        result.kernel_seconds = time.perf_counter() - kernel_started

    for index, cell in enumerate(nb.cells):
        grade_id = _nbgrader(cell).get("grade_id")
        score = scores.get(grade_id)
        if score is None:
            continue
        if score.kind == "answer":
            score.ran = True
            continue  # graded by hand in the formgrader
        status = replies.get(index)
        score.ran = status is not None
        score.points = score.max_points if status == "ok" else 0.0
        if status == "error":
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            score.error = (
                f"{errors[-1].get('ename')}: {errors[-1].get('evalue')}" if errors else "the cell raised"
            )
        elif status is None:
            score.error = "did not run"
    result.cells = list(scores.values())
    result.seconds = time.perf_counter() - started
    return result, nb


def read_notebook(path: Path) -> NotebookNode:
    return nbformat.read(str(path), as_version=4)
