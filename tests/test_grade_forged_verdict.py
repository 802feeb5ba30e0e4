"""A verdict that code in the kernel could have forged never counts. The kernel runs student code,
so a reply on its socket can come from that code (it would need the kernel's memory to find the
nonce: that route is closed, see the red-team cases on native code). Here a fake kernel plays the
forger on a real pipe, exactly as the grader sees one: a well-formed "ok" with the right nonce, sent
before the real reply, for a middle cell and for the last cell."""

from __future__ import annotations

import json
import threading
from multiprocessing import Pipe

import nbformat

from dlcourse.instructor.grading.engine import VOIDED, GradeResult, Status, _nothing_pending_after_the_last_cell, _run_cells
from dlcourse.instructor.grading.protocol import CellReply, decode_request

NO_SUCH_PID = 2**22 + 12345  # never signalled: no cell here runs past its time


def notebook():
    def test(grade_id):
        return nbformat.v4.new_code_cell("assert square(2) == 4", metadata={"nbgrader": {
            "grade": True, "solution": False, "locked": True, "grade_id": grade_id, "points": 1}})
    solution = nbformat.v4.new_code_cell("def square(x):\n    return x + 1", metadata={"nbgrader": {
        "grade": False, "solution": True, "locked": False, "grade_id": "square"}})
    return nbformat.v4.new_notebook(cells=[solution, test("test_a"), test("test_b"), test("test_c")])


def fake_kernel(conn, forge_at: int | None):
    """Answers every request with the honest verdict (every test fails: square is wrong); at cell
    `forge_at` it first sends a forged "ok" carrying the request's own nonce."""
    while True:
        request = decode_request(conn.recv_bytes())
        if request is None:
            conn.close()
            return
        if request.index == forge_at:
            conn.send_bytes(CellReply(nonce=request.nonce, index=request.index, status="ok").encode())
        status = "ok" if request.kind == "code" else "error"
        conn.send_bytes(CellReply(nonce=request.nonce, index=request.index, status=status).encode())


def grade(forge_at):
    grader, kernel = Pipe()
    thread = threading.Thread(target=fake_kernel, args=(kernel, forge_at), daemon=True)
    thread.start()
    result, verdicts = GradeResult(status=Status.GRADED), {}
    in_step = _run_cells(notebook(), grader, NO_SUCH_PID, result, verdicts, cell_timeout=30, deadline=1e18,
                         timeout=60)
    if in_step:
        _nothing_pending_after_the_last_cell(grader, verdicts, result)
    grader.send_bytes(json.dumps({"op": "stop"}).encode())
    thread.join(5)
    return result, verdicts


def test_an_honest_kernel_gets_its_verdicts_and_no_flag():
    result, verdicts = grade(forge_at=None)
    assert verdicts == {0: "ok", 1: "error", 2: "error", 3: "error"}
    assert result.flags == [] and result.status == Status.GRADED


def test_a_forged_ok_before_the_real_reply_voids_every_verdict():
    result, verdicts = grade(forge_at=2)  # test_b's forged "ok" is taken; the real reply arrives at cell 3
    assert "ok" not in [verdicts[i] for i in (1, 2, 3) if i in verdicts]
    assert set(verdicts.values()) == {VOIDED}
    assert any("forged or out-of-order reply" in f and "voided" in f for f in result.flags)
    assert result.status == Status.CRASHED


def test_a_forged_ok_for_the_last_cell_is_caught_after_it():
    result, verdicts = grade(forge_at=3)  # no cell follows the last: the grader's empty sync cell finds the real reply
    assert set(verdicts.values()) == {VOIDED}
    assert any("a reply after the last cell" in f for f in result.flags)
