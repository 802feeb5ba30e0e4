"""The real course: every committed generated file is fresh, and every assignment passes
`dlcourse check` (solution full marks, blank 0, every mutant caught, no leaks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlcourse.authoring.build import stale_colab_files, stale_files
from dlcourse.authoring.check import check_assignment, format_table
from dlcourse.course import load_course

COURSE = load_course(Path(__file__).resolve().parents[1])
ASSIGNMENTS = COURSE.assignments()


def test_the_course_has_its_first_assignment():
    assert ASSIGNMENTS[0] == "00_setup"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_generated_notebooks_are_fresh(name):
    assert stale_files(COURSE, name) == [], f"run `dlcourse build {name}` and commit the result"


def test_colab_index_is_fresh():
    assert stale_colab_files(COURSE) == [], "run `dlcourse build` and commit colab/"


@pytest.mark.slow
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_assignment_passes_check(name):
    report = check_assignment(COURSE, name, log=lambda *_: None)
    print(format_table([report]))
    assert report.ok, "\n".join(report.problems)
