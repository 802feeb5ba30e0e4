"""What a submission's kernel can reach: only its working copy (its own files and
the assignment's public files), a private /tmp, and read-only Python packages.

A probe cell in a submission tries everything and prints a JSON report; the test
reads it from the executed notebook.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import socket

import pytest

from dlcourse.grading.engine import grade_notebook
from tests.redteam.course import CORRECT, build_course, insert_after, with_solution

PROBE = r'''
import json, os, socket
report = {"uid": os.getuid(), "cwd": sorted(os.listdir(".")), "read": {}, "write": {}, "net": None}
for name, path in PATHS["read"].items():
    try:
        open(path, "rb").read(10)
        report["read"][name] = "READABLE"
    except OSError as error:
        report["read"][name] = type(error).__name__
for name, path in PATHS["write"].items():
    try:
        open(path, "w").write("x")
        report["write"][name] = "WRITABLE"
    except OSError as error:
        report["write"][name] = type(error).__name__
try:
    socket.create_connection(("127.0.0.1", PATHS["port"]), timeout=2)
    report["net"] = "CONNECTED"
except OSError as error:
    report["net"] = type(error).__name__
open("own_file.txt", "w").write("fine")
import tempfile
with tempfile.TemporaryDirectory() as private:
    report["tmp"] = sorted(os.listdir("/tmp"))
report["cwd_name"] = os.path.basename(os.getcwd())
report["hidden_in_copy"] = ("hidden " + "scalar") in open("99_redteam.ipynb").read()
print("REPORT" + json.dumps(report))
'''


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    root = tmp_path_factory.mktemp("isolation")
    course, source, student = build_course(root)
    gradebook = root / "autograder" / "gradebook.db"
    gradebook.parent.mkdir(parents=True, exist_ok=True)
    gradebook.write_text("secret grades")
    other = root / "submitted" / "alice" / "99_redteam" / "99_redteam.ipynb"
    other.parent.mkdir(parents=True)
    other.write_text("{}")
    public = root / "assignments" / "99_redteam" / "data.csv"
    public.parent.mkdir(parents=True, exist_ok=True)
    public.write_text("1,2,3\n")
    home_secret = os.path.expanduser("~/.dlcourse-isolation-probe")
    with open(home_secret, "w") as f:
        f.write("instructor's home")
    server = socket.create_server(("127.0.0.1", 0))
    paths = {
        "read": {"source": str(course.source_path("99_redteam")), "gradebook": str(gradebook),
                 "other_student": str(other), "home": home_secret, "mutants_dir_file": str(
                     next(course.mutants_dir("99_redteam").iterdir())), "shadow": "/etc/shadow"},
        "write": {"course": str(root / "planted.txt"), "package": str(
            __import__("dlcourse").__file__ + ".planted"), "etc": "/etc/planted"},
        "port": server.getsockname()[1],
    }
    nb = insert_after(with_solution(student, CORRECT), "square", f"PATHS = {json.dumps(paths)}\n" + PROBE)
    try:
        result, executed = grade_notebook(nb, source, files={"data.csv": public}, notebook_name="99_redteam.ipynb")
    finally:
        server.close()
        os.unlink(home_secret)
    text = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    report = json.loads(text.split("REPORT", 1)[1].splitlines()[0])
    return result, report, root, paths


def test_the_kernel_cannot_read_instructor_files_gradebook_or_other_students(probe):
    result, report, _, _ = probe
    assert result.score == 3
    assert set(report["read"].values()) <= {"FileNotFoundError", "PermissionError"}, report["read"]


def test_the_kernel_cannot_write_outside_its_copy(probe):
    _, report, root, paths = probe
    assert set(report["write"].values()) <= {"FileNotFoundError", "PermissionError", "OSError"}, report["write"]
    assert not (root / "planted.txt").exists()
    assert not os.path.exists(paths["write"]["package"])


def test_the_working_copy_holds_only_the_students_notebook_and_public_files(probe):
    _, report, _, _ = probe
    assert report["cwd"] == ["99_redteam.ipynb", "data.csv"]
    # /tmp is private: only the copy's own mount point, what the kernel made itself, and
    # (when the course checkout itself lives under /tmp, as in a CI clone) the folder that
    # leads to its read-only public parts: Python, the package and its data.
    from dlcourse.grading.engine import default_expose

    public_roots = {Path(p).relative_to("/tmp").parts[0] for p in default_expose() if Path(p).is_relative_to("/tmp")}
    listed = [n for n in report["tmp"] if not n.startswith("tmp") and n not in public_roots]
    assert listed == [report["cwd_name"]]


def test_no_network(probe):
    _, report, _, _ = probe
    assert report["net"] != "CONNECTED"
    assert probe[0].isolation["network"] is False


@pytest.mark.skipif(os.geteuid() != 0, reason="a separate user needs root")
def test_runs_as_its_own_unprivileged_user(probe):
    _, report, _, _ = probe
    assert report["uid"] >= 1_000_000 and report["uid"] == probe[0].isolation["user"]


def test_the_notebook_in_the_copy_has_no_hidden_tests(probe):
    """The copy holds the notebook as handed in, never the restored one with hidden tests."""
    assert probe[1]["hidden_in_copy"] is False
