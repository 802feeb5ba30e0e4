"""Regrading knows what changed: a submission graded against an older version of the assignment's tests
or points is graded again on the next `dlcourse grade` (and says so), so no row keeps a score out of
another maximum; what did not change stays skipped."""

from __future__ import annotations

import csv

import nbformat
from nbgrader.api import Gradebook

from dlcourse.cli import main
from dlcourse.instructor.grading.batch import RECORD_KEY, autograded_path
from tests.test_grade_batch import make_batch


def grade(course, folder, table, capsys) -> tuple[str, dict[str, list[str]]]:
    assert main(["grade", "99_demo", str(folder), "--csv", str(table), "--no-progress", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    with open(table) as f:
        rows = list(csv.reader(f))
    return out, {"header": rows[0], **{r[0]: r for r in rows[1:]}}


def test_a_points_change_regrades_what_was_graded_before_it(demo_course, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DLCOURSE_ROOT", str(demo_course.root))
    folder = make_batch(demo_course, tmp_path / "batch")
    table = tmp_path / "grades.csv"
    _, first = grade(demo_course, folder, table, capsys)
    assert first["alice"][2:5] == ["2", "2", "2"]
    out, again = grade(demo_course, folder, table, capsys)
    assert "already graded" in out and "older version" not in out

    source = demo_course.source_path("99_demo")
    source.write_text(source.read_text().replace("points=2", "points=4"))
    out, regraded = grade(demo_course, folder, table, capsys)
    assert ("99_demo: 3 submission(s) graded against an older version of its tests or points "
            "(alice, bob, carol): grading them again") in out
    assert regraded["header"][4] == "test_double (4)"
    assert regraded["alice"][2:5] == ["4", "4", "4"], "the score and its maximum are of the new version"
    assert regraded["bob"][2:4] == ["0", "4"]
    with Gradebook(f"sqlite:///{demo_course.root / 'autograder' / 'gradebook.db'}") as gb:
        alice = gb.find_submission("99_demo", "alice")
        assert (alice.score, alice.max_score) == (4, 5), "the gradebook too (its maximum counts the written answer)"
    out, _ = grade(demo_course, folder, table, capsys)
    assert "older version" not in out


def test_a_changed_hidden_test_regrades_and_old_records_are_judged_by_their_maximum(demo_course, tmp_path,
                                                                                    monkeypatch, capsys):
    monkeypatch.setenv("DLCOURSE_ROOT", str(demo_course.root))
    folder = make_batch(demo_course, tmp_path / "batch")
    table = tmp_path / "grades.csv"
    grade(demo_course, folder, table, capsys)
    source = demo_course.source_path("99_demo")
    source.write_text(source.read_text().replace("assert double(-3.5) == -7.0", "assert double(-4) == -8"))
    out, regraded = grade(demo_course, folder, table, capsys)
    assert "3 submission(s) graded against an older version" in out and regraded["alice"][2] == "2"

    # a grade recorded before versions were kept counts as this version when its maximum is this one's
    path = autograded_path(demo_course.root / "autograder", "alice", "99_demo")
    nb = nbformat.read(str(path), as_version=4)
    del nb.metadata[RECORD_KEY]["version"]
    nbformat.write(nb, str(path))
    out, _ = grade(demo_course, folder, table, capsys)
    assert "older version" not in out
    source.write_text(source.read_text().replace("points=2", "points=3"))
    out, regraded = grade(demo_course, folder, table, capsys)
    assert "3 submission(s) graded against an older version" in out and regraded["alice"][2:4] == ["3", "3"]
