"""The batch report (dlcourse grade --report DIR, dlcourse report NN): pass rate and grouped failure
messages per test, figures, statuses and flags; its pass rates are the grade CSV's."""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path

import nbformat
import pytest

from dlcourse.instructor.authoring.build import student_notebook
from dlcourse.cli import main
from dlcourse.instructor.report import fold

from .conftest import make_course

SOURCE = textwrap.dedent('''\
    # %% [markdown]
    # # Report demo

    # %% solution="double"
    def double(x):
        ### BEGIN SOLUTION
        return 2 * x
        ### END SOLUTION

    # %% solution="square"
    def square(x):
        ### BEGIN SOLUTION
        return x * x
        ### END SOLUTION

    # %% tests="test_double" points=2
    assert double(2) == 4, "double(2) should be 4"

    # %% tests="test_square" points=1
    for value in (3, 4):
        assert square(value) == value * value, f"square({value}) should be {value * value}, got {square(value)}"
    ''')


def _notebook(course, answers: dict[str, str]):
    nb = student_notebook(course, "99_demo")
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell.source = answers[gid]
    return nb


@pytest.fixture
def graded(tmp_path, monkeypatch, capsys):
    (tmp_path / "course").mkdir()
    course = make_course(tmp_path / "course", SOURCE)
    monkeypatch.setenv("DLCOURSE_ROOT", str(course.root))
    folder = tmp_path / "batch"
    folder.mkdir()
    good_double = "def double(x):\n    return x + x\n"
    batch = {
        "alice": {"double": good_double, "square": "def square(x):\n    return x ** 2\n"},
        "bob": {"double": good_double, "square": "def square(x):\n    return x * 3\n"},  # square(3) got 9: 4 fails
        "carol": {"double": "def double(x):\n    return x\n", "square": "def square(x):\n    return x + x\n"},
        "dave": {},  # the blank notebook: NotImplementedError
    }
    for student, answers in batch.items():
        nbformat.write(_notebook(course, answers), str(folder / f"{student}.ipynb"))
    (folder / "eve.ipynb").write_text('{"cells": [', encoding="utf-8")
    grades = tmp_path / "grades.csv"
    report = tmp_path / "report"
    assert main(["grade", "99_demo", str(folder), "--csv", str(grades), "--report", str(report), "--no-progress",
                 "--workers", "2"]) == 0
    return course, grades, report, capsys.readouterr().out


def _rates_from_grade_csv(path: Path) -> dict[str, tuple[int, int]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = {}
    for column in ("test_double (2)", "test_square (1)"):
        points = float(column.split("(")[1].rstrip(")"))
        values = [r[column] for r in rows if r[column] != ""]
        out[column.split(" ")[0]] = (sum(float(v) == points for v in values), len(values))
    return out


def _rates_from_report(folder: Path) -> dict[str, tuple[int, int]]:
    with open(folder / "tests.csv", newline="", encoding="utf-8") as f:
        return {r["test"]: (int(r["passed"]), int(r["graded"])) for r in csv.DictReader(f)}


def test_grade_report_has_figures_grouped_failures_and_the_csv_pass_rates(graded):
    course, grades, report, out = graded
    assert _rates_from_report(report) == _rates_from_grade_csv(grades) == {"test_double": (2, 5),
                                                                           "test_square": (1, 5)}
    page = (report / "index.html").read_text(encoding="utf-8")
    for figure in ("scores.png", "pass_rates.png", "seconds.png"):
        data = (report / figure).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, figure
        assert f"src='{figure}'" in page
    with open(report / "tests.csv", newline="", encoding="utf-8") as f:
        square = next(r for r in csv.DictReader(f) if r["test"] == "test_square")
    # bob's and carol's messages differ only in their numbers: one group of two
    assert square["failure 1 (count)"] == "2" and "square(#) should be #, got #" in fold(square["failure 1 (message)"])
    messages = {square[f"failure {i} (message)"] for i in (1, 2, 3)}
    assert any("NotImplementedError" in m for m in messages) and any("malformed JSON" in m for m in messages)
    # the terminal: the test most students failed first, statuses, the report's place
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("test "))
    assert lines[header + 2].startswith("test_square") and "1/5" in lines[header + 2]
    assert "statuses: graded 4, invalid notebook 1" in out and f"report: {report / 'index.html'}" in out
    assert "eve" in page and "invalid notebook" in page


def test_report_from_the_gradebook_later_says_the_same(graded, tmp_path, capsys):
    course, grades, report, _ = graded
    later = tmp_path / "later"
    assert main(["report", "99_demo", "-o", str(later)]) == 0
    assert _rates_from_report(later) == _rates_from_report(report)
    assert (later / "tests.csv").read_text() == (report / "tests.csv").read_text()
    with open(later / "submissions.csv", newline="", encoding="utf-8") as f:
        scores = {r["student"]: r["score"] for r in csv.DictReader(f)}
    with open(grades, newline="", encoding="utf-8") as f:
        assert scores == {r["student"]: r["score"] for r in csv.DictReader(f)}


def test_report_without_grades_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    course = make_course(tmp_path, SOURCE)
    monkeypatch.setenv("DLCOURSE_ROOT", str(course.root))
    assert main(["report", "99_demo"]) == 3
    err = capsys.readouterr().err
    assert "no gradebook" in err and "dlcourse grade 99_demo" in err and len(err.strip().splitlines()) == 1


def test_the_sample_batch_report_has_its_figures_and_the_csv_pass_rates(demo_course, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DLCOURSE_ROOT", str(demo_course.root))
    assert main(["sample", "99_demo", str(tmp_path / "sample")]) == 0
    grades, report = tmp_path / "grades.csv", tmp_path / "report"
    assert main(["grade", "99_demo", str(tmp_path / "sample"), "--csv", str(grades), "--report", str(report),
                 "--no-progress", "--workers", "2"]) == 0
    with open(grades, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    passed = sum(r["test_double (2)"] == "2" for r in rows if r["test_double (2)"] != "")
    graded = sum(r["test_double (2)"] != "" for r in rows)
    assert _rates_from_report(report) == {"test_double": (passed, graded)} and 0 < passed < graded
    page = (report / "index.html").read_text(encoding="utf-8")
    assert all((report / name).stat().st_size > 5000 and f"src='{name}'" in page
               for name in ("scores.png", "pass_rates.png", "seconds.png"))


# A project in plain Python (no data set): fit w to 3 by gradient descent; the student picks the learning rate.
PROJECT_SOURCE = textwrap.dedent('''\
    # %% [markdown]
    # # Project demo

    # %%
    import dlcourse
    from dlcourse.projects import Project

    project = Project("99_demo", metric="val_error", higher_is_better=False,
                      budget_steps=dlcourse.budget(full=20, grading=5), data="toy")

    # %% solution="project_99_run"
    ### BEGIN SOLUTION
    lr = 0.1
    ### END SOLUTION
    w = 0.0
    for _ in range(project.budget_steps):
        w -= lr * 2 * (w - 3)
        project.step((w - 3) ** 2)
    test_error = project.evaluate_test(lambda: abs(w - 3.1))
    project.report(val_error=abs(w - 2.9), test_error=test_error, params=1)

    # %% tests="test_project_99" points=1
    from dlcourse import projects

    record = projects.submitted_record(project)
    projects.check_well_formed(record, "99_demo", "val_error")
    projects.check_budget(record, 20)
    projects.check_test_used_once(record)
    projects.check_reproduces(record, project)
    ''')


def handed_in_after_run_all(nb, monkeypatch):
    """The notebook as a student hands it in: every code cell but the tests run, its printout kept."""
    import contextlib
    import io

    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    namespace: dict = {}
    for cell in nb.cells:
        if cell.cell_type != "code" or cell.metadata.get("nbgrader", {}).get("grade"):
            continue
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(cell.source, "cell", "exec"), namespace)
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed.getvalue())]
    return nb


@pytest.fixture
def graded_projects(tmp_path, monkeypatch, capsys):
    (tmp_path / "course").mkdir()
    course = make_course(tmp_path / "course", PROJECT_SOURCE)
    monkeypatch.setenv("DLCOURSE_ROOT", str(course.root))
    folder = tmp_path / "batch"
    folder.mkdir()
    for student, lr in {"s01": "0.1", "s02": "0.3", "s03": "0.05", "s04": "0.2"}.items():
        nb = student_notebook(course, "99_demo")
        next(c for c in nb.cells if c.get("id") == "project_99_run").source = \
            PROJECT_SOURCE.split("### BEGIN SOLUTION\n")[1].split("### END SOLUTION\n")[0].replace("0.1", lr) + \
            PROJECT_SOURCE.split("### END SOLUTION\n")[1].split("\n\n# %% tests")[0]
        nb = handed_in_after_run_all(nb, monkeypatch)
        if student == "s03":  # the code changed after the run it reports: the grader's re-run starts otherwise
            cell = next(c for c in nb.cells if c.get("id") == "project_99_run")
            cell.source = cell.source.replace("lr = 0.05", "lr = 0.3")
        nbformat.write(nb, str(folder / f"{student}.ipynb"))
    nbformat.write(student_notebook(course, "99_demo"), str(folder / "s05.ipynb"))  # handed in blank, never run
    grades, report = tmp_path / "grades.csv", tmp_path / "report"
    capsys.readouterr()
    assert main(["grade", "99_demo", str(folder), "--csv", str(grades), "--report", str(report), "--no-progress",
                 "--workers", "2"]) == 0
    return grades, report, capsys.readouterr().out


def test_the_report_ranks_the_projects_that_passed_their_checks_by_the_validation_figure(graded_projects):
    grades, report, out = graded_projects
    with open(grades, newline="", encoding="utf-8") as f:
        points = {r["student"]: r["test_project_99 (1)"] for r in csv.DictReader(f)}
    # the automatic project check lands in the grade CSV like any test
    assert points == {"s01": "1", "s02": "1", "s03": "0", "s04": "1", "s05": "0"}
    with open(report / "projects.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    # lr 0.3 and 0.2 reach w = 3 within 20 steps (val_error 0.1); lr 0.1 stops at 2.965 (val_error 0.065)
    errors = {r["student"]: float(r["val_error"]) for r in rows}
    ranked = [r["student"] for r in rows if r["rank"]]
    assert ranked[0] == "s01" and set(ranked) == {"s01", "s02", "s04"}
    assert ranked == sorted(ranked, key=lambda s: (errors[s], s)) and errors["s01"] < 0.07 < errors["s02"]
    assert [r["rank"] for r in rows if r["student"] == "s03"] == [""]
    assert next(r for r in rows if r["student"] == "s03")["checks passed"] == "no"
    assert "s05" not in errors  # no record at all
    page = (report / "index.html").read_text(encoding="utf-8")
    assert "Project leaderboard by val_error" in page and "1 record(s) failed the automatic checks" in page
    assert (report / "project_figures.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "project_figures.png" in page
    assert "project: 4 record(s), 3 passed the automatic checks and are ranked by val_error (lower is better)" in out
    board = out[out.index("rank  student"):].splitlines()
    assert [line.split()[1] for line in board[2:5]] == ranked
