"""`run_autograder`: grade one Gradescope submission. Runs in Gradescope's container, as root, once
per submission (``python -m dlcourse.instructor.gradescope.run``); student code runs only in the engine's
kernel process, as its own unprivileged uid.

    AUTOGRADER_ROOT (default /autograder)
      source/       the unzipped bundle: settings.json, the assignment's source notebook, files/
      submission/   what the student uploaded: exactly one .ipynb expected
      results/      results.json, written here always (atomically), even when grading fails

Before anything else a provisional results.json says the grading did not finish, so a run stopped
from outside (Gradescope's own time or memory limit) still leaves a result with the reason; our own
limits sit inside Gradescope's, so a student normally sees our message instead. The source,
submission and results folders are made readable by root only before the kernel starts.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

ROOT_ENV = "AUTOGRADER_ROOT"
SETTINGS = "settings.json"
SAMPLE_S = 0.25


class Stopped(BaseException):
    """Our overall time limit, or Gradescope stopping the run: a BaseException, so that no handler on
    the way (the engine retries a kernel that failed to start on OSError) mistakes it for a failure
    it can recover from."""


def autograder_root() -> Path:
    return Path(os.environ.get(ROOT_ENV) or "/autograder")


def write_results(results_dir: Path, data: dict) -> Path:
    """results.json, replaced atomically (Gradescope never reads half a file)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / "results.json"
    temporary = path.with_name("results.json.part")
    temporary.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    temporary.replace(path)
    return path


def find_notebooks(folder: Path) -> list[Path]:
    """The .ipynb files handed in: those at the top of the folder, else those anywhere below it
    (an upload of a folder or a zip), never Jupyter's checkpoints or macOS's resource forks."""
    if not folder.is_dir():
        return []
    top = sorted(p for p in folder.glob("*.ipynb") if p.is_file() and not p.name.startswith("."))
    if top:
        return top
    return sorted(p for p in folder.rglob("*.ipynb") if p.is_file() and not p.name.startswith(".")
                  and not {".ipynb_checkpoints", "__MACOSX"} & set(p.relative_to(folder).parts))


def other_files(folder: Path, notebook: Path) -> dict[str, Path]:
    """The student's other files (data, modules), placed next to the notebook in the working copy."""
    base = notebook.parent
    return {str(p.relative_to(base)): p for p in sorted(base.rglob("*"))
            if p.is_file() and p != notebook and p.suffix != ".ipynb" and not p.name.startswith(".")
            and not {".ipynb_checkpoints", "__MACOSX"} & set(p.relative_to(base).parts)}


class MemoryPeak:
    """The peak memory of this process and everything it started (the template, the kernel), sampled:
    the cgroup's own peak where the kernel keeps one (what Gradescope's limit counts), else the sum
    of the processes' proportional set sizes (shared pages counted once)."""

    def __init__(self):
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="memory-peak")

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(2)

    @property
    def mb(self) -> float:
        return round(self.peak / 2**20, 1)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            try:
                self.peak = max(self.peak, tree_pss(os.getpid()))
            except Exception:
                return


def tree_pss(pid: int) -> int:
    """Bytes of memory (PSS) held by `pid` and its descendants."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    total = 0
    for member in tree:
        try:
            with open(f"/proc/{member}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return total


def lock_down(*folders: Path) -> list[str]:
    """Folders readable by root only (Gradescope's guidance): the kernel's uid cannot list or read them
    even where the container refuses new namespaces (then nothing covers them)."""
    done = []
    if os.geteuid() != 0:
        return done
    for folder in folders:
        try:
            if folder.is_dir():
                os.chown(folder, 0, 0)
                os.chmod(folder, 0o700)
                done.append(folder.name)
        except OSError:
            pass
    return done


def isolation_summary(isolation: dict, locked: list[str]) -> dict:
    """What held for this submission, in words (extra_data; docs/grading.md explains each line)."""
    user = isolation.get("user")
    return {
        "kernel_user": f"uid {user}, no groups, no new privileges" if user is not None
        else "the grader's own user (the grader does not run as root)",
        "root_only_folders": locked,
        "namespaces": bool(isolation.get("namespaces")),
        "network": "none (own network namespace)" if isolation.get("namespaces") is True and not isolation.get("network")
        else "not cut off: the container refused new namespaces",
        "hidden_folders": len(isolation.get("hidden", [])),
        "own_pid_namespace": bool(isolation.get("pids")),
        "limits": isolation.get("limits", []),
        "errors": isolation.get("errors", []),
    }


def cell_errors(executed, limit: int = 20) -> list[str]:
    """The errors the student's own cells raised (not the tests'): for the instructor, on a failing grade."""
    from dlcourse.instructor.cells import role

    found = []
    for index, cell in enumerate(executed.cells):
        if cell.get("cell_type") != "code" or role(cell) == "tests":
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                found.append(f"cell {index}: {output.get('ename')}: {str(output.get('evalue'))[:300]}")
    return found[:limit]


def grade(root: Path) -> dict:
    """Grade the submission under `root`; returns the results.json data (never raises for a bad submission)."""
    import nbformat

    from dlcourse.instructor.gradescope.results import results_json
    from dlcourse.instructor.grading.engine import grade_notebook
    from dlcourse.instructor.grading.submissions import read_submission

    try:
        from dlcourse.instructor.grading.policy import default_hide
    except ImportError:  # before the grading refactor
        from dlcourse.instructor.grading.engine import default_hide

    source_dir, submission_dir, results_dir = root / "source", root / "submission", root / "results"
    settings = json.loads((source_dir / SETTINGS).read_text(encoding="utf-8"))
    source = nbformat.read(str(source_dir / settings["source"]), as_version=4)
    locked = lock_down(source_dir, submission_dir, results_dir)
    expected = settings["notebook"]
    found = find_notebooks(submission_dir)
    if not found:
        return results_json(None, source, settings, reason=f"no .ipynb file was handed in: upload your notebook, "
                                                          f"{expected}, downloaded from Colab or Jupyter (File > Download).")
    if len(found) > 1:
        names = ", ".join(str(p.relative_to(submission_dir)) for p in found[:6])
        return results_json(None, source, settings, reason=f"{len(found)} notebooks were handed in ({names}): "
                                                          f"upload exactly one, {expected}.")
    nb, reason = read_submission(found[0])
    if nb is None:
        return results_json(None, source, settings, reason=f"{reason}. Download the notebook again from Colab or "
                                                          "Jupyter (File > Download > .ipynb) and upload that file.")
    public = source_dir / "files"
    files = {str(p.relative_to(public)): p for p in sorted(public.rglob("*")) if p.is_file()} if public.is_dir() else {}
    files.update(other_files(submission_dir, found[0]))
    limits = settings["limits"]
    with MemoryPeak() as memory:
        result, _executed = grade_notebook(
            nb, source, cell_timeout=limits["cell_timeout_s"], timeout=limits["timeout_s"],
            memory_mb=limits["memory_mb"], files=files, threads=limits.get("threads", 1),
            notebook_name=expected, hide=[*default_hide(), *([str(root.resolve())] if settings.get("cover_root", True) else [])],
            env={"DLCOURSE_OFFLINE": "1", "OMP_NUM_THREADS": str(limits.get("threads", 1))})
    errors = cell_errors(_executed)
    for line in errors:
        print(f"notebook error: {line}")  # stdout: shown to instructors only
    extra = {"isolation_summary": isolation_summary(result.isolation, locked), "peak_memory_mb": memory.mb,
             "notebook_errors": errors,
             "kernel_seconds": round(result.kernel_seconds, 2), "cell_seconds": round(result.cell_seconds, 2),
             "limits": limits, "submitted_file": found[0].name}
    if found[0].name != expected:
        result.flags.append(f"the notebook was handed in as {found[0].name}, not {expected}")
    return results_json(result, source, settings, extra=extra)


def main(argv: list[str] | None = None) -> int:
    from dlcourse.instructor.gradescope.results import failure_results

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--check"]:
        return check(Path(argv[1]) if len(argv) > 1 else autograder_root() / "source")
    started = time.perf_counter()
    root = autograder_root()
    results_dir = root / "results"
    settings: dict = {}
    try:
        settings = json.loads((root / "source" / SETTINGS).read_text(encoding="utf-8"))
    except Exception as error:
        write_results(results_dir, failure_results(f"the bundle's {SETTINGS} cannot be read ({error})", settings))
        return 0
    write_results(results_dir, failure_results(
        "grading did not finish: it was stopped from outside (Gradescope's time or memory limit). "
        "Raise them in the assignment's Autograder Settings", settings))

    def stop(signum, _frame):
        if signum == signal.SIGALRM:
            raise Stopped(f"the autograder's overall time limit ({settings['limits']['alarm_s']} s, inside "
                               "Gradescope's timeout) was reached before grading finished")
        raise Stopped(f"the autograder was stopped ({signal.Signals(signum).name})")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGALRM, stop)
    signal.alarm(int(settings.get("limits", {}).get("alarm_s", 0)) or 0)
    try:
        data = grade(root)
    except BaseException as error:  # the grader's own failure: a result with the reason, always
        detail = traceback.format_exc()
        print(detail, file=sys.stderr)
        data = failure_results(str(error) if isinstance(error, Stopped) else f"{type(error).__name__}: {error}",
                               settings, detail)
    finally:
        signal.alarm(0)
    data["execution_time"] = max(int(data.get("execution_time") or 0), int(round(time.perf_counter() - started)))
    write_results(results_dir, data)
    tests = [t for t in data["tests"] if "max_score" in t]
    print(f"{settings.get('assignment')}: {data['score']:g}/{sum(t['max_score'] for t in tests):g} "
          f"({data['extra_data'].get('status')}) in {data['execution_time']} s, "
          f"peak memory {data['extra_data'].get('peak_memory_mb', '?')} MB")
    print(data["output"])
    return 0


def check(source_dir: Path) -> int:
    """setup.sh's last step: the bundle reads, and the libraries import (their caches built now,
    not while a student waits)."""
    import nbformat

    settings = json.loads((source_dir / SETTINGS).read_text(encoding="utf-8"))
    nbformat.read(str(source_dir / settings["source"]), as_version=4)
    import matplotlib.pyplot  # noqa: F401  (builds the font cache)
    import torch
    import torchvision

    # torchvision's compiled ops must match this torch (a CUDA torchvision beside a CPU torch fails here,
    # at build time, rather than in every student's first cell)
    torchvision.ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5)

    import dlcourse
    from dlcourse.instructor.grading import engine  # noqa: F401

    print(f"dlcourse {dlcourse.__version__}, torch {torch.__version__}, python {sys.version.split()[0]}: "
          f"bundle for {settings['assignment']} ready")
    return 0


if __name__ == "__main__":
    sys.exit(main())
