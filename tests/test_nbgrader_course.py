"""`dlcourse grade` in a plain nbgrader course folder, against `nbgrader autograde` itself.

nbgrader's own courses (tests/fixtures/nbgrader: the user guide's ps1, and the notebooks nbgrader's
autograde tests grade, cheat attempts included) are graded by both tools in this run, each in its own
copy of the course, and every autograded cell's score is compared. The cells where they differ must be
exactly those listed in docs/grading.md ("Scores that differ from nbgrader"), each with its reason:
a new difference fails, and so does a listed one that went away (the list is then stale).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.slow  # both graders on two courses: minutes

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "nbgrader"
COURSES = {
    "ps1": ["ps1"],
    "apps": ["cheat", "autotest_simple", "autotest_multi", "autotest_hashed", "autotest_hidden", "relative_file"],
}
DIFFERENCES_HEADING = "## Scores that differ from nbgrader"
MANUAL = "manual"  # a cell nbgrader leaves for a person (no automatic score)


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "DLCOURSE_OFFLINE": "1"}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def nbgrader(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "nbgrader"), *args]


def dlcourse(*args: str) -> list[str]:
    return [sys.executable, "-m", "dlcourse.cli", *args]


def cell_scores(course: Path, assignment: str) -> dict[str, str]:
    """student/notebook/cell -> the automatic score the gradebook holds for every graded cell ("manual" when
    there is none), read with nbgrader's own API."""
    from nbgrader.api import Gradebook

    scores = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for submission in gb.assignment_submissions(assignment):
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    value = MANUAL if grade.auto_score is None else f"{grade.auto_score:g}"
                    scores[f"{submission.student.id}/{notebook.name}/{grade.name}"] = value
    return scores


def listed_differences() -> dict[str, tuple[str, str]]:
    """The table in docs/grading.md: cell -> (nbgrader's score, dlcourse's score)."""
    text = (REPO / "docs" / "grading.md").read_text(encoding="utf-8")
    assert DIFFERENCES_HEADING in text, f"docs/grading.md has no section {DIFFERENCES_HEADING!r}"
    section = text.split(DIFFERENCES_HEADING, 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]+?) \| ([^|]+?) \| ([^|]+?) \|$", section, re.M)
    assert all(why.strip() for *_, why in rows), "every listed difference says why"
    return {cell: (ours.strip(), theirs.strip()) for cell, ours, theirs, _ in rows}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Both tools on both courses: {course: {"nbgrader": scores, "dlcourse": scores, seconds, output, folder}}."""
    out = {}
    for course, assignments in COURSES.items():
        theirs = tmp_path_factory.mktemp(f"{course}-nbgrader")
        ours = tmp_path_factory.mktemp(f"{course}-dlcourse")
        shutil.copytree(FIXTURES / course, theirs, dirs_exist_ok=True)
        shutil.copytree(FIXTURES / course, ours, dirs_exist_ok=True)
        result = {"nbgrader": {}, "dlcourse": {}, "seconds": {"nbgrader": 0.0, "dlcourse": 0.0}, "output": "",
                  "folder": ours, "nbgrader_folder": theirs}
        for assignment in assignments:
            started = time.perf_counter()
            run(nbgrader("generate_assignment", assignment, "--force"), theirs)
            run(nbgrader("autograde", assignment, "--force"), theirs)
            result["seconds"]["nbgrader"] += time.perf_counter() - started
            started = time.perf_counter()
            # No release/ and no gradebook here: dlcourse reads the source folder only.
            done = run(dlcourse("grade", assignment, "--no-progress"), ours)
            result["seconds"]["dlcourse"] += time.perf_counter() - started
            result["output"] += done.stdout + done.stderr
            result["nbgrader"].update({f"{course}/{assignment}/{k}": v for k, v in cell_scores(theirs, assignment).items()})
            result["dlcourse"].update({f"{course}/{assignment}/{k}": v for k, v in cell_scores(ours, assignment).items()})
        out[course] = result
    return out


def test_every_autograded_cell_scores_as_nbgrader_does_or_is_a_listed_difference(graded):
    table, differences = [], {}
    for course, result in graded.items():
        theirs, ours = result["nbgrader"], result["dlcourse"]
        assert set(ours) == set(theirs), f"{course}: cells graded by one tool only: {sorted(set(ours) ^ set(theirs))}"
        for cell in sorted(theirs):
            same = theirs[cell] == ours[cell]
            table.append(f"{cell:70} {theirs[cell]:>7} {ours[cell]:>7} {'' if same else 'DIFFERS'}")
            if not same:
                differences[cell] = (theirs[cell], ours[cell])
    print("\n".join([f"{'cell':70} {'nbgrader':>7} {'dlcourse':>7}", *table]))
    listed = listed_differences()
    assert differences == listed, (
        "scores that differ from nbgrader's, against docs/grading.md's list:\n"
        + "".join(f"  not listed: {c}: nbgrader {v[0]}, dlcourse {v[1]}\n" for c, v in differences.items() if listed.get(c) != v)
        + "".join(f"  listed but not seen (remove it): {c}: {v}\n" for c, v in listed.items() if differences.get(c) != v))
    assert len(table) >= 40  # both courses were graded, every notebook of them


def test_an_assignment_of_several_notebooks_is_graded_in_full_from_the_course_folder(graded):
    folder = graded["ps1"]["folder"]
    for student in ("bitdiddle", "hacker"):
        for notebook in ("problem1", "problem2"):
            autograded = nbformat.read(str(folder / "autograded" / student / "ps1" / f"{notebook}.ipynb"), as_version=4)
            assert any(c.get("outputs") for c in autograded.cells if c.cell_type == "code") or notebook == "problem2"
    assert sorted(p.name for p in (folder / "source" / "ps1").iterdir()) == ["jupyter.png", "problem1.ipynb",
                                                                              "problem2.ipynb"]
    assert not (folder / "release").exists()  # the release version is made in memory, not written into the course
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{folder / 'gradebook.db'}") as gb:
        assert sorted(n.name for n in gb.find_assignment("ps1").notebooks) == ["problem1", "problem2"]
    assert "cannot honour" not in graded["ps1"]["output"]


def test_a_students_copy_of_the_course_data_is_replaced_as_nbgrader_does(graded):
    # foo's data.txt has one line; the test needs the course's four-line copy (see fixtures' README)
    assert graded["apps"]["dlcourse"]["apps/relative_file/foo/p1/open_file"] == "10"


def test_a_release_folder_older_than_the_source_is_named(graded, tmp_path):
    from dlcourse.instructor.grading.nbgrader_course import load_nbgrader_course, targets

    course = tmp_path / "course"
    shutil.copytree(graded["ps1"]["nbgrader_folder"], course)  # release/ps1 made by nbgrader generate_assignment
    said = []
    assert [t.notebook for t in targets(load_nbgrader_course(course), "ps1", said.append)] == ["problem1", "problem2"]
    assert said == []
    source = nbformat.read(str(course / "source" / "ps1" / "problem1.ipynb"), as_version=4)
    squares = next(c for c in source.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "squares")
    squares.source = squares.source.replace("def squares(n):", "def squares(n, start=1):")
    nbformat.write(source, str(course / "source" / "ps1" / "problem1.ipynb"))
    targets(load_nbgrader_course(course), "ps1", said.append)
    assert len(said) == 1 and "release/ps1/problem1.ipynb differs from the source (cells squares)" in said[0]


def test_dlcourse_is_faster_on_ps1(graded):
    seconds = graded["ps1"]["seconds"]
    print(f"ps1: nbgrader generate_assignment + autograde {seconds['nbgrader']:.1f} s, dlcourse grade "
          f"{seconds['dlcourse']:.1f} s")
    assert seconds["dlcourse"] < seconds["nbgrader"]


SLOW_SOURCE = {
    "cells": [
        {"cell_type": "code", "id": "answer", "execution_count": None, "outputs": [], "source": "### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION",
         "metadata": {"nbgrader": {"grade_id": "answer", "grade": False, "solution": True, "locked": False,
                                   "schema_version": 3}}},
        {"cell_type": "code", "id": "check", "execution_count": None, "outputs": [], "source": "assert answer == 42",
         "metadata": {"nbgrader": {"grade_id": "check", "grade": True, "solution": False, "locked": True,
                                   "points": 1, "schema_version": 3}}},
    ],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "nbformat": 4, "nbformat_minor": 5,
}


def test_the_settings_that_change_grades_are_honoured_and_the_others_named_before_grading(tmp_path):
    course = tmp_path / "course"
    (course / "source" / "slow").mkdir(parents=True)
    nbformat.write(nbformat.from_dict(SLOW_SOURCE), str(course / "source" / "slow" / "slow.ipynb"))
    student = nbformat.from_dict(SLOW_SOURCE)
    student.cells[0].source = "import time\ntime.sleep(60)\nanswer = 42"  # right, but slower than the course allows
    (course / "submitted" / "ann" / "slow").mkdir(parents=True)
    nbformat.write(student, str(course / "submitted" / "ann" / "slow" / "slow.ipynb"))
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        "c.Execute.timeout = 3\n"
        "c.Execute.execute_retries = 2\n"
        "c.LimitOutput.max_lines = 10\n"
        "c.CourseDirectory.max_file_size = 1000\n"
        "c.ClearSolutions.code_stub = {'python': '# write it here\\nraise ValueError(\"not yet\")'}\n"
        f"c.CourseDirectory.db_url = 'sqlite:///{tmp_path / 'elsewhere.db'}'\n")

    from dlcourse.instructor.grading.nbgrader_course import graded_version, load_nbgrader_course, unhonoured

    loaded = load_nbgrader_course(course)
    assert loaded.cell_timeout == 3
    assert unhonoured(loaded.config) == ["Execute.execute_retries", "LimitOutput.max_lines",
                                         "CourseDirectory.max_file_size"]
    assert graded_version(loaded, course / "source" / "slow" / "slow.ipynb").cells[0].source == \
        '# write it here\nraise ValueError("not yet")'

    started = time.perf_counter()
    done = run(dlcourse("grade", "slow", "--no-progress"), course)
    assert time.perf_counter() - started < 50  # the cell was stopped at 3 s, not left to sleep its 60
    lines = done.stdout.splitlines()
    assert lines[0] == ("nbgrader_config.py: dlcourse grade cannot honour Execute.execute_retries, "
                        "LimitOutput.max_lines, CourseDirectory.max_file_size; grading as if unset")
    assert "timed out" in done.stdout
    from nbgrader.api import Gradebook

    assert not (course / "gradebook.db").exists()
    with Gradebook(f"sqlite:///{tmp_path / 'elsewhere.db'}") as gb:  # the course's db_url
        assert gb.find_grade("check", "slow", "slow", "ann").auto_score == 0


def test_an_unknown_assignment_in_an_nbgrader_course_is_one_line_naming_those_it_has(tmp_path, monkeypatch, capsys):
    from dlcourse.cli import EXIT_COURSE_ERROR, main

    shutil.copytree(FIXTURES / "ps1", tmp_path / "course")
    monkeypatch.chdir(tmp_path / "course")
    monkeypatch.delenv("DLCOURSE_ROOT", raising=False)
    assert main(["grade", "ps9"]) == EXIT_COURSE_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no assignment ps9 in the nbgrader course" in err and "assignments: ps1)" in err
    assert not (tmp_path / "course" / "gradebook.db").exists()
