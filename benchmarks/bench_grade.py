"""Stock `nbgrader autograde` against `dlcourse grade`, on the same batch, in one run.

    python benchmarks/bench_grade.py                # 16 submissions of 00_setup
    python benchmarks/bench_grade.py --count 32 --workers 2
    python benchmarks/bench_grade.py --ps1-copies 8   # and nbgrader's user-guide course, 16 students

Second, nbgrader's own user-guide course (tests/fixtures/nbgrader/ps1: assignment ps1 of two notebooks,
students bitdiddle and hacker, each copied --ps1-copies times): `nbgrader autograde ps1` against
`dlcourse grade ps1` run in a plain copy of that course folder. The two rows are printed side by side.

The batch (solutions, blanks and partly right notebooks: every mutant swapped in)
comes from ``dlcourse.instructor.authoring.sample``. Both graders run as their command-line
tools from a cold start, in temporary course folders with their own gradebooks,
and must give every submission the same score. Printed: wall time, throughput,
the ratio, and the per-submission overhead: worker time not spent executing
cells, (workers x wall - time the kernels spent executing cells) / submissions,
which includes each command's one-time cold start; for stock nbgrader (one
notebook after another) that is (wall - cell time) / submissions. Stock
nbgrader's cell time includes importing torch and friends in every notebook's
first cell (dlcourse's template did that once). For dlcourse, also the median
over submissions of (its grading time - its cell time) once the template is warm.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import nbformat

from dlcourse.instructor.source import read_source
from dlcourse.instructor.course import load_course
from dlcourse.instructor.grading.batch import RECORD_KEY
from dlcourse.instructor.authoring.sample import write_sample_batch


def run(command: list[str], cwd: Path, env: dict | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds


def cell_seconds_nbgrader(notebook: Path) -> float:
    """Time nbgrader's kernel spent in cells, from nbclient's timing metadata."""
    total = 0.0
    for cell in nbformat.read(str(notebook), as_version=4).cells:
        timing = cell.get("metadata", {}).get("execution", {})
        start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
        if start and end:
            parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
            total += (parse(end) - parse(start)).total_seconds()
    return total


def scores_nbgrader(course_dir: Path, assignment: str) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}") as gb:
        return {s.student.id: s.score for s in gb.assignment_submissions(assignment)}


def bench_ps1(work: Path, copies: int, workers: int) -> dict:
    """nbgrader's user-guide course graded by both tools, each in its own copy of the course folder."""
    fixture = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "nbgrader" / "ps1"
    folders = {}
    for tool in ("nbgrader", "dlcourse"):
        folder = folders[tool] = work / f"ps1-{tool}"
        shutil.copytree(fixture, folder, ignore=shutil.ignore_patterns("submitted"))
        for student in ("bitdiddle", "hacker"):
            for copy in range(copies):
                shutil.copytree(fixture / "submitted" / student, folder / "submitted" / f"{student}{copy}")
    nbgrader = str(Path(sys.executable).with_name("nbgrader"))
    run([nbgrader, "generate_assignment", "ps1", "--force"], folders["nbgrader"])  # not timed (an instructor's step)
    stock_wall = run([nbgrader, "autograde", "ps1", "--force"], folders["nbgrader"])
    ours_wall = run([str(Path(sys.executable).with_name("dlcourse")), "grade", "ps1", "--workers", str(workers),
                     "--no-progress"], folders["dlcourse"])  # generates the release version itself, timed
    stock, ours = scores_nbgrader(folders["nbgrader"], "ps1"), scores_nbgrader(folders["dlcourse"], "ps1")
    return {"submissions": len(stock), "nbgrader_wall_s": round(stock_wall, 1), "dlcourse_wall_s": round(ours_wall, 1),
            "throughput_ratio": round(stock_wall / ours_wall, 2),
            "scores_differ": {s: (stock[s], ours.get(s)) for s in stock if stock[s] != ours.get(s)}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assignment", default="00_setup")
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--workers", type=int, default=None, help="dlcourse grade workers (default: cores)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    parser.add_argument("--ps1-copies", type=int, default=8,
                        help="copies of each of ps1's two students (default 8: 16 submissions of 2 notebooks; "
                             "0: skip the ps1 course)")
    args = parser.parse_args()
    course = load_course()
    assignment = args.assignment
    workers = args.workers or os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="bench-grade-"))
    batch = work / "batch"
    write_sample_batch(course, assignment, batch, args.count, broken=False)
    students = sorted(p.stem for p in batch.glob("*.ipynb"))
    print(f"{len(students)} submissions of {assignment}; {os.cpu_count()} cores; dlcourse workers: {workers}")

    # -- stock nbgrader: source -> generate_assignment (not timed) -> autograde (timed)
    stock = work / "nbgrader"
    (stock / "source" / assignment).mkdir(parents=True)
    nbformat.write(read_source(course.source_path(assignment)), str(stock / "source" / assignment / f"{assignment}.ipynb"))
    (stock / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.CourseDirectory.root = {str(stock)!r}\n"
        f"c.CourseDirectory.db_url = 'sqlite:///{stock / 'gradebook.db'}'\n"
        "c.Execute.timeout = 120\n")
    nbgrader = str(Path(sys.executable).with_name("nbgrader"))
    run([nbgrader, "generate_assignment", assignment, "--force"], stock)
    for student in students:
        target = stock / "submitted" / student / assignment
        target.mkdir(parents=True)
        shutil.copy(batch / f"{student}.ipynb", target / f"{assignment}.ipynb")
    stock_wall = run([nbgrader, "autograde", assignment, "--force"], stock)
    stock_cells = sum(cell_seconds_nbgrader(stock / "autograded" / s / assignment / f"{assignment}.ipynb")
                      for s in students)
    stock_scores = scores_nbgrader(stock, assignment)

    # -- dlcourse grade, cold start, its own nbgrader folder and gradebook
    ours = work / "dlcourse"
    ours.mkdir()
    dlcourse = str(Path(sys.executable).with_name("dlcourse"))
    ours_wall = run([dlcourse, "grade", assignment, str(batch), "--workers", str(workers), "--no-progress",
                     "--nbgrader-dir", str(ours), "--csv", str(ours / "grades.csv")], course.root,
                    {"DLCOURSE_ROOT": str(course.root)})
    rows = {}
    for student in students:
        record = nbformat.read(str(ours / "autograded" / student / assignment / f"{assignment}.ipynb"),
                               as_version=4).metadata[RECORD_KEY]["row"]
        rows[student] = record
    ours_cells = sum(r["cell_seconds"] for r in rows.values())
    with open(ours / "grades.csv") as f:
        ours_scores = {r["student"]: float(r["score"]) for r in csv.DictReader(f)}

    n = len(students)
    differ = {s: (stock_scores.get(s), ours_scores.get(s)) for s in students
              if stock_scores.get(s) != ours_scores.get(s)}
    stock_overhead = (stock_wall - stock_cells) / n
    ours_overhead = (workers * ours_wall - ours_cells) / n
    each = sorted(r["seconds"] - r["cell_seconds"] for r in rows.values())
    ours_median = each[len(each) // 2]  # one submission's grading time minus its cells, once warm
    report = {
        "submissions": n, "workers": workers,
        "nbgrader_wall_s": round(stock_wall, 1), "dlcourse_wall_s": round(ours_wall, 1),
        "nbgrader_per_s": round(n / stock_wall, 3), "dlcourse_per_s": round(n / ours_wall, 3),
        "throughput_ratio": round(stock_wall / ours_wall, 2),
        "nbgrader_cell_s": round(stock_cells, 1), "dlcourse_cell_s": round(ours_cells, 1),
        "nbgrader_overhead_per_submission_s": round(stock_overhead, 2),
        "dlcourse_overhead_per_submission_s": round(ours_overhead, 2),
        "dlcourse_overhead_per_submission_warm_median_s": round(ours_median, 3),
        "scores_differ": differ,
    }
    print(f"stock nbgrader autograde : {stock_wall:6.1f} s  {n / stock_wall:.3f} notebooks/s  "
          f"overhead {stock_overhead:.2f} s/submission (cells {stock_cells:.1f} s)")
    print(f"dlcourse grade ({workers} workers): {ours_wall:6.1f} s  {n / ours_wall:.3f} notebooks/s  "
          f"overhead {ours_overhead:.2f} s/submission (cells {ours_cells:.1f} s)")
    print(f"dlcourse per-submission overhead once warm (median of grading time - cell time): {ours_median:.3f} s; "
          "the amortised figures include each command's cold start (imports, nbgrader, the template)")
    print(f"throughput ratio: {stock_wall / ours_wall:.2f}x (target >= 1.8x); "
          f"overhead target <= 1 s per submission")
    if differ:
        print(f"scores differ (nbgrader, dlcourse): {differ}")
    if args.ps1_copies:
        ps1 = report["ps1"] = bench_ps1(work, args.ps1_copies, workers)
        print(f"\n{'':34} {'nbgrader autograde':>18} {'dlcourse grade':>15} {'ratio':>7}")
        print(f"{assignment + f' ({n} submissions)':34} {stock_wall:16.1f} s {ours_wall:13.1f} s "
              f"{stock_wall / ours_wall:6.2f}x")
        print(f"{'ps1, nbgrader user guide (' + str(ps1['submissions']) + ')':34} {ps1['nbgrader_wall_s']:16.1f} s "
              f"{ps1['dlcourse_wall_s']:13.1f} s {ps1['throughput_ratio']:6.2f}x")
        if ps1["scores_differ"]:
            print(f"ps1 total scores differ (nbgrader, dlcourse; docs/grading.md lists why): {ps1['scores_differ']}")
    print(json.dumps(report))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"kept {work}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
