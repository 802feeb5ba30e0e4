"""The real course: every committed generated file is fresh, and every assignment passes
`dlcourse check` (solution full marks, blank 0, every mutant caught, no leaks)."""

from __future__ import annotations

import pytest

from dlcourse.authoring.build import stale_colab_files, stale_files
from dlcourse.authoring.check import check_assignment, format_table
from dlcourse.course import load_course
from tests.assignments.conftest import ROOT


def pytest_generate_tests(metafunc):
    """One test per assignment, the names read when the tests are collected."""
    if "name" in metafunc.fixturenames:
        metafunc.parametrize("name", load_course(ROOT).assignments())


def test_the_course_has_its_first_assignment(course):
    assert course.assignments()[0] == "00_setup"


def test_generated_notebooks_are_fresh(course, name):
    assert stale_files(course, name) == [], f"run `dlcourse build {name}` and commit the result"


def test_colab_index_is_fresh(course):
    assert stale_colab_files(course) == [], "run `dlcourse build` and commit colab/"


@pytest.mark.slow
def test_assignment_passes_check(course, name, template):
    report = check_assignment(course, name, log=lambda *_: None, template=template)
    print(format_table([report]))
    assert report.ok, "\n".join(report.problems)
