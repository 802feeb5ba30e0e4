"""`dlcourse check` on a tiny course: what it proves, and that it notices when something is wrong."""

from __future__ import annotations

import re

import nbformat
import pytest

from dlcourse.instructor.authoring.build import build
from dlcourse.instructor.authoring.check import check_assignment, format_table
from dlcourse.instructor.authoring.leaks import scan_notebook
from dlcourse.instructor.authoring.mutants import Edit, Mutant, MutantError
from dlcourse.instructor.source import SourceError, read_source
from tests.conftest import load_benchmark


def quiet(*_):
    pass


def test_a_correct_assignment_passes(demo_course):
    build(demo_course, "99_demo", execute_solution=True, log=quiet)
    report = check_assignment(demo_course, "99_demo", log=quiet)
    assert report.ok, report.problems
    assert (report.points, report.manual_points) == (2, 1)
    assert report.solution.score == 2 and report.blank.score == 0
    assert report.mutants_caught == 2 and len(report.mutants) == 2
    table = format_table([report])
    assert "99_demo" in table and "2/2" in table and "ok" in table
    # benchmarks/bench_check.py compares two graders by the scores this table prints
    row = load_benchmark("bench_check").ROW
    rows = [m for m in map(row.match, table.splitlines()) if m]
    assert [(m["name"], m["solution"], m["blank"], m["mutants"]) for m in rows] == [("99_demo", "2", "0", "2/2")]
    report.points, report.manual_points, report.blank = 2.5, 0.5, None
    assert row.match(format_table([report]).splitlines()[2])["blank"] == "-"


def test_an_uncaught_mutant_fails_the_check(demo_course):
    build(demo_course, "99_demo", execute_solution=False)
    with demo_course.mutants_path("99_demo").open("a") as spec:
        spec.write('\n[double.same-as-solution]\nfind = "2 * x"\nreplace = "x * 2"\n')
    report = check_assignment(demo_course, "99_demo", log=quiet)
    assert not report.ok
    assert any("mutant double.same-as-solution not caught" in p for p in report.problems)
    assert "FAIL" in format_table([report])


def test_a_function_with_one_mutant_fails_the_check(demo_course):
    build(demo_course, "99_demo", execute_solution=False)
    spec = demo_course.mutants_path("99_demo")
    spec.write_text(spec.read_text().split("[double.negatives-wrong]")[0])
    report = check_assignment(demo_course, "99_demo", log=quiet)
    assert any("fewer than 2 mutants: double" in p for p in report.problems)


def test_a_mutant_whose_edit_no_longer_matches_fails_the_check_with_its_name(demo_course):
    source = demo_course.source_path("99_demo")
    source.write_text(source.read_text().replace("return 2 * x", "return x + x"))
    build(demo_course, "99_demo", execute_solution=False)
    report = check_assignment(demo_course, "99_demo", log=quiet)
    assert not report.ok and len(report.mutants) == 0
    stale = [p for p in report.problems if p.startswith("mutant double.")]
    assert stale == [
        "mutant double.adds-two: edit 1 looks for '2 * x' 1 time(s) in the solution of double, found 0; "
        "update it in mutants.toml",
        "mutant double.negatives-wrong: edit 1 looks for 'return 2 * x' 1 time(s) in the solution of double, "
        "found 0; update it in mutants.toml",
    ]


@pytest.mark.parametrize("spec, message", [
    ('[triple.wrong]\nfind = "x"\nreplace = "y"\n', "names no solution cell; solution ids: double"),
    ('[double.wrong]\nfind = "x"\n', "has find = \"...\", replace = \"...\" and optionally count = N"),
    ('[double.wrong]\nedits = [{ find = "x" }]\n', "has find = \"...\", replace = \"...\" and optionally count = N"),
    ('[double.wrong]\nfind = "x"\nreplace = "y"\ncount = 0\n', "count = 0 must be a positive whole number"),
    ('[double]\nwrong = 1\n', "mutant double.wrong must be a table [double.wrong] with find"),
    ('[double.wrong]\nedits = []\n', "edits must be a list of edits"),
    ('[double.wrong]\nfind = "x"\nreplace = "y"\nedits = [{ find = "x", replace = "z" }]\n',
     "has edits = [...] and also find, replace; put every edit in edits"),
    ('[double.wrong\n', "not valid TOML"),
])
def test_a_malformed_mutant_spec_is_a_one_line_error(demo_course, spec, message):
    demo_course.mutants_path("99_demo").write_text(spec)
    with pytest.raises(SourceError, match=re.escape(message)):
        check_assignment(demo_course, "99_demo", log=quiet)


def test_a_mutant_is_applied_edit_by_edit_each_matching_its_count():
    mutant = Mutant("f", "shifted", (Edit("x + 1", "x + 2", count=2), Edit("y = y", "y = -y")))
    assert mutant.apply("y = x + 1\nz = x + 1\ny = y") == "y = x + 2\nz = x + 2\ny = -y"
    with pytest.raises(MutantError, match=r"mutant f.shifted: edit 1 looks for 'x \+ 1' 2 time\(s\) .* found 1"):
        mutant.apply("y = x + 1\ny = y")
    with pytest.raises(MutantError, match="not valid Python"):
        Mutant("f", "broken", (Edit("y = y", "y = (y"),)).apply("y = y")


def test_a_solution_that_fails_its_tests_fails_the_check(demo_course):
    source = demo_course.source_path("99_demo")
    source.write_text(source.read_text().replace("return 2 * x", "return 3 * x"))
    build(demo_course, "99_demo", execute_solution=False)
    report = check_assignment(demo_course, "99_demo", log=quiet)
    assert any(p.startswith("solution scores 0/2") and "AssertionError" in p for p in report.problems)


def test_stale_files_fail_the_check(demo_course):
    build(demo_course, "99_demo", execute_solution=False)
    source = demo_course.source_path("99_demo")
    source.write_text(source.read_text() + "\n# %%\nprint('a new cell')\n")
    report = check_assignment(demo_course, "99_demo", log=quiet)
    assert any("stale generated files" in p for p in report.problems)


def test_leak_scan_finds_a_planted_solution_and_hidden_test(demo_course):
    build(demo_course, "99_demo", execute_solution=False)
    path = demo_course.student_path("99_demo")
    source = read_source(demo_course.source_path("99_demo"))
    assert scan_notebook(path, source, allow_solutions=False) == []
    nb = nbformat.read(str(path), as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("return 2 * x  # the distinctive solution line"))
    nb.cells.append(nbformat.v4.new_markdown_cell('assert double(-3.5) == -7.0, "the hidden negative-number test"'))
    nbformat.write(nb, str(path))
    kinds = sorted(leak.kind for leak in scan_notebook(path, source, allow_solutions=False))
    assert kinds == ["hidden test", "solution"]
    report = check_assignment(demo_course, "99_demo", log=quiet)
    assert any("leak(s)" in p for p in report.problems)


def test_leak_scan_lets_solutions_into_the_solution_notebook_but_not_hidden_tests(demo_course):
    build(demo_course, "99_demo", execute_solution=False)
    path = demo_course.solution_path("99_demo")
    source = read_source(demo_course.source_path("99_demo"))
    assert scan_notebook(path, source, allow_solutions=True) == []
    nb = nbformat.read(str(path), as_version=4)
    nb.cells[-1].source += "\n### BEGIN HIDDEN TESTS"
    nbformat.write(nb, str(path))
    assert [leak.kind for leak in scan_notebook(path, source, allow_solutions=True)] == ["marker"]


def test_a_mutant_is_graded_only_up_to_its_first_failing_test(tmp_path, template):
    """What makes check fast: a known-wrong notebook stops at the first failing test; the solution does not."""
    from dlcourse.instructor.grading.engine import grade_notebook
    from tests.redteam.cases import WRONG
    from tests.redteam.course import CORRECT, build_course, with_solution

    _, source, student = build_course(tmp_path)
    wrong, _ = grade_notebook(with_solution(student, WRONG), source, template=template, stop_at_first_failure=True)
    ran = [c.grade_id for c in wrong.cells if c.ran]
    assert len(ran) == 1 and wrong.score == 0 and "stopped at the first failing test" in wrong.message
    assert [c.error for c in wrong.cells if not c.ran] == ["did not run"] * (len(wrong.cells) - 1)
    right, _ = grade_notebook(with_solution(student, CORRECT), source, template=template, stop_at_first_failure=True)
    assert right.score == right.max_score and all(c.ran for c in right.cells)


def test_a_path_of_the_build_machine_in_an_output_fails_check(demo_course):
    """A solution that prints where it was built (the course folder) would show it to every student."""
    build(demo_course, "99_demo", execute_solution=False, log=quiet)
    path = demo_course.solution_path("99_demo")
    source = read_source(demo_course.source_path("99_demo"))
    nb = nbformat.read(str(path), as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("stream", text=f"saved to {demo_course.root}/data/cache/model.pt\n")]
    nbformat.write(nb, str(path))
    leaks = scan_notebook(path, source, allow_solutions=True, root=demo_course.root)
    assert [leak.kind for leak in leaks] == ["build-machine path"]
    report = check_assignment(demo_course, "99_demo", log=quiet)
    assert any("build-machine path" in p for p in report.problems)


def test_a_solution_cell_without_markers_is_refused_at_build(tmp_path):
    from tests.conftest import DEMO_SOURCE, make_course

    broken = DEMO_SOURCE.replace("    ### BEGIN SOLUTION\n", "", 1).replace("    ### END SOLUTION\n", "", 1)
    course = make_course(tmp_path, source=broken)
    with pytest.raises(SourceError, match="needs ### BEGIN SOLUTION / ### END SOLUTION"):
        read_source(course.source_path("99_demo"))
