"""`dlcourse grade --scheduler`: grading on a real Dask cluster (a `dask scheduler` and `dask worker`
processes started here), compared with the local pool."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dlcourse.instructor.course import CourseError
from dlcourse.instructor.grading.batch import BatchOptions, grade_batch
from tests.test_grade_batch import make_batch, quiet

BIN = Path(sys.executable).parent


def _dask():
    if shutil.which("dask", path=str(BIN)) is None:
        pytest.fail("the `dask` command is missing: pip install -e '.[cluster]'")
    return str(BIN / "dask")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster(tmp_path):
    """A scheduler and two single-thread workers, each its own process; yields the scheduler address."""
    yield from _start_cluster(tmp_path)


def _start_cluster(tmp_path, *worker_options: str):
    dask = _dask()
    address = f"tcp://127.0.0.1:{_free_port()}"
    env = {**os.environ, "DLCOURSE_OFFLINE": "1"}
    processes = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                                   "--no-dashboard"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    for _ in range(2):
        processes.append(subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--no-nanny",
                                           "--no-dashboard", "--local-directory", str(tmp_path / "dask"),
                                           *worker_options],
                                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    from distributed import Client

    with Client(address, timeout=60, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=60)
    yield address, processes
    for process in processes:
        process.kill()
        process.wait()


def test_cluster_grades_like_the_local_pool_and_only_the_client_writes(demo_course, tmp_path, cluster):
    address, _ = cluster
    batch = make_batch(demo_course, tmp_path / "in")
    local = grade_batch(demo_course, "99_demo", batch, BatchOptions(
        workers=2, progress=False, nbgrader_dir=tmp_path / "local", csv_path=tmp_path / "local.csv"), log=quiet)
    remote = grade_batch(demo_course, "99_demo", batch, BatchOptions(
        progress=False, nbgrader_dir=tmp_path / "remote", scheduler=address,
        csv_path=tmp_path / "remote.csv"), log=quiet)
    assert [(r.student, r.score, r.status, r.cells, r.message) for r in remote] == \
        [(r.student, r.score, r.status, r.cells, r.message) for r in local]
    assert (tmp_path / "remote" / "gradebook.db").exists()
    assert (tmp_path / "remote" / "autograded" / "alice" / "99_demo" / "99_demo.ipynb").exists()
    # The rerun grades nothing: every submission is in the gradebook once.
    again = grade_batch(demo_course, "99_demo", batch, BatchOptions(
        progress=False, nbgrader_dir=tmp_path / "remote", scheduler=address), log=quiet)
    assert all(r.skipped for r in again)


def test_the_task_returns_json_safe_data_and_a_version_mismatch_names_the_worker(demo_course, cluster):
    from distributed import Client

    from dlcourse.instructor.source import read_source
    from dlcourse.instructor.grading.cluster import ClusterError, ClusterGrader, grade_on_worker
    from tests.test_grade_batch import solved

    address, _ = cluster
    source = read_source(demo_course.source_path("99_demo"))
    grader = ClusterGrader(address, "99_demo", source, {"cell_timeout": 60, "timeout": 120, "memory_mb": None,
                                                        "isolate": True, "threads": 1})
    try:
        result, _ = grader.grade(solved(demo_course), {})
        assert result.status == "graded" and result.score == result.max_score
    finally:
        grader.close()
    with Client(address, timeout=30, set_as_default=False) as client:
        import dlcourse, nbformat

        task = {"assignment": "99_demo", "dlcourse_version": dlcourse.__version__,
                "source": grader.source_data, "source_sha256": grader.sha,
                "submission": json.loads(nbformat.writes(solved(demo_course))), "files": {},
                "options": grader.options}
        data = client.submit(grade_on_worker, task, pure=False).result()
        assert json.loads(json.dumps(data)) == data
        workers = set(client.scheduler_info()["workers"])
        with pytest.raises(ClusterError) as refused:
            client.submit(grade_on_worker, {**task, "dlcourse_version": "0.0.0-other"}, pure=False).result()
        assert "0.0.0-other" in str(refused.value) and any(w in str(refused.value) for w in workers)
        with pytest.raises(ClusterError, match="worker tcp://.* received a different release of 99_demo"):
            client.submit(grade_on_worker, {**task, "source_sha256": "0" * 64}, pure=False).result()


def test_workers_started_with_the_preload_keep_one_template_for_every_batch(demo_course, tmp_path):
    """`dask worker --preload dlcourse.instructor.grading.cluster`: the template starts with the worker and serves
    batch after batch (no batch waits for torch to import), and closing a batch leaves it running."""
    from distributed import Client

    def template_pid(dask_worker):
        return getattr(dask_worker, "dlcourse_template")._process.pid

    cluster = _start_cluster(tmp_path, "--preload", "dlcourse.instructor.grading.cluster")
    address, _ = next(cluster)
    try:
        with Client(address, timeout=30, set_as_default=False) as client:
            before = client.run(template_pid)
        batch = make_batch(demo_course, tmp_path / "in")
        for round_ in ("first", "second"):
            rows = grade_batch(demo_course, "99_demo", batch, BatchOptions(
                progress=False, nbgrader_dir=tmp_path / round_, scheduler=address), log=quiet)
            assert {r.student: r.score for r in rows}["alice"] == 2.0
        with Client(address, timeout=30, set_as_default=False) as client:
            assert client.run(template_pid) == before and len(before) == 2
    finally:
        next(cluster, None)


def test_kernels_share_their_machines_cores_among_all_its_workers_threads(demo_course, cluster):
    """Two single-thread workers on this machine: each kernel gets half the cores, as in the local pool
    with two workers (it got every core, so two kernels oversubscribed the machine)."""
    from distributed import Client

    from dlcourse.instructor.source import read_source
    from dlcourse.instructor.grading.cluster import ClusterGrader, kernel_threads

    address, _ = cluster
    grader = ClusterGrader(address, "99_demo", read_source(demo_course.source_path("99_demo")), {})
    try:
        by_host, slots = grader.slots_by_host(), grader.slots()
    finally:
        grader.close()
    assert by_host == {"127.0.0.1": 2} and slots == 2
    with Client(address, timeout=30, set_as_default=False) as client:
        for worker in client.scheduler_info()["workers"]:
            on_worker = client.submit(kernel_threads, worker, by_host, workers=[worker], pure=False).result()
            assert on_worker == max(1, (os.cpu_count() or 1) // 2)
            # a worker that joined after the client looked counts its own single thread
            assert client.submit(kernel_threads, worker, {}, workers=[worker], pure=False).result() == \
                (os.cpu_count() or 1)


def test_no_scheduler_is_one_clear_message(demo_course, tmp_path):
    _dask()
    batch = make_batch(demo_course, tmp_path / "in")
    with pytest.raises(CourseError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:"):
        grade_batch(demo_course, "99_demo", batch, BatchOptions(
            progress=False, nbgrader_dir=tmp_path / "nb", scheduler=f"tcp://127.0.0.1:{_free_port()}"),
            log=quiet)


def test_a_worker_killed_mid_submission_is_regraded_elsewhere_each_submission_once(demo_course, tmp_path, cluster):
    import signal
    import threading

    import nbformat
    from distributed import Client

    from dlcourse.instructor.grading.gradebook import GradebookWriter
    from tests.test_grade_batch import CORRECT, solved

    address, _ = cluster
    batch = tmp_path / "slow"
    batch.mkdir()
    slow = "import time\ntime.sleep(4)\n" + CORRECT
    for student in ("ann", "ben"):
        nbformat.write(solved(demo_course, slow), str(batch / f"{student}.ipynb"))
    rows = []
    thread = threading.Thread(target=lambda: rows.extend(grade_batch(demo_course, "99_demo", batch, BatchOptions(
        progress=False, nbgrader_dir=tmp_path / "nb", scheduler=address), log=quiet)))
    thread.start()
    with Client(address, timeout=30, set_as_default=False) as client:
        deadline = time.monotonic() + 60
        while not any(client.processing().values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        busy = next(w for w, tasks in client.processing().items() if tasks)
        time.sleep(1)  # the kernel is running the submission
        os.kill(client.run(os.getpid, workers=[busy])[busy], signal.SIGKILL)
    thread.join(180)
    assert [(r.student, r.status, r.score) for r in rows] == [("ann", "graded", 2.0), ("ben", "graded", 2.0)]
    from dlcourse.instructor.source import read_source

    writer = GradebookWriter(f"sqlite:///{tmp_path / 'nb' / 'gradebook.db'}", "99_demo", "99_demo",
                             read_source(demo_course.source_path("99_demo")))
    try:
        assert writer.graded_students() == {"ann", "ben"}
    finally:
        writer.close()


def test_a_kernel_crash_on_a_worker_is_graded_as_locally_and_not_retried(demo_course, tmp_path, cluster):
    import nbformat

    from tests.test_grade_batch import CORRECT, solved

    address, _ = cluster
    batch = tmp_path / "crash"
    batch.mkdir()
    nbformat.write(solved(demo_course, "import os\nos._exit(3)\n" + CORRECT), str(batch / "eve.ipynb"))
    local = grade_batch(demo_course, "99_demo", batch, BatchOptions(
        workers=1, progress=False, nbgrader_dir=tmp_path / "local"), log=quiet)
    started = time.monotonic()
    remote = grade_batch(demo_course, "99_demo", batch, BatchOptions(
        progress=False, nbgrader_dir=tmp_path / "remote", scheduler=address), log=quiet)
    assert [(r.status, r.score, r.cells) for r in remote] == [(r.status, r.score, r.cells) for r in local]
    assert remote[0].status != "grader error" and time.monotonic() - started < 60


def test_the_scheduler_gone_mid_batch_is_one_clear_message_and_a_rerun_grades_only_what_is_missing(
        demo_course, tmp_path, cluster):
    import threading

    import nbformat

    from tests.test_grade_batch import CORRECT, solved

    address, processes = cluster
    batch = tmp_path / "batch"
    batch.mkdir()
    nbformat.write(solved(demo_course), str(batch / "ann.ipynb"))  # fast: graded before the scheduler goes
    for student in ("ben", "cat"):  # slow: still running when it goes
        nbformat.write(solved(demo_course, "import time\ntime.sleep(8)\n" + CORRECT), str(batch / f"{student}.ipynb"))
    saved = tmp_path / "nb" / "autograded" / "ann" / "99_demo" / "99_demo.ipynb"
    errors = []

    def grade():
        try:
            grade_batch(demo_course, "99_demo", batch, BatchOptions(
                progress=False, nbgrader_dir=tmp_path / "nb", scheduler=address), log=quiet)
        except CourseError as error:
            errors.append(str(error))

    thread = threading.Thread(target=grade)
    started = time.monotonic()
    thread.start()
    while not saved.exists() and time.monotonic() - started < 90:
        time.sleep(0.2)
    assert saved.exists(), "the fast submission was not graded"
    processes[0].kill()  # the scheduler
    thread.join(120)
    assert not thread.is_alive(), "the batch hung after the scheduler was gone"
    assert len(errors) == 1 and f"the Dask scheduler at {address} is gone" in errors[0]
    assert "run the same command again" in errors[0]
    # Nothing lost: the next run, locally, keeps ann's grade and grades only ben and cat.
    rows = grade_batch(demo_course, "99_demo", batch, BatchOptions(
        workers=2, progress=False, nbgrader_dir=tmp_path / "nb"), log=quiet)
    assert [(r.student, r.skipped, r.score) for r in rows] == [("ann", True, 2.0), ("ben", False, 2.0),
                                                              ("cat", False, 2.0)]
