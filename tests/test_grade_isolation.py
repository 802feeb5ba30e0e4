"""What a submission's kernel can reach: only its working copy (its own files and
the assignment's public files), a private /tmp, and read-only Python packages.

A probe cell in a submission tries everything and prints a JSON report; the test
reads it from the executed notebook.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import socket
import tempfile
from pathlib import Path

import pytest

from dlcourse.instructor.grading.engine import grade_notebook
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
report["pid"] = os.getpid()
report["processes"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
import subprocess
subprocess.Popen(["sleep", "300", PATHS["marker"]], start_new_session=True)  # a daemon left behind
print("REPORT" + json.dumps(report))
'''


@pytest.fixture(scope="module")
def probe(tmp_path_factory, template):
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
                 "other_student": str(other), "home": home_secret,
                 "mutants": str(course.mutants_path("99_redteam")), "shadow": "/etc/shadow"},
        "write": {"course": str(root / "planted.txt"), "package": str(
            __import__("dlcourse").__file__ + ".planted"), "etc": "/etc/planted"},
        "port": server.getsockname()[1],
        "marker": f"{secrets.token_hex(8)}",
    }
    nb = insert_after(with_solution(student, CORRECT), "square", f"PATHS = {json.dumps(paths)}\n" + PROBE)
    try:
        result, executed = grade_notebook(nb, source, files={"data.csv": public}, notebook_name="99_redteam.ipynb",
                                          template=template)
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
    from dlcourse.instructor.grading.policy import default_expose

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


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                found.append(int(entry))
        except OSError:
            pass
    return found


def test_the_kernel_sees_only_its_own_processes(probe):
    result, report, _, _ = probe
    assert result.isolation["pids"] is True
    assert report["pid"] == 1 and report["processes"] == [1]  # not the grader, not other submissions


def test_nothing_a_submission_starts_outlives_its_grading(probe):
    _, _, _, paths = probe
    assert _processes_with(paths["marker"]) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="the test becomes an unprivileged user; that needs root")
def test_without_root_the_hidden_folders_stay_hidden():
    """The path a grader without root takes: a user namespace, in which the kernel would hold every
    capability; it must not be able to unmount the covers (here: the private /tmp over everyone's)."""
    from dlcourse.instructor.grading import sandbox
    from dlcourse.instructor.grading.protocol import KernelConfig

    outside = Path(tempfile.mkdtemp(prefix="dlcourse-secret-"))
    (outside / "answers.txt").write_text("42")
    workdir = Path(tempfile.mkdtemp(prefix="dlcourse-work-"))
    for folder in (outside, workdir):
        os.chmod(folder, 0o777)
    os.chmod(outside / "answers.txt", 0o644)
    libc = ctypes.CDLL(None, use_errno=True)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child becomes "nobody", then confines itself as a kernel of a non-root grader would
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            libc.prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: setuid cleared it, a grader started as nobody has it
            report = sandbox.enter(KernelConfig(workdir=str(workdir), env={}, memory_mb=None))
            seen = {"report": report, "uid": os.getuid(), "pid": os.getpid(),
                    "unmount_tmp": libc.umount2(b"/tmp", 2), "unmount_proc": libc.umount2(b"/proc", 2)}
            seen["secret_visible"] = (outside / "answers.txt").exists()
            os.write(write, json.dumps(seen).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    os.waitpid(pid, 0)
    seen = json.loads(text)
    assert seen["uid"] == 65534 and seen["report"]["namespaces"] and seen["report"]["pids"], seen
    assert seen["pid"] == 1 and seen["report"]["errors"] == [], seen
    assert seen["unmount_tmp"] == -1 and seen["unmount_proc"] == -1, seen
    assert seen["secret_visible"] is False, seen
