"""Staleness first: after a source edit without a rebuild, every command that would ship or grade
the generated notebooks stops before any work, in one line naming the files and the command that
fixes them, and writes nothing (students, Gradescope and the grader never get an old version)."""

from __future__ import annotations

import time

import pytest

from dlcourse.cli import EXIT_COURSE_ERROR, main
from tests.test_publish import course, in_course, quiet  # noqa: F401  (fixtures: a built demo course)

STALE = "assignments/99_demo/99_demo.ipynb, solutions/99_demo/99_demo.ipynb are older than notebooks/"


@pytest.fixture
def edited(in_course):  # noqa: F811
    """The demo course after its visible test was edited in the source and not rebuilt."""
    source = in_course.source_path("99_demo")
    text = source.read_text(encoding="utf-8")
    assert "assert double(2) == 4" in text
    source.write_text(text.replace("assert double(2) == 4", "assert double(3) == 6"), encoding="utf-8")
    return in_course


@pytest.mark.parametrize("command", [
    ["check", "99_demo"], ["publish", "--to", "{tmp}/student"], ["release", "99_demo", "--to", "{tmp}/student"],
    ["gradescope", "99_demo", "-o", "{tmp}/bundle.zip"], ["grade", "99_demo", "{tmp}/submissions"]],
    ids=lambda c: c[0])
def test_a_stale_course_stops_every_command_first_in_one_line(edited, tmp_path, capsys, command):
    (tmp_path / "submissions").mkdir()
    started = time.perf_counter()
    assert main([part.replace("{tmp}", str(tmp_path)) for part in command]) == EXIT_COURSE_ERROR
    err = capsys.readouterr().err
    assert STALE in err and "run `dlcourse build 99_demo`" in err and err.count("\n") == 1, err
    assert time.perf_counter() - started < 10  # found before any grading or executing (under a second idle)
    assert not (tmp_path / "student").exists() and not (tmp_path / "bundle.zip").exists()


def test_grading_a_course_never_built_works_from_its_source(in_course, tmp_path):  # noqa: F811
    """Only generated files that exist can be stale: grading needs just the source."""
    from dlcourse.instructor.authoring.build import require_fresh

    in_course.solution_path("99_demo").unlink()  # a grading machine with the student notebooks only
    require_fresh(in_course, ["99_demo"], "grading", built_only=True)
    in_course.student_path("99_demo").unlink()
    require_fresh(in_course, ["99_demo"], "grading", built_only=True)
    with pytest.raises(Exception, match=r"assignments/99_demo/99_demo.ipynb, solutions/99_demo/99_demo.ipynb do not exist: run `dlcourse build 99_demo` before publishing"):
        require_fresh(in_course, ["99_demo"], "publishing")
