"""Late work (grading/late.py): due dates and policies from [tool.dlcourse.late], extensions from a CSV,
submission times from timestamp.txt, a submissions CSV or an LMS zip's late marks; the penalty in
nbgrader's gradebook (so `nbgrader export` agrees), in the grade CSV and in the feedback."""

from __future__ import annotations

import csv
import datetime as dt
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from dlcourse.instructor.authoring.build import student_notebook
from dlcourse.cli import main
from dlcourse.instructor.course import CourseError
from dlcourse.instructor.grading.late import NO_TIME, LatePolicy, LateWork, policy_from_config, read_extensions

from .conftest import make_course

UTC = dt.timezone.utc
DUE = dt.datetime(2026, 10, 1, 23, 59, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[1]


def _work(policy="per_day", penalty=10.0, cap=50.0, **kw) -> LateWork:
    return LateWork(LatePolicy("99_demo", DUE, policy, penalty, cap, **kw))


def _decide(work: LateWork, when: str | None, student="s", score=8.0, max_score=10.0, tmp_path=None):
    files = {}
    if when is not None:
        stamp = tmp_path / f"{student}-timestamp.txt"
        stamp.write_text(when)
        files["timestamp.txt"] = stamp
    return work.decide(student, files, None, score, max_score)


def test_per_day_per_hour_cap_and_grace(tmp_path):
    work = _work()
    on_time = _decide(work, "2026-10-01 23:58:00.000000 UTC", tmp_path=tmp_path)
    assert on_time.penalty == 0 and not on_time.reason and not on_time.flags
    # 1 minute late is one day started: 10% of 10 points
    assert _decide(work, "2026-10-02 00:00:00 UTC", tmp_path=tmp_path).penalty == 1
    two_days = _decide(work, "2026-10-03 12:00:00 UTC", tmp_path=tmp_path)  # 1 day 12 h: two days started
    assert two_days.penalty == 2 and "-2 points" in two_days.reason and "6/10 after the penalty" in two_days.reason
    assert _decide(work, "2026-10-20 00:00:00 UTC", tmp_path=tmp_path).penalty == 5  # the cap: 50%
    # never more than the score (as nbgrader checks)
    assert _decide(work, "2026-10-20 00:00:00 UTC", score=3, tmp_path=tmp_path).penalty == 3
    hourly = _work("per_hour", penalty=1, cap=None, unit="points")
    assert _decide(hourly, "2026-10-02 02:30:00 UTC", tmp_path=tmp_path).penalty == 3
    graced = _work(grace=dt.timedelta(minutes=15))
    assert _decide(graced, "2026-10-02 00:10:00 UTC", tmp_path=tmp_path).penalty == 0
    # a time zone other than UTC is converted: 01:30+02:00 is 23:30 UTC, on time
    assert _decide(work, "2026-10-02T01:30:00+02:00", tmp_path=tmp_path).penalty == 0


def test_reject_extension_and_what_cannot_be_decided(tmp_path):
    reject = _work("reject")
    late = _decide(reject, "2026-10-02 08:00:00 UTC", score=7, tmp_path=tmp_path)
    assert late.rejected and late.penalty == 7 and late.reason.startswith("not accepted")
    work = LateWork(LatePolicy("99_demo", DUE, "per_day", 10, 50), extensions={"ext": dt.timedelta(days=3)})
    assert _decide(work, "2026-10-04 12:00:00 UTC", student="ext", tmp_path=tmp_path).penalty == 0
    beyond = _decide(work, "2026-10-05 12:00:00 UTC", student="ext", tmp_path=tmp_path)
    assert beyond.penalty == 1 and "extension of 3 days" in beyond.reason
    missing = _decide(work, None, tmp_path=tmp_path)
    assert missing.penalty == 0 and missing.flags == [NO_TIME]
    garbled = _decide(work, "next tuesday-ish", tmp_path=tmp_path)
    assert garbled.penalty == 0 and "cannot be read" in garbled.flags[0]
    no_due = LateWork(LatePolicy("99_demo", None))
    assert "no due date" in _decide(no_due, "2026-10-05 12:00:00 UTC", tmp_path=tmp_path).flags[0]
    # Canvas's late mark without a time: one period late, flagged
    canvas = work.decide("bob", {}, Path("bob_late_123_456_99_demo.ipynb"), 8, 10)
    assert canvas.penalty == 1 and "marked late" in canvas.flags[0]
    work.check_students(["s"])
    assert any("'ext', who has no submission" in note for note in work.notes)


def test_config_and_extension_csv_mistakes_are_clear(tmp_path):
    assert policy_from_config({"99_demo": {"due": DUE, "policy": "per_day", "penalty": 10}}, "99_demo").due == DUE
    assert policy_from_config({"99_demo": {"due": "2026-10-01T23:59:00+00:00", "policy": "reject"}},
                              "99_demo").policy == "reject"
    with pytest.raises(CourseError, match="policy = 'weekly'"):
        policy_from_config({"99_demo": {"due": DUE, "policy": "weekly"}}, "99_demo")
    with pytest.raises(CourseError, match="is not a date-time"):
        policy_from_config({"99_demo": {"due": "soon", "policy": "reject"}}, "99_demo")
    with pytest.raises(CourseError, match="needs penalty"):
        policy_from_config({"99_demo": {"due": DUE, "policy": "per_hour"}}, "99_demo")
    extensions = tmp_path / "ext.csv"
    extensions.write_text("student,assignment,days,due\nann,99_demo,2,\nbob,,,2026-10-04T23:59:00Z\n"
                          "cid,99_demo,two,\ndan,01_other,5,\n")
    granted, problems = read_extensions(extensions, "99_demo", DUE)
    assert granted == {"ann": dt.timedelta(days=2), "bob": dt.timedelta(days=3, minutes=0)}
    assert len(problems) == 1 and "cid" in problems[0] and "line 4" in problems[0]


CONFIG = '''
[tool.dlcourse.late]
extensions = "extensions.csv"

[tool.dlcourse.late."99_demo"]
due = 2026-10-01T23:59:00+00:00
policy = "{policy}"
penalty = 10
cap = 50
'''
CORRECT = "def double(x):\n    return 2 * x\n"


def _course(tmp_path, policy: str):
    root = tmp_path / "course"
    root.mkdir()
    course = make_course(root)
    with open(root / "pyproject.toml", "a", encoding="utf-8") as f:
        f.write(CONFIG.format(policy=policy))
    (root / "extensions.csv").write_text("student,assignment,days\nextended,99_demo,3\nnobody,99_demo,1\n")
    return course


def _solved(course):
    nb = student_notebook(course, "99_demo")
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "double":
            cell.source = CORRECT
    return nb


def _tree(course, folder: Path, times: dict[str, str | None]) -> Path:
    """nbgrader's submitted/<student>/99_demo/ tree, with timestamp.txt as nbgrader writes it."""
    for student, when in times.items():
        where = folder / student / "99_demo"
        where.mkdir(parents=True)
        nbformat.write(_solved(course), str(where / "99_demo.ipynb"))
        if when is not None:
            (where / "timestamp.txt").write_text(when)
    return folder


def _csv(path: Path) -> dict[str, dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return {r["student"]: r for r in csv.DictReader(f)}


def test_per_day_and_an_extension_in_the_gradebook_csv_feedback_and_nbgrader_export(tmp_path, monkeypatch, capsys):
    course = _course(tmp_path, "per_day")
    monkeypatch.setenv("DLCOURSE_ROOT", str(course.root))
    submitted = _tree(course, tmp_path / "submitted", {
        "ontime": "2026-10-01 20:00:00.000000 UTC",
        "late2": "2026-10-03 10:00:00.000000 UTC",  # 1 day 10 h late: two days, 20% of 2 points
        "capped": "2026-10-15 10:00:00.000000 UTC",  # 14 days: capped at 50%
        "extended": "2026-10-04 10:00:00.000000 UTC",  # within a 3-day extension
        "notime": None,
    })
    grades, feedback = tmp_path / "grades.csv", tmp_path / "feedback"
    assert main(["grade", "99_demo", str(submitted), "--csv", str(grades), "--feedback", str(feedback),
                 "--no-progress", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "'nobody', who has no submission" in out
    rows = _csv(grades)
    expected = {"ontime": 0, "late2": 0.4, "capped": 1, "extended": 0, "notime": 0}
    assert {s: float(r["late penalty"]) for s, r in rows.items()} == expected
    assert rows["late2"]["score"] == "2" and rows["late2"]["score after penalty"] == "1.6"
    assert "1 day 10 h late" in rows["late2"]["late"] and "due 2026-10-01 23:59 UTC" in rows["late2"]["late"]
    assert rows["notime"]["flags"] == NO_TIME and rows["notime"]["late"] == NO_TIME
    page = (feedback / "late2" / "99_demo" / "99_demo.html").read_text(encoding="utf-8")
    assert "1 day 10 h late" in page and "-0.4 points" in page

    db = f"sqlite:///{course.root / 'autograder' / 'gradebook.db'}"
    with Gradebook(db) as gb:
        assert gb.find_assignment("99_demo").duedate == dt.datetime(2026, 10, 1, 23, 59)
        late2 = gb.find_submission("99_demo", "late2")
        assert late2.late_submission_penalty == pytest.approx(0.4) and late2.total_seconds_late == 34 * 3600 + 60
        extended = gb.find_submission("99_demo", "extended")
        assert extended.extension == dt.timedelta(days=3) and extended.total_seconds_late == 0
        assert gb.find_submission("99_demo", "notime").timestamp is None
        assert gb.find_submission_notebook("99_demo", "99_demo", "notime").flagged

    nbgrader_dir = course.root / "autograder"
    (nbgrader_dir / "nbgrader_config.py").write_text((ROOT / "autograder" / "nbgrader_config.py").read_text())
    done = subprocess.run([str(Path(sys.executable).with_name("nbgrader")), "export", "--to",
                           str(tmp_path / "export.csv")], cwd=nbgrader_dir, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    exported = {r["student_id"]: r for r in csv.DictReader(open(tmp_path / "export.csv"))}
    for student, penalty in expected.items():
        assert float(exported[student]["late_submission_penalty"]) == pytest.approx(penalty)
        assert float(exported[student]["score"]) == pytest.approx(2 - penalty)
    # and dlcourse export, the LMS file, says the same
    assert main(["export", "--to", "csv", "-o", str(tmp_path / "lms.csv")]) == 0
    lms = {r["student"]: r for r in csv.DictReader(open(tmp_path / "lms.csv"))}
    assert {s: float(lms[s]["99_demo (3)"]) for s in expected} == {s: 2 - p for s, p in expected.items()}

    # an extension granted after grading: the next run applies it without grading again
    with open(course.root / "extensions.csv", "a", encoding="utf-8") as f:
        f.write("late2,99_demo,2\n")
    assert main(["grade", "99_demo", str(submitted), "--csv", str(grades), "--no-progress"]) == 0
    assert "5 submission(s) already graded" in capsys.readouterr().out
    rows = _csv(grades)
    assert rows["late2"]["late penalty"] == "0" and rows["late2"]["score after penalty"] == "2"
    assert rows["capped"]["late penalty"] == "1" and rows["notime"]["flags"] == NO_TIME
    with Gradebook(db) as gb:
        late2 = gb.find_submission("99_demo", "late2")
        assert not late2.late_submission_penalty and late2.extension == dt.timedelta(days=2)


def test_reject_with_times_from_a_submissions_csv_and_lms_late_marks(tmp_path, monkeypatch, capsys):
    course = _course(tmp_path, "reject")
    monkeypatch.setenv("DLCOURSE_ROOT", str(course.root))
    archive = tmp_path / "canvas.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ("ann_101_1_99_demo.ipynb", "bob_late_102_2_99_demo.ipynb", "cat_103_3_99_demo.ipynb",
                     "dan_104_4_99_demo.ipynb"):
            zf.writestr(name, nbformat.writes(_solved(course)))
    times = tmp_path / "times.csv"
    times.write_text("student,submitted_at\nann,2026-10-01T22:00:00Z\ncat,2026-10-02T09:00:00Z\ndan,whenever\n")
    grades = tmp_path / "grades.csv"
    assert main(["grade", "99_demo", str(archive), "--csv", str(grades), "--submission-times", str(times),
                 "--no-progress", "--workers", "2"]) == 0
    rows = _csv(grades)
    assert rows["ann"]["score after penalty"] == "2" and rows["ann"]["late"] == ""
    assert rows["cat"]["score after penalty"] == "0" and rows["cat"]["late"].startswith("not accepted")
    assert rows["bob"]["score after penalty"] == "0" and "marked late" in rows["bob"]["flags"]
    assert rows["dan"]["score after penalty"] == "2" and "cannot be read" in rows["dan"]["flags"]
    with Gradebook(f"sqlite:///{course.root / 'autograder' / 'gradebook.db'}") as gb:
        cat = gb.find_submission("99_demo", "cat")
        assert cat.score == 2 and cat.late_submission_penalty == 2  # raw score kept, penalty = score: 0 exported
