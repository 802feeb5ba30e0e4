"""The grading engine on broken and edited submissions, and under its limits.

Each case is one requirement: malformed files, old nbformat, cells
deleted / duplicated / reordered / stripped of metadata, a dead kernel, an
infinite loop (interruptible or not), the notebook time limit, a memory bomb,
and the output size limit. Nothing here may stop a batch, and points earned
before a failure are kept.
"""

from __future__ import annotations

import copy
import json
import signal
from concurrent.futures import ThreadPoolExecutor

import nbformat
import pytest

from dlcourse.instructor.grading.engine import Status, grade_notebook
from dlcourse.instructor.grading.submissions import read_submission
from dlcourse.instructor.grading.template import Template
from tests.redteam.course import CORRECT, build_course, insert_after, with_solution


@pytest.fixture(scope="module")
def redteam(tmp_path_factory):
    return build_course(tmp_path_factory.mktemp("engine"))


def _grade_all(runs: dict, source, **kwargs):
    def grade(item):
        name, (nb, options) = item
        return name, grade_notebook(nb, source, **{**kwargs, **options})

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(grade, runs.items()))


# -- reading files ----------------------------------------------------------------------------

def test_malformed_json_is_reported_with_a_reason(tmp_path):
    path = tmp_path / "broken.ipynb"
    path.write_text('{"cells": [ {"cell_type": "code", ')
    nb, reason = read_submission(path)
    assert nb is None and "malformed JSON" in reason and "line 1" in reason


@pytest.mark.parametrize("text, words", [
    ('["a list"]', "not a notebook"), ('{"metadata": {}}', "not a notebook"), ("", "malformed JSON"),
])
def test_json_that_is_not_a_notebook_is_reported(tmp_path, text, words):
    path = tmp_path / "odd.ipynb"
    path.write_text(text)
    nb, reason = read_submission(path)
    assert nb is None and words in reason


def test_missing_notebook_is_reported():
    assert read_submission(None) == (None, "no notebook in the submission")


# -- running (one batch of kernels, two at a time) -------------------------------------------------

@pytest.fixture(scope="module")
def runs(redteam, tmp_path_factory, template):
    _, source, student = redteam
    correct = with_solution(student, CORRECT)
    v3_path = tmp_path_factory.mktemp("v3") / "old.ipynb"
    v3_path.write_text(json.dumps(nbformat.convert(copy.deepcopy(correct), 3)))
    old, reason = read_submission(v3_path)
    assert reason is None
    stripped = copy.deepcopy(correct)
    for cell in stripped.cells:
        cell.metadata = {}
    # A cell limit with room for the honest cells on a loaded machine (2 s cut them off at a load of 7)
    options = {"cell_timeout": 5, "timeout": 60, "interrupt_grace": 1}
    plan = {
        "old_nbformat": (old, {}),
        "metadata_stripped": (stripped, {}),
        "dead_kernel": (insert_after(correct, "test_square_equal", "import os\nos._exit(3)"), {}),
        "interruptible_loop": (insert_after(correct, "test_square_equal", "while True:\n    pass"), {}),
        "unstoppable_loop": (insert_after(correct, "test_square_equal",
                                          "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                                          "while True:\n    pass"), {}),
        "notebook_time_limit": (insert_after(correct, "test_square_close", "import time\ntime.sleep(60)\n"),
                                {"timeout": 10, "cell_timeout": 30}),
        "memory_bomb": (insert_after(correct, "test_square_equal", "hog = bytearray(3 * 2**30)"),
                        {"memory_mb": 400}),
        "output_flood": (insert_after(correct, "test_square_equal", "for i in range(200000):\n    print(i, 'x' * 40)"),
                         {"output_limit": 100_000}),
    }
    return _grade_all(plan, source, template=template, **options)


def test_old_nbformat_is_converted_and_graded(runs):
    assert (runs["old_nbformat"][0].status, runs["old_nbformat"][0].score) == (Status.GRADED, 3)


def test_stripped_metadata_still_scores(runs):
    result = runs["metadata_stripped"][0]
    assert result.score == 3 and any("recognised by content" in f for f in result.flags)


def test_dead_kernel_keeps_earlier_points_and_says_why(runs):
    result = runs["dead_kernel"][0]
    assert result.status == Status.CRASHED and result.score == 1
    assert "died" in result.message


def test_interruptible_infinite_loop_is_interrupted_and_grading_goes_on(runs):
    result = runs["interruptible_loop"][0]
    assert (result.status, result.score) == (Status.TIMED_OUT, 3), result.message
    assert "interrupted" in result.message


def test_grader_started_in_the_background_still_interrupts(redteam):
    # `dlcourse grade ... &` from a script (and many CI runners) starts Python with SIGINT ignored;
    # the kernels must still take the grader's interrupt, or a loop costs the rest of the notebook.
    _, source, student = redteam
    looping = insert_after(with_solution(student, CORRECT), "test_square_equal", "while True:\n    pass")
    with Template() as template:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            template.start()  # the template process inherits SIGINT ignored
        finally:
            signal.signal(signal.SIGINT, previous)
        result = grade_notebook(looping, source, template=template, cell_timeout=5, timeout=60)[0]
    assert (result.status, result.score) == (Status.TIMED_OUT, 3), result.message
    assert "interrupted" in result.message and "could not" not in result.message


def test_loop_that_ignores_interrupts_is_killed_and_keeps_earlier_points(runs):
    result = runs["unstoppable_loop"][0]
    assert result.status == Status.TIMED_OUT and result.score == 1
    assert "could not be interrupted" in result.message


def test_notebook_time_limit(runs):
    result = runs["notebook_time_limit"][0]
    assert result.status == Status.TIMED_OUT and result.score == 2
    assert result.seconds < 40


def test_memory_bomb_hits_the_limit_and_other_tests_still_count(runs):
    result, executed = runs["memory_bomb"]
    assert result.status == Status.OUT_OF_MEMORY and result.score == 3


def test_output_size_is_capped(runs):
    result, executed = runs["output_flood"]
    assert result.score == 3
    size = len(json.dumps([c.get("outputs", []) for c in executed.cells]))
    assert size < 150_000
    assert "output truncated by the grader" in json.dumps([c.get("outputs", []) for c in executed.cells])


def test_check_contract_fields(runs):
    """`dlcourse check` reads these fields: keep them."""
    result = runs["old_nbformat"][0]
    assert {"score", "max_score", "status", "message", "cells"} <= set(dir(result))
    assert {"grade_id", "kind", "points", "max_points", "error"} <= set(vars(result.cells[0]))


def test_kernels_use_the_threads_they_are_given_and_collect_garbage(redteam, template):
    # Several kernels share the cores: each must keep to its share in torch and in numpy's BLAS.
    # The template imports with the garbage collector off; a kernel that kept it off would fill memory.
    _, source, student = redteam
    probe = ("import gc\nassert gc.isenabled()\n"
             "import torch, numpy\nfrom threadpoolctl import threadpool_info\n"
             "assert torch.get_num_threads() == 1, torch.get_num_threads()\n"
             "pools = [p['num_threads'] for p in threadpool_info()]\n"
             "assert pools and set(pools) == {1}, pools\n"
             "def square(x):\n    return x * x\n")
    result, executed = grade_notebook(with_solution(student, probe), source, threads=1, template=template)
    assert result.score == 3, [c.get("outputs") for c in executed.cells]
