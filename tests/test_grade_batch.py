"""`dlcourse grade` on a batch: inputs (folder, nbgrader tree, LMS zip), the CSV,
the gradebook (read back with nbgrader's API), feedback, skipping what is
graded, crash safety, concurrent gradebook writes, GPU defaults."""

from __future__ import annotations

import copy
import csv
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from dlcourse.instructor.authoring.build import student_notebook
from dlcourse.instructor.source import read_source
from dlcourse.cli import main
from dlcourse.instructor.grading import batch, settings
from dlcourse.instructor.grading.batch import BatchOptions, grade_batch, summary_table
from dlcourse.instructor.grading.engine import CellScore, GradeResult
from dlcourse.instructor.grading.gradebook import GradebookWriter
from dlcourse.instructor.grading.submissions import find_submissions

CORRECT = "def double(x):\n    return 2 * x\n"
HIDDEN_LINE = "assert double(-3.5) == -7.0"


def solved(course, code=CORRECT):
    nb = student_notebook(course, "99_demo")
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "double":
            cell.source = code
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "why_double":
            cell.source = "Because 2(a + b) = 2a + 2b."
    return nb


def make_batch(course, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(solved(course), str(folder / "alice.ipynb"))
    nbformat.write(student_notebook(course, "99_demo"), str(folder / "bob.ipynb"))
    (folder / "carol.ipynb").write_text('{"cells": [')
    return folder


def quiet(*_):
    pass


def test_grade_a_folder_writes_csv_gradebook_feedback(demo_course, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DLCOURSE_ROOT", str(demo_course.root))
    folder = make_batch(demo_course, tmp_path / "batch")
    table = tmp_path / "grades.csv"
    feedback = demo_course.root / "autograder" / "feedback"
    assert main(["grade", "99_demo", str(folder), "--csv", str(table), "--no-progress", "--workers", "2",
                 "--feedback", str(feedback)]) == 0
    out = capsys.readouterr().out
    assert "alice" in out and "invalid notebook" in out and "review carol" in out
    with open(table) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["student", "assignment", "score", "max score", "test_double (2)", "why_double (1)",
                       "status", "flags", "seconds", "message"]
    by_student = {r[0]: r for r in rows[1:]}
    assert by_student["alice"][2:5] == ["2", "2", "2"] and by_student["alice"][5] == ""  # manual: empty
    assert by_student["bob"][2] == "0" and by_student["bob"][6] == "graded"
    assert by_student["bob"][5] == "0"  # the written answer as it was handed out: no response, 0 (as nbgrader)
    assert by_student["carol"][6] == "invalid notebook" and "malformed JSON" in by_student["carol"][9]
    # nbgrader's own API reads the same gradebook
    with Gradebook(f"sqlite:///{demo_course.root / 'autograder' / 'gradebook.db'}") as gb:
        assert gb.find_submission("99_demo", "alice").score == 2
        assert gb.find_submission("99_demo", "bob").score == 0
        assert gb.find_submission_notebook("99_demo", "99_demo", "carol").flagged
        assert gb.find_grade("why_double", "99_demo", "99_demo", "alice").needs_manual_grade
    autograded = demo_course.root / "autograder" / "autograded" / "alice" / "99_demo" / "99_demo.ipynb"
    assert autograded.exists()  # what the formgrader shows
    page = (feedback / "alice" / "99_demo" / "99_demo.html").read_text()
    assert "test_double: passed" in page and "double(2) should be 4" in page
    assert HIDDEN_LINE not in page and "hidden negative-number" not in page.split("test_double: passed")[0][-2000:]


def test_rerun_skips_graded_force_regrades_and_a_changed_file_is_graded_again(demo_course, tmp_path):
    folder = make_batch(demo_course, tmp_path / "batch")
    options = BatchOptions(progress=False, workers=2)
    first = grade_batch(demo_course, "99_demo", folder, options, log=quiet)
    assert not any(r.skipped for r in first)
    again = grade_batch(demo_course, "99_demo", folder, options, log=quiet)
    assert all(r.skipped for r in again) and [r.score for r in again] == [r.score for r in first]
    nbformat.write(solved(demo_course), str(folder / "bob.ipynb"))  # bob resubmits
    third = {r.student: r for r in grade_batch(demo_course, "99_demo", folder, options, log=quiet)}
    assert not third["bob"].skipped and third["bob"].score == 2 and third["alice"].skipped
    forced = grade_batch(demo_course, "99_demo", folder, BatchOptions(progress=False, force=True), log=quiet)
    assert not any(r.skipped for r in forced)


def test_nbgrader_submitted_tree_with_extra_files(demo_course, tmp_path):
    tree = tmp_path / "submitted"
    for student, code in (("alice", CORRECT), ("bob", "def double(x):\n    return open('helper.txt').read()\n")):
        folder = tree / student / "99_demo"
        folder.mkdir(parents=True)
        nbformat.write(solved(demo_course, code), str(folder / "99_demo.ipynb"))
    (tree / "bob" / "99_demo" / "helper.txt").write_text("x")
    found = find_submissions(tree, "99_demo")
    assert [s.student for s in found] == ["alice", "bob"] and list(found[1].files) == ["helper.txt"]
    rows = {r.student: r for r in grade_batch(demo_course, "99_demo", tree, BatchOptions(progress=False), log=quiet)}
    assert rows["alice"].score == 2 and rows["bob"].score == 0 and rows["bob"].status == "graded"


def test_lms_zips(demo_course, tmp_path):
    nb = nbformat.writes(solved(demo_course))
    canvas = tmp_path / "canvas.zip"
    with zipfile.ZipFile(canvas, "w") as zf:
        zf.writestr("alice_123_456_99_demo.ipynb", nb)
        zf.writestr("bob_late_124_457_99_demo.ipynb", nb)
        zf.writestr("../../escape.ipynb", nb)
    assert [s.student for s in find_submissions(canvas, "99_demo", tmp_path)] == ["alice", "bob"]
    assert not (tmp_path.parent / "escape.ipynb").exists()
    moodle = tmp_path / "moodle.zip"
    with zipfile.ZipFile(moodle, "w") as zf:
        zf.writestr("Ada Lovelace_991_assignsubmission_file_/99_demo.ipynb", nb)
    assert [s.student for s in find_submissions(moodle, "99_demo", tmp_path)] == ["Ada_Lovelace"]
    tree = tmp_path / "tree.zip"
    with zipfile.ZipFile(tree, "w") as zf:
        zf.writestr("submitted/carol/99_demo/99_demo.ipynb", nb)
    assert [s.student for s in find_submissions(tree, "99_demo", tmp_path)] == ["carol"]
    rows = grade_batch(demo_course, "99_demo", canvas, BatchOptions(progress=False), log=quiet)
    assert [(r.student, r.score) for r in rows] == [("alice", 2), ("bob", 2)]


def test_concurrent_gradebook_writes_from_two_graders(demo_course, tmp_path):
    source = read_source(demo_course.source_path("99_demo"))
    url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    writers = [GradebookWriter(url, "99_demo", "99_demo", source) for _ in range(2)]

    def result(points):
        return GradeResult(status="graded", cells=[CellScore("test_double", "tests", 2.0, points),
                                                   CellScore("why_double", "answer", 1.0, None)])

    def write(writer, offset):
        for i in range(15):
            writer.save(f"student{offset + i:03d}", result(float((offset + i) % 3 == 0) * 2))

    threads = [threading.Thread(target=write, args=(w, 100 * k)) for k, w in enumerate(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(writers[0].graded_students()) == 30
    with Gradebook(url) as gb:
        for student in ("student000", "student101", "student114"):
            number = int(student[-3:])
            assert gb.find_submission("99_demo", student).score == (2 if number % 3 == 0 else 0)


def test_a_new_gradebook_is_the_one_nbgrader_creates(tmp_path):
    # nbgrader's `db upgrade` and the formgrader rely on its schema and its alembic revision
    import sqlite3

    from dlcourse.instructor.grading.gradebook import create_gradebook

    Gradebook(f"sqlite:///{tmp_path / 'stock.db'}").close()
    assert create_gradebook(f"sqlite:///{tmp_path / 'ours.db'}")
    Gradebook(f"sqlite:///{tmp_path / 'ours.db'}").close()
    assert not create_gradebook(f"sqlite:///{tmp_path / 'ours.db'}")  # an existing gradebook is left as it is

    def dump(name):
        with sqlite3.connect(tmp_path / name) as db:
            return (sorted(db.execute("SELECT type, name, sql FROM sqlite_master")),
                    list(db.execute("SELECT version_num FROM alembic_version")),
                    list(db.execute("SELECT id FROM course")))

    assert dump("ours.db") == dump("stock.db")


@pytest.mark.slow
def test_a_killed_batch_loses_nothing_and_the_next_run_finishes(demo_course, tmp_path):
    folder = tmp_path / "batch"
    folder.mkdir()
    slow = solved(demo_course, "import time\ntime.sleep(2)\n" + CORRECT)
    for i in range(5):
        nbformat.write(slow, str(folder / f"s{i}.ipynb"))
    env = {**os.environ, "DLCOURSE_ROOT": str(demo_course.root)}
    command = [sys.executable, "-m", "dlcourse.cli", "grade", "99_demo", str(folder), "--workers", "1", "--no-progress"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    autograded = demo_course.root / "autograder" / "autograded"
    deadline = time.time() + 240
    while time.time() < deadline and len(list(autograded.glob("*/99_demo/99_demo.ipynb"))) < 2:
        time.sleep(0.2)
    time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert 2 <= len(list(autograded.glob("*/99_demo/99_demo.ipynb"))) < 5
    assert len(list(folder.glob("*.ipynb"))) == 5  # the submissions are untouched
    rows = grade_batch(demo_course, "99_demo", folder, BatchOptions(progress=False), log=quiet)
    assert [r.score for r in rows] == [2] * 5
    assert 1 <= sum(r.skipped for r in rows) < 5


def test_gpu_defaults(monkeypatch):
    monkeypatch.setattr(settings, "gpu_count", lambda: 2)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert settings.default_workers() == 6
    monkeypatch.setattr(settings, "gpu_count", lambda: 0)
    assert settings.default_workers() == 16


def test_gpu_count_reads_device_nodes_and_cuda_visible_devices(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert settings.gpu_count(tmp_path) == 0
    for name in ("nvidia0", "nvidia1", "nvidia2", "nvidiactl", "nvidia-uvm"):
        (tmp_path / name).touch()
    assert settings.gpu_count(tmp_path) == 3
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert settings.gpu_count(tmp_path) == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,-1,2")  # CUDA ignores everything after an invalid entry
    assert settings.gpu_count(tmp_path) == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert settings.gpu_count(tmp_path) == 0


def test_the_grader_process_does_not_import_torch():
    # torch costs the grader seconds of start-up on the critical path (the kernels' template imports it)
    code = ("import sys, dlcourse.cli, dlcourse.instructor.grading.batch, dlcourse.instructor.grading.cli; "
            "from dlcourse.instructor.grading.settings import default_workers; default_workers(); "
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="no CUDA GPU here")
def test_kernels_run_on_the_gpu_when_there_is_one(demo_course):
    from dlcourse.instructor.grading.engine import grade_notebook

    source = read_source(demo_course.source_path("99_demo"))
    nb = solved(demo_course, "import torch, dlcourse\n"
                "def double(x):\n"
                "    assert dlcourse.get_device().type == 'cuda'\n"
                "    return (torch.tensor(float(x), device='cuda') * 2).item()\n")
    assert grade_notebook(nb, source)[0].score == 2


def test_summary_table_lists_what_to_review():
    rows = [batch.Row("alice", "a", 2, 2, {}, "graded"), batch.Row("bob", "a", 0, 2, {}, "crashed", ["x"], message="died")]
    text = summary_table(rows, 4.0)
    assert "2 submission(s): 1 crashed, 1 graded" in text and "review bob: crashed: died [x]" in text


def test_nbgrader_config_points_at_the_same_gradebook():
    from traitlets.config import Config

    path = Path(__file__).resolve().parents[1] / "autograder" / "nbgrader_config.py"
    config = Config()
    exec(compile(path.read_text(), str(path), "exec"), {"get_config": lambda: config, "__file__": str(path)})
    assert config.CourseDirectory.root == str(path.parent)
    assert config.CourseDirectory.db_url == f"sqlite:///{path.parent / 'gradebook.db'}"
    course = type("C", (), {"root": path.parent.parent})
    assert batch.default_db_url(course) == config.CourseDirectory.db_url


@pytest.mark.slow
def test_nbgrader_export_reads_what_dlcourse_grade_wrote(demo_course, tmp_path):
    folder = make_batch(demo_course, tmp_path / "batch")
    grade_batch(demo_course, "99_demo", folder, BatchOptions(progress=False), log=quiet)
    nbgrader_dir = demo_course.root / "autograder"
    config = (Path(__file__).resolve().parents[1] / "autograder" / "nbgrader_config.py").read_text()
    (nbgrader_dir / "nbgrader_config.py").write_text(config)
    nbgrader = str(Path(sys.executable).with_name("nbgrader"))
    done = subprocess.run([nbgrader, "export", "--to", str(tmp_path / "export.csv")], cwd=nbgrader_dir,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    with open(tmp_path / "export.csv") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    assert float(rows["alice"]["raw_score"]) == 2 and float(rows["bob"]["raw_score"]) == 0


def test_the_formgrader_counts_and_lists_every_graded_submission(demo_course, tmp_path):
    """nbgrader's API, as the formgrader's pages call it: a submission counts only when its copy is in
    submitted/ with the gradebook's time; graded from nbgrader's own submitted/ tree, that tree is untouched."""
    from nbgrader.apps.api import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    folder = make_batch(demo_course, tmp_path / "batch")
    base = tmp_path / "nb"
    grade_batch(demo_course, "99_demo", folder, BatchOptions(workers=1, progress=False, nbgrader_dir=base), log=quiet)
    api = NbGraderAPI(coursedir=CourseDirectory(root=str(base), db_url=f"sqlite:///{base / 'gradebook.db'}"))
    [assignment] = api.get_assignments()
    assert (assignment["name"], assignment["num_submissions"]) == ("99_demo", 3)
    submissions = {s["student"]: s for s in api.get_submissions("99_demo")}
    assert sorted(submissions) == ["alice", "bob", "carol"]
    assert all(s["autograded"] for s in submissions.values())
    assert (submissions["alice"]["score"], submissions["bob"]["score"]) == (2.0, 0.0)
    assert (base / "submitted" / "carol" / "99_demo" / "99_demo.ipynb").read_text() == '{"cells": ['  # as handed in
    # Graded again from that submitted/ tree (nbgrader's layout, with its own timestamp.txt): same answer.
    stamp = base / "submitted" / "alice" / "99_demo" / "timestamp.txt"
    stamp.write_text("2026-10-01 12:00:00.000000 UTC")
    grade_batch(demo_course, "99_demo", base / "submitted", BatchOptions(
        workers=1, progress=False, nbgrader_dir=base, force=True), log=quiet)
    assert stamp.read_text() == "2026-10-01 12:00:00.000000 UTC"
    assert api.get_assignment("99_demo")["num_submissions"] == 3
    assert {s["student"] for s in api.get_submissions("99_demo") if s["autograded"]} == {"alice", "bob", "carol"}
