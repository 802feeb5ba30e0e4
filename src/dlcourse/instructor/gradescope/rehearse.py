"""`dlcourse gradescope NN --try NOTEBOOK`: grade one notebook with the bundle just built, the way
Gradescope will, before uploading it. Runs in the instructor's process; the grading itself runs in a
child process started by the bundle's own `run_autograder`, in a scratch folder laid out like
Gradescope's /autograder (source/ the unzipped bundle, submission/ the notebook, results/).

The one difference from Gradescope: the Python is this machine's (with the dlcourse it runs), not the
one the bundle's setup.sh installs; the settings, limits, isolation and results.json are the bundle's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from dlcourse.instructor.course import CourseError
from dlcourse.instructor.gradescope.bundle import extract
from dlcourse.tables import format_table


def try_bundle(bundle: Path, notebook: Path) -> dict:
    """results.json of `notebook` graded by the bundle's run_autograder, in a scratch /autograder."""
    notebook = Path(notebook)
    if not notebook.is_file():
        raise CourseError(f"{notebook}: no such notebook to try the bundle on")
    root = Path(tempfile.mkdtemp(prefix="dlcourse-gradescope-try-"))
    try:
        extract(bundle, root)
        shutil.copyfile(notebook, root / "submission" / notebook.name)
        settings = json.loads((root / "source" / "settings.json").read_text(encoding="utf-8"))
        limit = settings["limits"]["timeout_s"] + 120  # run.py stops itself at its own limit before this
        env = {**os.environ, "AUTOGRADER_ROOT": str(root), "DLCOURSE_PYTHON": sys.executable}
        try:
            subprocess.run([str(root / "run_autograder")], cwd=root, env=env, capture_output=True, text=True,
                           timeout=limit)
        except subprocess.TimeoutExpired:
            raise CourseError(f"run_autograder ran past {limit:g} s without writing a result") from None
        results = root / "results" / "results.json"
        if not results.exists():
            raise CourseError("run_autograder wrote no results.json (Gradescope would show the student nothing)")
        return json.loads(results.read_text(encoding="utf-8"))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def format_results(data: dict, notebook: Path) -> list[str]:
    """What Gradescope would show: each test with its score, when students see it, and its first line of
    output; the total and the run's own message."""
    rows = []
    for test in data.get("tests", []):
        score = (f"{test['score']:g}/{test['max_score']:g}" if "max_score" in test else "by hand")
        output = (test.get("output") or "").strip().splitlines()
        rows.append((test.get("name", "?")[:60], score, test.get("visibility", "-"), output[0][:80] if output else ""))
    autograded = sum(t.get("max_score", 0) for t in data.get("tests", []))
    lines = [f"{notebook.name} graded as Gradescope would (this machine's Python): "
             f"{data.get('score', 0):g}/{autograded:g}"
             + (f", {data['extra_data']['status']}" if isinstance(data.get("extra_data"), dict)
                and data["extra_data"].get("status") not in (None, "graded") else "")]
    lines += ["  " + line for line in format_table(("test", "score", "students see it", "output"), rows)]
    message = (data.get("output") or "").strip().splitlines()
    lines += [f"  {line}" for line in message[:6]]
    return lines
