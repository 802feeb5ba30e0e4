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
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import nbformat
import pytest

from dlcourse.instructor.authoring.check import find_mutants, solved_notebook
from dlcourse.instructor.cells import grade_id, graded_cells, solution_texts, strip_markers
from dlcourse.instructor.course import load_course
from dlcourse.instructor.grading.batch import BatchOptions, grade_batch
from dlcourse.instructor.source import read_source
from tests.unix_students import Student, create_user, remove_user, student_python

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "00_setup"
COURSE_ID = "dl101"
WRONG_ANSWER = "grad_f.wrong-sign"  # a mutant of autograder/00_setup/mutants.toml: the product rule, one sign wrong
COURSE_PARTS = ["pyproject.toml", "notebooks", "assignments", "autograder", "data"]
NOT_COPIED = shutil.ignore_patterns("gradebook.db", "autograded", "feedback", "submitted", "source", "release",
                                    "cache", "__pycache__", ".ipynb_checkpoints")

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="creating the students' Unix users needs root (CI runs as root)")


def run(command: list[str], cwd: Path, env: dict, timeout: int = 600) -> str:
    """Run the instructor's `command`; its output, or a failure that shows it."""
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{output}"
    return output


def page_text(page: str) -> str:
    """An HTML page's text as a reader sees it (code highlighting splits lines into spans)."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def hidden_and_visible_lines(source, student: nbformat.NotebookNode) -> tuple[set[str], set[str]]:
    """Lines only the hidden tests hold (none of them in the student notebook), and lines of visible tests."""
    student_notebook = "\n".join(cell.source for cell in student.cells)
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
def students() -> list[Student]:
    """Two fresh Unix users (unique names, home folders), removed afterwards with their homes."""
    names = [f"dlcx-{uuid.uuid4().hex[:8]}-{who}" for who in ("right", "wrong")]
    created = []
    try:
        for name in names:
            created.append(name)
            create_user(name)
        yield [Student(name) for name in names]
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


@pytest.mark.slow
@as_root
def test_exchange_round_trip_with_two_student_users(students, scratch, tmp_path):
    right, wrong = students
    # The exchange as a JupyterHub admin makes it (nbgrader's docs): a folder everyone may write.
    exchange = scratch / "exchange"
    exchange.mkdir()
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
    python = student_python(right, scratch / "student-env")
    for student, mistake in ((right, None), (wrong, WRONG_ANSWER)):
        student.python = python
        student.run("sh", "-c", f"mkdir -p .jupyter && echo 'c.Exchange.root = \"{exchange}\"' > .jupyter/nbgrader_config.py")
        if student is right:  # what a student sees in the exchange (once: each nbgrader command takes seconds)
            assert f"{COURSE_ID} {ASSIGNMENT}" in student.nbgrader("list", "--course", COURSE_ID)
        student.nbgrader("fetch_assignment", ASSIGNMENT, "--course", COURSE_ID)
        fetched = student.home / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        assert fetched.stat().st_uid == student.uid
        answer = scratch / f"{student.name}.ipynb"  # what the student typed, handed to them to save over their copy
        nbformat.write(answered(fetched, source, mistake), str(answer))
        answer.chmod(0o644)
        student.run("cp", str(answer), str(fetched))
        student.nbgrader("submit", ASSIGNMENT, "--course", COURSE_ID)

    # Collect: nbgrader checks each hand-in belongs to the user it names.
    collected = run([*nbgrader, "collect", ASSIGNMENT], autograder, instructor)
    assert "cheating attempt" not in collected, collected
    for student in students:
        folder = autograder / "submitted" / student.name / ASSIGNMENT
        assert {p.name for p in folder.iterdir()} >= {f"{ASSIGNMENT}.ipynb", "timestamp.txt", "submission_secret.txt"}

    # Grade the collected tree with dlcourse, then nbgrader's own export reads the same gradebook.
    grades = tmp_path / "grades.csv"
    run([str(bin_dir / "dlcourse"), "grade", ASSIGNMENT, "autograder/submitted", "--csv", str(grades),
         "--feedback", "autograder/feedback", "--no-progress"], course, instructor)
    with open(grades, newline="") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    assert set(rows) == {s.name for s in students} and {r["status"] for r in rows.values()} == {"graded"}
    top = float(rows[right.name]["max score"])
    assert float(rows[right.name]["score"]) == top > 0
    assert 0 < float(rows[wrong.name]["score"]) < top
    lost = [column.split(" (")[0] for column, points in rows[wrong.name].items()
            if column.endswith(")") and points != rows[right.name][column]]
    tests = {grade_id(cell): cell.source for cell in graded_cells(source, "tests")}
    assert lost and all("grad_f" in tests[test] for test in lost), lost  # only the gradient's tests failed
    run([*nbgrader, "export", "--to", str(tmp_path / "nbgrader-grades.csv")], autograder, instructor)
    with open(tmp_path / "nbgrader-grades.csv", newline="") as f:
        exported = {row["student_id"]: float(row["raw_score"]) for row in csv.DictReader(f)}
    assert exported == {s.name: float(rows[s.name]["score"]) for s in students}

    # Feedback: dlcourse's pages (no hidden test), returned through the exchange, fetched by each student.
    run([*nbgrader, "release_feedback", ASSIGNMENT], autograder, instructor)
    hidden, visible = hidden_and_visible_lines(source, nbformat.read(str(released), as_version=4))
    assert hidden and visible
    for student in students:
        student.nbgrader("fetch_feedback", ASSIGNMENT, "--course", COURSE_ID)
        pages = list((student.home / ASSIGNMENT / "feedback").glob(f"*/{ASSIGNMENT}.html"))
        assert len(pages) == 1, f"{student.name}: feedback pages fetched: {pages}"
        assert pages[0].stat().st_uid == student.uid
        page = pages[0].read_text(encoding="utf-8")
        assert f"Autograded score: {float(rows[student.name]['score']):g} / {top:g}" in page
        other = wrong if student is right else right
        assert student.name in page and other.name not in page
        text = page_text(page)
        assert visible & set(text.splitlines()) and not {line for line in hidden if line in text}
