"""`dlcourse check` runs the leak gate of `dlcourse release`: a solution line one assignment shares with
another's unreleased solution fails the check (not only the release, weeks later), and both say what
clears it."""

from __future__ import annotations

import pytest

from dlcourse.instructor.authoring.build import build
from dlcourse.instructor.authoring.check import check_assignment
from dlcourse.instructor.authoring.publish import LeakError, check_leaks, publish, release
from dlcourse.instructor.course import load_course
from tests.conftest import DEMO_MUTANTS, DEMO_SOURCE, make_course

SHARED = "doubled = x + x  # a line two solutions share"
REMEDY = ("(a line of 98_early's unreleased solution too: write it differently in one of the two, "
          "or release 98_early first)")


def quiet(*_):
    pass


@pytest.fixture
def two_assignments(tmp_path):
    """98_early and 99_demo, whose solutions share one line (the first in course order owns it)."""
    for required in ("LICENSE", "environment.yml"):
        (tmp_path / required).write_text("x\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "manifest.json").write_text('{"datasets": {}}\n')
    shared = DEMO_SOURCE.replace("return 2 * x  # the distinctive solution line", f"{SHARED}\n    return doubled")
    make_course(tmp_path, source=shared.replace("Because multiplication", "Since multiplication"), name="98_early")
    (tmp_path / "notebooks" / "99_demo").mkdir()
    (tmp_path / "notebooks" / "99_demo" / "99_demo.py").write_text(shared)
    (tmp_path / "autograder" / "99_demo").mkdir()
    (tmp_path / "autograder" / "99_demo" / "mutants.toml").write_text(
        DEMO_MUTANTS.replace("2 * x", "x + x  #").replace('"return abs(x + x  #)"', '"return abs(doubled)"')
        .replace('"return x + x  #"', '"return doubled"'))
    course = load_course(tmp_path)
    for name in course.assignments():
        build(course, name, log=quiet)
    return course


def with_dates(course, dates: str):
    pyproject = course.root / "pyproject.toml"
    base = pyproject.read_text().split("\n[tool.dlcourse.release_dates]")[0]
    pyproject.write_text(base + "\n[tool.dlcourse.release_dates]\n" + dates)
    return load_course(course.root)


def leak_problems(course, name):
    report = check_assignment(course, name, workers=1, log=quiet)
    return [p for p in report.problems if "leak" in p]


def test_check_fails_on_a_solution_line_of_an_unreleased_assignment_and_says_what_clears_it(two_assignments):
    [problem] = leak_problems(two_assignments, "99_demo")
    assert f"solutions/99_demo/99_demo.ipynb, cell " in problem and repr(SHARED) in problem and REMEDY in problem
    assert leak_problems(two_assignments, "98_early") == []  # its own line


def test_check_follows_the_release_dates_as_release_does(two_assignments, tmp_path):
    """(check_leaks is what check_assignment runs for its leak line, above.)"""
    course = with_dates(two_assignments, "98_early = 2026-01-05\n99_demo = 2026-01-19\n")
    assert check_leaks(course, "99_demo") == [], "98_early is released first: its lines are public by then"
    course = with_dates(two_assignments, "98_early = 2026-02-05\n99_demo = 2026-01-19\n")
    [leak] = check_leaks(course, "99_demo")
    assert REMEDY in str(leak), "released before 98_early: its line would go out"


def test_release_is_refused_with_the_same_remedy_and_passes_in_order(two_assignments, tmp_path):
    destination = tmp_path / "student"
    publish(two_assignments, destination, log=quiet)
    with pytest.raises(LeakError) as refused:
        release(two_assignments, "99_demo", destination, force=True, log=quiet)
    assert REMEDY in str(refused.value)
    release(two_assignments, "98_early", destination, force=True, log=quiet)
    release(two_assignments, "99_demo", destination, force=True, log=quiet)
