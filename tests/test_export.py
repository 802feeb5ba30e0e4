"""`dlcourse export`: a gradebook written the way `dlcourse grade` writes it, exported for Canvas,
Moodle and as plain CSV, and read back as each LMS reads it: Canvas's header and Points Possible
rows and columns, Moodle's columns, a roster student without a submission blank (not 0), a
gradebook student the roster lacks reported."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import pytest

from dlcourse.instructor.source import read_source
from dlcourse.cli import main
from dlcourse.instructor.export import POINTS_POSSIBLE, build_export, read_roster, summary, write_export
from dlcourse.instructor.grading.engine import CellScore, GradeResult
from dlcourse.instructor.grading.gradebook import GradebookWriter
from tests.conftest import DEMO_SOURCE

CANVAS_ROSTER = """\
Student,ID,SIS User ID,SIS Login ID,Section,99_demo (4471),Current Score
    Points Possible,,,,,3.00,(read only)
"Doe, Jane",1001,S-1001,jdoe@uni.edu,Section A,,
"Smith, Bob",1002,S-1002,bsmith@uni.edu,Section A,,
"Lee, Ann",1003,S-1003,alee@uni.edu,Section B,,
"Student, Test",9999,,,Section A,,
"""
MOODLE_ROSTER = """\
First name,Last name,ID number,Institution,Department,Email address,Assignment: 99_demo (Real),Last downloaded from this course
Jane,Doe,S-1001,,,jdoe@uni.edu,-,
Bob,Smith,S-1002,,,bsmith@uni.edu,-,
Ann,Lee,S-1003,,,alee@uni.edu,-,
"""


def result(points: float) -> GradeResult:
    return GradeResult(status="graded", cells=[CellScore("test_double", "tests", 2.0, points, ran=True),
                                               CellScore("why_double", "answer", 1.0, None, ran=True)])


def gradebook(path: Path, grades: dict[str, dict[str, float]]) -> str:
    """A gradebook with `grades` (assignment -> student -> autograded points), saved as the grader saves."""
    url = f"sqlite:///{path}"
    source = read_source(course_source(path.parent))
    for assignment, students in grades.items():
        writer = GradebookWriter(url, assignment, assignment, source)
        for student, points in students.items():
            writer.save(student, result(points))
        writer.close()
    return url


def course_source(folder: Path) -> Path:
    path = folder / "demo_source.py"
    path.write_text(DEMO_SOURCE, encoding="utf-8")
    return path


def read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


@pytest.fixture
def canvas_gradebook(tmp_path) -> str:
    return gradebook(tmp_path / "gradebook.db", {"98_extra": {"doejane": 2.0},
                                                 "99_demo": {"doejane": 2.0, "smithbob": 0.0, "ghoststudent": 2.0}})


def test_canvas_import_file_from_a_canvas_roster(canvas_gradebook, tmp_path):
    roster = tmp_path / "canvas_export.csv"
    roster.write_text(CANVAS_ROSTER, encoding="utf-8")
    export = build_export(canvas_gradebook, ["98_extra", "99_demo"], roster)
    rows = read_rows(write_export(export, "canvas", tmp_path / "canvas.csv"))
    # the header Canvas reads: its identity columns, then one column per assignment; an assignment the
    # export already had keeps its column (and so its Canvas id), a new one is created from its name
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "98_extra", "99_demo (4471)"]
    assert rows[1] == [POINTS_POSSIBLE, "", "", "", "", "3", "3"]
    by_name = {r[0]: r for r in rows[2:]}
    assert list(by_name) == ["Doe, Jane", "Smith, Bob", "Lee, Ann"]  # the roster's order, no test student
    assert by_name["Doe, Jane"] == ["Doe, Jane", "1001", "S-1001", "jdoe@uni.edu", "Section A", "2", "2"]
    assert by_name["Smith, Bob"][5:] == ["", "0"]  # no submission of 98_extra: blank; a real 0 stays 0
    assert by_name["Lee, Ann"][5:] == ["", ""]
    assert export.not_in_roster == ["ghoststudent"]
    text = "\n".join(summary(export, tmp_path / "canvas.csv", "canvas"))
    assert "ghoststudent" in text and "not in the roster" in text
    assert "98_extra: no submission from 2 student(s)" in text and "Lee, Ann" in text
    assert "need grading by hand" in text  # the written answer has no score yet


def test_moodle_import_file_from_a_moodle_roster(tmp_path):
    url = gradebook(tmp_path / "gradebook.db", {"99_demo": {"Jane_Doe": 2.0, "Bob_Smith": 0.0, "Zed_Ghost": 2.0}})
    roster = tmp_path / "moodle_export.csv"
    roster.write_text(MOODLE_ROSTER, encoding="utf-8")
    export = build_export(url, ["99_demo"], roster)
    rows = read_rows(write_export(export, "moodle", tmp_path / "moodle.csv"))
    assert rows[0] == ["First name", "Last name", "ID number", "Email address", "Assignment: 99_demo (Real)"]
    assert rows[1:] == [["Jane", "Doe", "S-1001", "jdoe@uni.edu", "2"],
                        ["Bob", "Smith", "S-1002", "bsmith@uni.edu", "0"],
                        ["Ann", "Lee", "S-1003", "alee@uni.edu", ""]]
    assert export.not_in_roster == ["Zed_Ghost"]
    kind, _, students = read_roster(roster)
    assert kind == "moodle" and len(students) == 3


def test_moodle_file_from_a_canvas_roster_and_csv_without_one(canvas_gradebook, tmp_path):
    roster = tmp_path / "canvas_export.csv"
    roster.write_text(CANVAS_ROSTER, encoding="utf-8")
    rows = read_rows(write_export(build_export(canvas_gradebook, ["99_demo"], roster), "moodle", tmp_path / "m.csv"))
    assert rows[1] == ["Jane", "Doe", "S-1001", "jdoe@uni.edu", "2"]

    plain = build_export(canvas_gradebook, ["98_extra", "99_demo"])  # the gradebook's students
    rows = read_rows(write_export(plain, "csv", tmp_path / "grades.csv"))
    assert rows[0] == ["student", "first name", "last name", "email", "98_extra (3)", "99_demo (3)", "total (6)"]
    assert {r[0]: r[4:] for r in rows[1:]} == {"doejane": ["2", "2", "4"], "ghoststudent": ["", "2", "2"],
                                               "smithbob": ["", "0", "0"]}


def test_canvas_ids_from_the_canvas_zip_names(canvas_gradebook, tmp_path):
    archive = tmp_path / "submissions.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("doejane_1001_555_99_demo.ipynb", "{}")
        zf.writestr("smithbob_late_1002_556_99_demo.ipynb", "{}")
    export = build_export(canvas_gradebook, ["99_demo"], submissions=archive)
    rows = read_rows(write_export(export, "canvas", tmp_path / "canvas.csv"))
    ids = {r[3]: r[1] for r in rows[2:]}
    assert ids == {"doejane": "1001", "smithbob": "1002", "ghoststudent": ""}


def test_cli_export_reports_students_missing_from_the_roster(demo_course, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DLCOURSE_ROOT", str(demo_course.root))
    db = gradebook(tmp_path / "gradebook.db", {"99_demo": {"doejane": 2.0, "ghoststudent": 2.0}})
    roster = tmp_path / "canvas_export.csv"
    roster.write_text(CANVAS_ROSTER, encoding="utf-8")
    out = tmp_path / "to_canvas.csv"
    assert main(["export", "--to", "canvas", "--roster", str(roster), "--db", db, "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ghoststudent" in printed and "not in the roster" in printed
    assert read_rows(out)[0][-1] == "99_demo (4471)"
    # bad input is one line that says what to do
    bad = tmp_path / "roster.csv"
    bad.write_text("name,score\nx,1\n", encoding="utf-8")
    assert main(["export", "--to", "canvas", "--roster", str(bad), "--db", db, "-o", str(out)]) == 3
    assert "not a roster dlcourse knows" in capsys.readouterr().err
