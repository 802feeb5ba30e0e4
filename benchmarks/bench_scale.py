"""Grading throughput: the local pool vs a Dask cluster of the same number of worker processes on this
machine, in one run (same scores), the growth with 1, 2 and 4 workers, and a projection for 3,600
notebooks on 8 machines of 16 cores from the measured per-submission cost.

    python benchmarks/bench_scale.py                     # 32 submissions of 00_setup
    python benchmarks/bench_scale.py --count 8 --scaling 1,2   # quick

Starts `dask scheduler` and `dask worker` processes itself (needs the cluster extra). Run from the course root.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dlcourse.instructor.course import load_course
from dlcourse.instructor.grading.batch import BatchOptions, grade_batch
from dlcourse.instructor.authoring.sample import write_sample_batch


def start_cluster(workers: int, folder: Path, preload: bool = True) -> tuple[str, list[subprocess.Popen]]:
    """A scheduler and `workers` single-thread worker processes; with `preload`, each worker starts its
    grading template with itself (`--preload dlcourse.instructor.grading.cluster`, as docs/grading.md deploys them)."""
    from distributed import Client

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dask = str(Path(sys.executable).with_name("dask"))
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    processes = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                                  **quiet)]
    extra = ["--preload", "dlcourse.instructor.grading.cluster"] if preload else []
    processes += [subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                                    "--local-directory", str(folder), *extra], **quiet) for _ in range(workers)]
    with Client(address, timeout=60, set_as_default=False) as client:
        client.wait_for_workers(workers, timeout=120)
        if preload:  # a standing cluster: its templates are ready before the first batch comes
            client.run(lambda dask_worker: dask_worker.dlcourse_template.wait_ready())
    return address, processes


def timed(course, assignment, batch, folder, **options) -> tuple[float, dict]:
    started = time.perf_counter()
    rows = grade_batch(course, assignment, batch, BatchOptions(progress=False, nbgrader_dir=folder, **options),
                       log=lambda *_: None)
    return time.perf_counter() - started, {r.student: r.score for r in rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assignment", default="00_setup")
    parser.add_argument("--count", type=int, default=32)
    parser.add_argument("--workers", type=int, default=None, help="default: cores")
    parser.add_argument("--scaling", default="1,2,4")
    args = parser.parse_args()
    course = load_course()
    workers = args.workers or os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    batch = work / "batch"
    write_sample_batch(course, args.assignment, batch, args.count, broken=False)
    n = len(list(batch.glob("*.ipynb")))
    print(f"{n} submissions of {args.assignment}; {os.cpu_count()} cores; {workers} workers; "
          f"load {os.getloadavg()[0]:.1f} (other load inflates every figure)")
    local_s, local_scores = timed(course, args.assignment, batch, work / "local", workers=workers)
    print(f"local pool: {local_s:.1f} s ({n / local_s:.2f} notebooks/s, {local_s * workers / n:.2f} core-s each; "
          "its template starts with the command)")
    cluster_s = None
    for preload, what in ((True, "standing workers (--preload: templates started with the workers)"),
                          (False, "workers without the preload (each batch starts a template per worker)")):
        address, processes = start_cluster(workers, work / f"dask-{preload}", preload=preload)
        try:
            seconds, scores = timed(course, args.assignment, batch, work / f"cluster-{preload}", scheduler=address)
        finally:
            for p in processes:
                p.kill()
        assert scores == local_scores, "the cluster's scores differ from the local pool's"
        cluster_s = cluster_s or seconds
        print(f"cluster, {what}: {seconds:.1f} s ({n / seconds:.2f} notebooks/s, {seconds * workers / n:.2f} core-s "
              f"each); throughput ratio cluster/local {local_s / seconds:.2f} (target >= 0.9), overhead per "
              f"submission {(seconds - local_s) * workers / n:+.2f} core-s")
    per_core = []
    for count in [int(x) for x in args.scaling.split(",")]:
        address, processes = start_cluster(count, work / f"dask{count}")
        try:
            seconds, scores = timed(course, args.assignment, batch, work / f"scale{count}", scheduler=address)
        finally:
            for p in processes:
                p.kill()
        per_core.append(seconds * count / n)
        print(f"{count} worker(s): {seconds:.1f} s for {n}")
    cost = min(cluster_s * workers / n, *per_core)
    cores = 8 * 16
    print(f"projection: 3,600 notebooks x {cost:.2f} core-s each / ({cores} cores = 8 x 16) = "
          f"{3600 * cost / cores:.0f} s ({3600 * cost / cores / 60:.1f} min), this assignment's cost per notebook")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
