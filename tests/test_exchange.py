"""nbgrader's exchange round trip on this course, as on a JupyterHub: real Unix users, real nbgrader
commands, nbgrader's default exchange (`ExchangeFactory` unset) in a local folder.

The instructor (root, as CI runs) releases 00_setup with `nbgrader release_assignment`; two students,
each a Unix user this test creates, fetch it with `nbgrader fetch_assignment`, answer it (one right, one
with a wrong gradient) and hand it in with `nbgrader submit`; the instructor collects with `nbgrader
collect`, grades with `dlcourse grade --feedback autograder/feedback` and returns the pages with `nbgrader
release_feedback`; each student fetches their own with `nbgrader fetch_feedback`. The README's section
"JupyterHub and nbgrader's exchange" gives the same commands.
"""

from __future__ import annotations

import csv
import html
import importlib.metadata
import os
import pwd
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import uuid
from pathlib import Path

import nbformat
import pytest

from dlcourse.instructor.authoring.check import find_mutants, solved_notebook
from dlcourse.instructor.cells import graded_cells, solution_texts, strip_markers
from dlcourse.instructor.course import load_course
from dlcourse.instructor.grading.batch import BatchOptions, grade_batch
from dlcourse.instructor.source import read_source

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "00_setup"
COURSE_ID = "dl101"
WRONG_ANSWER = "grad_f.wrong-sign"  # a mutant of autograder/00_setup/mutants.toml: the product rule, one sign wrong
COURSE_PARTS = ["pyproject.toml", "notebooks", "assignments", "autograder", "data"]
NOT_COPIED = shutil.ignore_patterns("gradebook.db", "autograded", "feedback", "submitted", "source", "release",
                                    "cache", "__pycache__", ".ipynb_checkpoints")

SBIN = f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"  # useradd and runuser live here; CI's PATH may lack it


def tool(name: str) -> str:
    found = shutil.which(name, path=SBIN)
    if found is None:
        pytest.fail(f"{name} not found: run .ci/setup (apt-get install passwd util-linux)")
    return found


as_root = pytest.mark.skipif(os.geteuid() != 0, reason="creating the students' Unix users needs root (CI runs as root)")


def run(command: list[str], cwd: Path, env: dict, user: str | None = None, timeout: int = 300) -> str:
    """Run `command` (as `user`, through runuser, when given); its output, or a failure that shows it."""
    if user is not None:
        command = [tool("runuser"), "-u", user, "--", *command]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{output}"
    return output


def create_user(name: str) -> Path:
    subprocess.run([tool("useradd"), "--create-home", "--shell", "/bin/sh", "--user-group", name],
                   check=True, capture_output=True, text=True)
    return Path(pwd.getpwnam(name).pw_dir)


def remove_user(name: str) -> None:
    subprocess.run([tool("userdel"), "--remove", name], capture_output=True)


def nbgrader_closure() -> list[importlib.metadata.Distribution]:
    """nbgrader and every distribution it requires (extras asked for included), installed here."""
    from packaging.requirements import Requirement

    found: dict[str, importlib.metadata.Distribution] = {}
    done: set[tuple[str, str]] = set()
    todo = [("nbgrader", "")]
    while todo:
        name, extra = todo.pop()
        name = re.sub(r"[-_.]+", "-", name).lower()
        if (name, extra) in done:
            continue
        done.add((name, extra))
        try:
            found.setdefault(name, importlib.metadata.distribution(name))
        except importlib.metadata.PackageNotFoundError:
            continue
        for line in found[name].requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": extra}):
                todo += [(requirement.name, wanted) for wanted in ("", *requirement.extras)]
    return list(found.values())


def as_user(user: str, home: Path, command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([tool("runuser"), "-u", user, "--", *command], cwd=home, capture_output=True, text=True,
                          env={"HOME": str(home), "USER": user, "LOGNAME": user, "PATH": "/usr/bin:/bin"})


def interpreter_for(user: str, home: Path) -> str:
    """A Python of this version that `user` may run: this one's base interpreter, else the system's
    (a pyenv or uv interpreter under /root is closed to other users)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [os.path.realpath(sys.executable), os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
                  f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for candidate in dict.fromkeys(candidates):
        runs = as_user(user, home, [candidate, "-c", "import sys, venv; print('%d.%d' % sys.version_info[:2])"])
        if runs.returncode == 0 and runs.stdout.strip() == version:
            return candidate
    pytest.fail(f"no Python {version} that other users may run (tried {', '.join(candidates)}): students need "
                f"one, as on a JupyterHub; install python{version} system-wide (apt-get install python{version})")


def link_tree(files: list[Path], origin: Path, target: Path) -> None:
    """`files` (under `origin`) at the same places under `target`: hard links, copies across file systems."""
    for path in files:
        destination = target / path.relative_to(origin)
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, destination)
        except FileExistsError:
            pass
        except OSError:
            shutil.copy2(path, destination)


# Reads nbgrader's first file, as a student's Python must (importing it all takes seconds).
READS_NBGRADER = "import importlib.util; open(importlib.util.find_spec('nbgrader').origin).close()"


def student_python(user: str, home: Path, folder: Path) -> str:
    """The Python the students run nbgrader with: a venv in `folder` (readable by all) on an interpreter
    they may run, seeing this environment's packages where they may read them, else holding nbgrader and
    its requirements linked from here. On a JupyterHub students run a shared environment; a checkout
    under /root (a CI clone) is closed to them."""
    subprocess.run([interpreter_for(user, home), "-m", "venv", "--without-pip", str(folder)], check=True)
    python = str(folder / "bin" / "python")
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               check=True, capture_output=True, text=True).stdout.strip())
    ours = Path(sysconfig.get_path("purelib")).resolve()
    readable = as_user(user, home, [python, "-c", f"import sys; sys.path.append({str(ours)!r}); {READS_NBGRADER}"])
    if readable.returncode == 0:
        (site / "instructor-environment.pth").write_text(f"{ours}\n", encoding="utf-8")
    else:
        files = [Path(dist.locate_file(f)).resolve() for dist in nbgrader_closure() for f in dist.files or []]
        link_tree([f for f in files if f.is_file() and ours in f.parents], ours, site)
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    works = as_user(user, home, [python, "-c", READS_NBGRADER])
    assert works.returncode == 0, f"the students' Python cannot read nbgrader:\n{works.stderr}"
    return python


def page_text(page: str) -> str:
    """An HTML page's text as a reader sees it (code highlighting splits lines into spans)."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def hidden_and_visible_lines(source, student_notebook: str) -> tuple[set[str], set[str]]:
    """Lines only the hidden tests hold (none of them in the student notebook), and lines of visible tests."""
    hidden, visible = set(), set()
    for cell in graded_cells(source, "tests"):
        shown = strip_markers(cell.source, keep_hidden=False).splitlines()
        visible |= {line.strip() for line in shown if len(line.strip()) > 20}
        hidden |= {line.strip() for line in strip_markers(cell.source, keep_hidden=True).splitlines()
                   if len(line.strip()) > 20 and line not in shown and line.strip() not in student_notebook}
    return hidden, visible


def answered(fetched: Path, source, wrong: str | None) -> nbformat.NotebookNode:
    """The fetched notebook with every exercise answered: the solution, or with mutant `wrong` applied."""
    student = nbformat.read(str(fetched), as_version=4)
    if wrong is None:
        return solved_notebook(student, source)
    mutant = {m.label: m for m in find_mutants(load_course(ROOT), ASSIGNMENT, source)}[wrong]
    return solved_notebook(student, source, {mutant.grade_id: mutant.apply(solution_texts(source)[mutant.grade_id])})


@pytest.fixture
def students():
    """Two fresh Unix users (unique names, home folders), removed afterwards with their homes."""
    names = [f"dlcx-{uuid.uuid4().hex[:8]}-{who}" for who in ("right", "wrong")]
    created = []
    try:
        for name in names:
            created.append(name)
            create_user(name)
        yield names
    finally:
        for name in created:
            remove_user(name)


@pytest.fixture
def scratch():
    """A folder the students can reach (pytest's tmp_path is root's own, mode 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="dlcourse-exchange-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_feedback_page_carries_the_exchange_receipt(demo_course, tmp_path):
    """What `nbgrader release_feedback` reads beside a page comes from the collected submission; a
    submission without a receipt (not from the exchange) gets none."""
    from tests.test_grade_batch import solved

    tree = tmp_path / "submitted"
    for student in ("alice", "bob"):
        (tree / student / "99_demo").mkdir(parents=True)
        nbformat.write(solved(demo_course), str(tree / student / "99_demo" / "99_demo.ipynb"))
    (tree / "alice" / "99_demo" / "timestamp.txt").write_text("2026-12-07 14:00:00.000000 UTC")
    (tree / "alice" / "99_demo" / "submission_secret.txt").write_text("a1b2c3")
    feedback = tmp_path / "feedback"
    grade_batch(demo_course, "99_demo", tree, BatchOptions(progress=False, feedback_dir=feedback), log=lambda *_: None)
    assert (feedback / "alice" / "99_demo" / "submission_secret.txt").read_text() == "a1b2c3"
    assert (feedback / "alice" / "99_demo" / "timestamp.txt").read_text() == "2026-12-07 14:00:00.000000 UTC"
    assert sorted(p.name for p in (feedback / "bob" / "99_demo").iterdir()) == ["99_demo.html"]


@as_root
def test_exchange_round_trip_with_two_student_users(students, scratch, tmp_path):
    right, wrong = students
    # The exchange as a JupyterHub admin makes it (nbgrader's docs): a folder everyone may write.
    exchange = scratch / "exchange"
    exchange.mkdir(mode=0o777)
    exchange.chmod(0o777)

    # The instructor's course: a copy of this one, its nbgrader config told the course id and the exchange.
    course = tmp_path / "course"
    course.mkdir()
    for part in COURSE_PARTS:
        if (ROOT / part).is_dir():
            shutil.copytree(ROOT / part, course / part, ignore=NOT_COPIED)
        else:
            shutil.copy2(ROOT / part, course / part)
    autograder = course / "autograder"
    with open(autograder / "nbgrader_config.py", "a", encoding="utf-8") as config:
        config.write(f'\nc.CourseDirectory.course_id = "{COURSE_ID}"\nc.Exchange.root = "{exchange}"\n')
    bin_dir = Path(sys.executable).parent
    instructor = dict(os.environ, DLCOURSE_ROOT=str(course), DLCOURSE_OFFLINE="1",
                      JUPYTER_CONFIG_DIR=str(tmp_path / "instructor-jupyter"),
                      PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    nbgrader = [sys.executable, "-m", "nbgrader"]

    # Release: the student notebook `dlcourse build` wrote, as nbgrader's release/ folder (the README's commands).
    run(["sh", "-c", f"mkdir -p release && cp -r ../assignments/{ASSIGNMENT} release/"], autograder, instructor)
    run([*nbgrader, "release_assignment", ASSIGNMENT], autograder, instructor)
    released = exchange / COURSE_ID / "outbound" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert released.is_file()

    # Each student: the hub's config (the exchange) in their home, fetch, answer, submit, as that user.
    source = read_source(course / "notebooks" / ASSIGNMENT / f"{ASSIGNMENT}.py")
    homes = {name: Path(pwd.getpwnam(name).pw_dir) for name in students}
    python = student_python(right, homes[right], scratch / "student-env")
    for name, mistake in ((right, None), (wrong, WRONG_ANSWER)):
        home = homes[name]
        env = {"HOME": str(home), "USER": name, "LOGNAME": name, "LANG": "C.UTF-8",
               "PATH": f"{Path(python).parent}:/usr/bin:/bin"}
        run(["sh", "-c", f"mkdir -p .jupyter && echo 'c.Exchange.root = \"{exchange}\"' > .jupyter/nbgrader_config.py"],
            home, env, user=name)
        if name == right:  # what a student sees in the exchange (once: each nbgrader command takes seconds)
            listed = run([python, "-m", "nbgrader", "list", "--course", COURSE_ID], home, env, user=name)
            assert f"{COURSE_ID} {ASSIGNMENT}" in listed
        run([python, "-m", "nbgrader", "fetch_assignment", ASSIGNMENT, "--course", COURSE_ID], home, env, user=name)
        fetched = home / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        assert fetched.stat().st_uid == pwd.getpwnam(name).pw_uid
        answer = scratch / f"{name}.ipynb"  # what the student typed, handed to them to save over their copy
        nbformat.write(answered(fetched, source, mistake), str(answer))
        answer.chmod(0o644)
        run(["cp", str(answer), str(fetched)], home, env, user=name)
        run([python, "-m", "nbgrader", "submit", ASSIGNMENT, "--course", COURSE_ID], home, env, user=name)

    # Collect: nbgrader checks each hand-in belongs to the user it names.
    collected = run([*nbgrader, "collect", ASSIGNMENT], autograder, instructor)
    assert "cheating attempt" not in collected, collected
    for name in students:
        folder = autograder / "submitted" / name / ASSIGNMENT
        assert {p.name for p in folder.iterdir()} >= {f"{ASSIGNMENT}.ipynb", "timestamp.txt", "submission_secret.txt"}

    # Grade the collected tree with dlcourse, then nbgrader's own export reads the same gradebook.
    grades = tmp_path / "grades.csv"
    done = subprocess.run([str(bin_dir / "dlcourse"), "grade", ASSIGNMENT, "autograder/submitted", "--csv", str(grades),
                           "--feedback", "autograder/feedback", "--no-progress"],
                          cwd=course, env=instructor, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    with open(grades, newline="") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    assert set(rows) == set(students) and {r["status"] for r in rows.values()} == {"graded"}
    top = float(rows[right]["max score"])
    assert float(rows[right]["score"]) == top > 0
    assert 0 < float(rows[wrong]["score"]) < top  # the gradient's tests fail, the rest pass
    run([*nbgrader, "export", "--to", str(tmp_path / "nbgrader-grades.csv")], autograder, instructor)
    with open(tmp_path / "nbgrader-grades.csv", newline="") as f:
        exported = {row["student_id"]: float(row["raw_score"]) for row in csv.DictReader(f)}
    assert exported == {name: float(rows[name]["score"]) for name in students}

    # Feedback: dlcourse's pages (no hidden test), returned through the exchange, fetched by each student.
    run([*nbgrader, "release_feedback", ASSIGNMENT], autograder, instructor)
    hidden, visible = hidden_and_visible_lines(source, released.read_text(encoding="utf-8"))
    assert hidden and visible
    for name in students:
        home = homes[name]
        env = {"HOME": str(home), "USER": name, "LOGNAME": name, "LANG": "C.UTF-8",
               "PATH": f"{Path(python).parent}:/usr/bin:/bin"}
        run([python, "-m", "nbgrader", "fetch_feedback", ASSIGNMENT, "--course", COURSE_ID], home, env, user=name)
        pages = list((home / ASSIGNMENT / "feedback").glob(f"*/{ASSIGNMENT}.html"))
        assert len(pages) == 1, f"{name}: feedback pages fetched: {pages}"
        assert pages[0].stat().st_uid == pwd.getpwnam(name).pw_uid
        page = pages[0].read_text(encoding="utf-8")
        assert f"Autograded score: {float(rows[name]['score']):g} / {top:g}" in page
        assert name in page and (wrong if name == right else right) not in page
        text = page_text(page)
        assert visible & set(text.splitlines()) and not {line for line in hidden if line in text}
