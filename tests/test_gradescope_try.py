"""`dlcourse gradescope NN --try NOTEBOOK`: the bundle just built grades a notebook the way Gradescope
will (its own run_autograder, in a folder laid out like /autograder) and the results are printed."""

from __future__ import annotations

import nbformat

from dlcourse.cli import EXIT_COURSE_ERROR, main
from tests.test_grade_batch import solved
from tests.test_publish import course, in_course, quiet  # noqa: F401  (fixtures: a built demo course)


def test_try_grades_a_notebook_with_the_bundle_and_prints_the_results(in_course, tmp_path, capsys):  # noqa: F811
    good, wrong = tmp_path / "good.ipynb", tmp_path / "wrong.ipynb"
    nbformat.write(solved(in_course), str(good))
    nbformat.write(solved(in_course, "def double(x):\n    return 3 * x\n"), str(wrong))
    bundle = tmp_path / "bundle.zip"
    assert main(["gradescope", "99_demo", "-o", str(bundle), "--try", str(good)]) == 0
    out = capsys.readouterr().out
    assert "good.ipynb graded as Gradescope would (this machine's Python): 2/2" in out, out
    assert "test_double" in out and "by hand" in out  # the written answer, graded in Gradescope by hand
    assert main(["gradescope", "99_demo", "-o", str(bundle), "--try", str(wrong)]) == 0
    out = capsys.readouterr().out
    assert "wrong.ipynb graded as Gradescope would (this machine's Python): 0/2" in out
    assert "Failed: AssertionError: double(2) should be 4" in out, "the failing test's message, as students see it"
    assert "assert double(-3.5) == -7.0" not in out, "never a hidden test's code"


def test_try_a_missing_notebook_is_one_line(in_course, tmp_path, capsys):  # noqa: F811
    assert main(["gradescope", "99_demo", "-o", str(tmp_path / "b.zip"), "--try", str(tmp_path / "nope.ipynb")]) \
        == EXIT_COURSE_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.ipynb: no such notebook to try the bundle on" in err
    assert not (tmp_path / "b.zip").exists(), "refused before building the bundle"
