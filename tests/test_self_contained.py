"""Test cells stand alone: `dlcourse check` names a test cell that uses what only another test cell makes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from dlcourse.instructor.authoring.self_contained import borrowed_names
from dlcourse.instructor.source import read_source
from dlcourse.instructor.authoring.build import build
from tests.conftest import DEMO_SOURCE, make_course

ROOT = Path(__file__).resolve().parents[1]

BORROWING = (DEMO_SOURCE + textwrap.dedent('''\

    # %% tests="test_double_again" points=1
    assert isclose(double(1.5), 3.0), "double(1.5) should be 3.0"
    ''')).replace('assert double(2) == 4, "double(2) should be 4"',
                 'from math import isclose\nassert double(2) == 4, "double(2) should be 4"')


def test_a_test_using_an_import_of_another_test_is_named_with_the_cell_it_came_from(tmp_path):
    course = make_course(tmp_path, source=BORROWING)
    problems = borrowed_names(read_source(course.source_path("99_demo")))
    assert problems == ["test cell test_double_again uses 'isclose', which only test cell test_double makes: "
                        "import or define it in test_double_again too"]


def test_names_from_the_notebooks_own_cells_builtins_and_the_cell_itself_are_fine(tmp_path):
    course = make_course(tmp_path)  # the tests use double (a solution cell), math (an instructor cell)
    assert borrowed_names(read_source(course.source_path("99_demo"))) == []


def test_hidden_tests_count_too(tmp_path):
    source = BORROWING.replace('assert isclose(double(1.5), 3.0), "double(1.5) should be 3.0"',
                               'assert double(1.5) == 3.0, "double(1.5) should be 3.0"\n'
                               '### BEGIN HIDDEN TESTS\nassert isclose(double(0.1), 0.2)\n### END HIDDEN TESTS')
    course = make_course(tmp_path, source=source)
    assert len(borrowed_names(read_source(course.source_path("99_demo")))) == 1


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "notebooks").iterdir() if p.name[:2].isdigit()))
def test_every_assignments_tests_stand_alone(name):
    """Found by hand in 00_setup: every test used the assert_close its first test imported, so deleting
    that cell cost 8 of 10 points."""
    assert borrowed_names(read_source(ROOT / "notebooks" / name / f"{name}.py")) == []


def test_check_fails_an_assignment_whose_test_borrows_from_another(tmp_path, template):
    from dlcourse.instructor.authoring.check import check_assignment

    course = make_course(tmp_path, source=BORROWING)
    build(course, "99_demo", execute_solution=False, log=lambda *_: None)
    report = check_assignment(course, "99_demo", log=lambda *_: None, template=template)
    assert not report.ok
    assert any("test_double_again uses 'isclose'" in problem for problem in report.problems)
