"""`dlcourse build` as an author meets it: a mistake is one line naming the source line, found before
anything runs when it can be, and nothing is written; a change of markdown, points or a test's hint
keeps the executed outputs instead of running the training again; `--no-execute` never throws away
the outputs of a real run; the build ends with what the solution printed."""

from __future__ import annotations

import time

import nbformat
import pytest

from dlcourse.cli import EXIT_COURSE_ERROR, main
from dlcourse.instructor.authoring.build import build, freshness_problems
from dlcourse.instructor.course import CourseError
from tests.conftest import DEMO_SOURCE, make_course


def quiet(*_):
    pass


def file_line(course, number: int) -> str:
    return course.source_path("99_demo").read_text().splitlines()[number - 1]


@pytest.fixture
def author(tmp_path, monkeypatch):
    """Run `dlcourse` commands in a demo course whose source the test then edits."""
    def make(source: str = DEMO_SOURCE):
        course = make_course(tmp_path, source=source)
        monkeypatch.chdir(course.root)
        monkeypatch.delenv("DLCOURSE_ROOT", raising=False)
        return course
    return make


def edit(course, old: str, new: str) -> None:
    path = course.source_path("99_demo")
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def generated_bytes(course) -> tuple[bytes | None, bytes | None]:
    return tuple(p.read_bytes() if p.exists() else None
                 for p in (course.student_path("99_demo"), course.solution_path("99_demo")))


@pytest.mark.parametrize("old, new, line_text, where", [
    ("return 2 * x  #", "return 2 * x)  #", "return 2 * x)", 'solution="double"'),
    ('assert double(2) == 4, "double(2) should be 4"', 'assert double(2) = 4', "assert double(2) = 4",
     'tests="test_double"'),
    ('"the hidden negative-number test"', '"the hidden" test"', 'the hidden" test"', 'tests="test_double"'),
], ids=["solution", "visible test", "hidden test"])
def test_a_syntax_error_is_found_before_anything_runs(author, capsys, old, new, line_text, where):
    course = author(DEMO_SOURCE.replace(old, new))
    started = time.perf_counter()
    assert main(["build", "99_demo"]) == EXIT_COURSE_ERROR
    assert time.perf_counter() - started < 5  # no kernel was started (the solution takes seconds to run)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SyntaxError" in err and line_text in err and f"({where})" in err, err
    number = int(err.split("99_demo.py, line ")[1].split()[0])
    assert line_text in file_line(course, number), "the line number is the source file's"
    assert generated_bytes(course) == (None, None)


def test_markers_that_leave_the_student_an_invalid_cell_are_refused_before_anything_runs(author, capsys):
    course = author(DEMO_SOURCE.replace(
        "    ### BEGIN SOLUTION\n    return 2 * x  # the distinctive solution line\n    ### END SOLUTION\n",
        "    y = (\n    ### BEGIN SOLUTION\n        2 * x  # the distinctive solution line\n    ### END SOLUTION\n"
        "    )\n    return y\n"))
    assert main(["build", "99_demo"]) == EXIT_COURSE_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and '(solution="double"): in the student notebook this cell is not valid Python' in err
    assert "put ### BEGIN SOLUTION / ### END SOLUTION around whole statements" in err
    assert generated_bytes(course) == (None, None)


def test_a_visible_test_that_fails_on_the_solution_is_one_line_and_writes_nothing(author, capsys):
    # the failing visible assert comes after the hidden block: its line is counted in the source file
    assert "### END HIDDEN TESTS\n\n" in DEMO_SOURCE
    course = author(DEMO_SOURCE.replace(
        '### END HIDDEN TESTS\n', '### END HIDDEN TESTS\nassert double(5) == 10, "double(5) should be 10"\n'))
    assert main(["build", "99_demo"]) == 0
    before = generated_bytes(course)
    capsys.readouterr()
    edit(course, "return 2 * x  #", "return 2 * x if x < 4 else 0  #")
    assert main(["build", "99_demo"]) == EXIT_COURSE_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert '(tests="test_double"): visible test fails on the solution: AssertionError: double(5) should be 10' in err
    assert 'assert double(5) == 10, "double(5) should be 10"; nothing written' in err
    assert "double(5) == 10" in file_line(course, int(err.split("99_demo.py, line ")[1].split()[0]))
    for noise in ("Traceback", "\x1b[", "nbclient", "asyncio", "Cell In["):
        assert noise not in err
    assert generated_bytes(course) == before, "neither notebook was rewritten"


def test_a_solution_cell_that_raises_names_its_line(author, capsys):
    course = author(DEMO_SOURCE.replace("import math\n", "import math\nvalue = math.sqrt(-1)\n"))
    assert main(["build", "99_demo"]) == EXIT_COURSE_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(cell 2): cell fails on the solution: ValueError: math domain error" in err, err
    assert "value = math.sqrt(-1)" in file_line(course, int(err.split("99_demo.py, line ")[1].split()[0]))
    assert generated_bytes(course) == (None, None)


# The demo with `import dlcourse` first (so the self-check records the tests) and a cell that prints a result
WATCHED = DEMO_SOURCE.replace("import math\n", "import math\nimport dlcourse\n").replace(
    '# %% tests="test_double"', '# %%\nprint("training: step 100, loss 0.25")\nprint(f"accuracy {double(0.45):.2f}")\n\n'
                                '# %% tests="test_double"')


def test_markdown_points_and_hint_edits_keep_the_outputs_and_write_what_a_full_build_writes(author, capsys):
    course = author(WATCHED)
    build(course, "99_demo", log=quiet)
    edit(course, "Write `double`.", "Write `double`, carefully.")
    edit(course, 'points=2', 'points=3')
    edit(course, '"double(2) should be 4"', '"double(2) should be 4: multiply by two"')
    started = time.perf_counter()
    assert main(["build", "99_demo", "--keep-outputs"]) == 0
    assert time.perf_counter() - started < 5, "no kernel ran"
    assert freshness_problems(course, "99_demo") == []
    kept = generated_bytes(course)
    assert b"3 of 3 points pass their visible tests" in kept[1], "the self-check shows the new points"
    assert b"accuracy 0.90" in kept[1]
    build(course, "99_demo", log=quiet)
    assert generated_bytes(course) == kept, "a full build writes the same bytes"


@pytest.mark.parametrize("old, new", [
    ("return 2 * x  #", "return x + x  #"),
    ('assert double(2) == 4', 'assert double(2) == 4.0'),
    ('print("training: step 100, loss 0.25")', 'print("training: step 200, loss 0.25")'),
], ids=["solution", "test code", "plain cell"])
def test_keep_outputs_is_refused_when_code_changed_naming_the_cell(author, capsys, old, new):
    course = author(WATCHED)
    build(course, "99_demo", log=quiet)
    before = generated_bytes(course)
    edit(course, old, new)
    assert main(["build", "99_demo", "--keep-outputs"]) == EXIT_COURSE_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "99_demo.py" in err and "its code changed since the solution ran" in err, err
    assert "run `dlcourse build 99_demo` (without --keep-outputs)" in err
    assert generated_bytes(course) == before


def test_no_execute_never_removes_the_outputs_of_a_real_run(author, capsys):
    course = author()
    build(course, "99_demo", log=quiet)
    before = generated_bytes(course)
    edit(course, "Write `double`.", "Write `double`, carefully.")
    assert main(["build", "99_demo", "--no-execute"]) == EXIT_COURSE_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds the outputs of a real run and --no-execute would remove them" in err
    assert "dlcourse build 99_demo --keep-outputs" in err
    assert generated_bytes(course) == before


def test_the_freshness_test_fails_on_a_solution_that_never_ran(author):
    course = author()
    build(course, "99_demo", execute_solution=False, log=quiet)
    problems = freshness_problems(course, "99_demo")
    assert problems and "solutions/99_demo/99_demo.ipynb never ran" in problems[0], problems
    build(course, "99_demo", log=quiet)
    assert freshness_problems(course, "99_demo") == []


def test_build_ends_with_what_the_solution_printed(author, capsys):
    course = author(WATCHED)
    assert main(["build", "99_demo"]) == 0
    out = capsys.readouterr().out
    digest = out.split("what the solution printed last, cell by cell (99_demo.py):")[1]
    assert "step 100, loss 0.25" not in digest, "only the last line a cell printed"
    number = int(digest.split(": accuracy 0.90")[0].split("line ")[-1])
    assert file_line(course, number) == 'print("training: step 100, loss 0.25")', "the cell's first line in the source"
    nb = nbformat.read(str(course.solution_path("99_demo")), as_version=4)
    assert any("accuracy 0.90" in "".join(o.get("text", "") for o in c.get("outputs", [])) for c in nb.cells)
