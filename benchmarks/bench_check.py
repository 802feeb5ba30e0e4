"""`dlcourse check` with this checkout's grader against an earlier commit's, on the same notebooks, in one run.

    python benchmarks/bench_check.py                          # all six, 3 rounds, against 126474c
    python benchmarks/bench_check.py 03_rnn --rounds 5
    python benchmarks/bench_check.py --before v0.3 --course v0.3

Both versions check the same course: the notebooks of `--course` (default: the `--before` commit,
since an older grader cannot run notebooks written for a newer one). Each version runs from its own
source tree (PYTHONPATH), as a cold command, one after the other, and the order alternates every
round so that a load that comes and goes hits both alike. Both must report the same scores for the
solution, the blank notebook and the mutants, or the benchmark stops: it compares the same work.

The default `--before` is 126474c, the last commit before the guard against code aimed at the grader
(audit hook, sealed grader code, the test-namespace rule). Printed: every run's wall time, the median
per assignment for each version, and the ratio now / before (the target: at most 1.10).
Run it on an otherwise idle machine; other work on the same cores inflates both sides unevenly.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ASSIGNMENTS = ("00_setup", "01_backprop", "02_cnn", "03_rnn", "04_transformer", "05_generative")
# A row of `dlcourse check`'s table: assignment, points (with "(+N manual)"), solution, blank, mutants.
ROW = re.compile(r"^(?P<name>\S+)\s+[\d.]+(?: \(\+[\d.]+ manual\))?\s+(?P<solution>[\d.]+|-)\s+"
                 r"(?P<blank>[\d.]+|-)\s+(?P<mutants>\d+/\d+)\s+")


def worktree(revision: str, folder: Path) -> Path:
    done = subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-f", str(folder), revision],
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"cannot check out {revision} beside this checkout: {done.stderr.strip()}\n"
                 "(a shallow clone lacks older commits: `git fetch --unshallow`, or name another with --before)")
    return folder


def check_once(assignment: str, source_tree: Path, course: Path, workers: int) -> tuple[float, tuple[str, ...]]:
    """One cold `dlcourse check` of one assignment, by the grader in `source_tree`: wall seconds and scores."""
    env = {**os.environ, "PYTHONPATH": str(source_tree), "DLCOURSE_OFFLINE": "1"}
    command = [sys.executable, "-c", "import sys; from dlcourse.cli import main; sys.exit(main())",
               "check", assignment, "--workers", str(workers)]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=course, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    rows = [m for m in map(ROW.match, done.stdout.splitlines()) if m and m["name"] == assignment]
    if not rows:
        sys.exit(f"the check of {assignment} by {source_tree} printed no result ({done.returncode}):\n"
                 f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds, (rows[0]["solution"], rows[0]["blank"], rows[0]["mutants"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("assignments", nargs="*", default=list(ASSIGNMENTS))
    parser.add_argument("--before", default="126474c", help="the commit whose grader is the baseline")
    parser.add_argument("--course", help="the commit whose notebooks both check (default: --before)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bench-check-"))
    try:
        before_tree = worktree(args.before, scratch / "before")
        course = before_tree if args.course in (None, args.before) else worktree(args.course, scratch / "course")
        versions = {"before": before_tree / "src", "now": REPO / "src"}
        times: dict[tuple[str, str], list[float]] = {}
        print(f"dlcourse check --workers {args.workers}, notebooks of {args.course or args.before}; "
              f"before = {args.before}, now = this checkout; {os.cpu_count()} cores")
        for round_ in range(args.rounds):
            order = list(versions) if round_ % 2 == 0 else list(reversed(versions))
            for assignment in args.assignments:
                scores = {}
                for version in order:
                    seconds, scores[version] = check_once(assignment, versions[version], course, args.workers)
                    times.setdefault((assignment, version), []).append(seconds)
                    print(f"  round {round_ + 1}  {assignment:15} {version:6} {seconds:6.1f} s  "
                          f"(solution {scores[version][0]}, blank {scores[version][1]}, mutants caught "
                          f"{scores[version][2]}; load {os.getloadavg()[0]:.1f})", flush=True)
                if len(set(scores.values())) != 1:
                    sys.exit(f"{assignment}: the two versions disagree on the scores ({scores}); not the same work")
        print(f"\n{'assignment':15} {'before (median)':>16} {'now (median)':>13} {'now / before':>13}")
        totals = {"before": 0.0, "now": 0.0}
        for assignment in args.assignments:
            medians = {v: statistics.median(times[(assignment, v)]) for v in versions}
            for v in versions:
                totals[v] += medians[v]
            print(f"{assignment:15} {medians['before']:14.1f} s {medians['now']:11.1f} s "
                  f"{medians['now'] / medians['before']:13.3f}")
        print(f"{'all':15} {totals['before']:14.1f} s {totals['now']:11.1f} s {totals['now'] / totals['before']:13.3f}")
    finally:  # the worktrees' folders go; prune then drops git's records of them
        shutil.rmtree(scratch, ignore_errors=True)
        subprocess.run(["git", "-C", str(REPO), "worktree", "prune"], capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
