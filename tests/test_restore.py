"""What a student does to cells by accident (delete, move, duplicate, retype; Colab dropping ids and
metadata) costs no points: tests go back where the source puts them, written answers stay the student's
and are never silently lost."""

from __future__ import annotations

import copy
import textwrap

import nbformat
import pytest

from dlcourse.instructor.authoring.build import student_notebook
from dlcourse.instructor.source import read_source
from dlcourse.instructor.cells import grade_id, role
from dlcourse.instructor.grading.engine import grade_notebook
from dlcourse.instructor.grading.restore import restore
from tests.conftest import make_course
from tests.redteam.course import build_course
from tests.test_grade_batch import solved

# Two tests where the second uses what the first imports: deleting the first must not fail the second.
CHAINED_SOURCE = textwrap.dedent('''\
    # %% [markdown]
    # # Chained tests

    # %% solution="double"
    def double(x):
        ### BEGIN SOLUTION
        return 2 * x
        ### END SOLUTION

    # %% tests="test_double" points=2
    from math import isclose
    assert isclose(double(2), 4), "double(2) should be 4"

    # %% [markdown]
    # Now `triple`.

    # %% solution="triple"
    def triple(x):
        ### BEGIN SOLUTION
        return 3 * x
        ### END SOLUTION

    # %% tests="test_triple" points=3
    assert isclose(triple(2), 6), "triple(2) should be 6"

    # %% [markdown]
    # Explain in one sentence why `triple(x) == x + double(x)`.

    # %% [markdown] answer="why_triple" points=1
    # ### BEGIN SOLUTION
    # Because 3x = x + 2x.
    # ### END SOLUTION
    ''')


def _as_colab_saves(nb):
    """Colab writes nbformat 4.0 without cell ids."""
    nb = copy.deepcopy(nb)
    nb.nbformat_minor = 0
    for cell in nb.cells:
        cell.pop("id", None)
    return nb


@pytest.fixture
def chained(tmp_path):
    course = make_course(tmp_path, source=CHAINED_SOURCE, name="98_chained")
    source = read_source(course.source_path("98_chained"))
    nb = student_notebook(course, "98_chained", source)
    for cell in nb.cells:
        if grade_id(cell) == "double":
            cell.source = "def double(x):\n    return 2 * x\n"
        elif grade_id(cell) == "triple":
            cell.source = "def triple(x):\n    return 3 * x\n"
        elif grade_id(cell) == "why_triple":
            cell.source = "Three x is x plus two x."
    return source, nb, course


def _ids(nb):
    return [grade_id(c) for c in nb.cells if grade_id(c)]


@pytest.mark.parametrize("colab", [False, True], ids=["jupyter", "colab-saved"])
def test_a_deleted_test_goes_back_after_the_cell_before_it_and_costs_nothing(chained, template, colab):
    source, nb, course = chained
    nb.cells = [c for c in nb.cells if grade_id(c) != "test_double"]
    if colab:
        nb = _as_colab_saves(nb)
    restored, flags = restore(nb, source)
    assert _ids(restored) == ["double", "test_double", "triple", "test_triple", "why_triple"]
    assert flags == ["missing test cell test_double restored"]
    result, _ = grade_notebook(nb, source, template=template)
    assert (result.score, result.max_score) == (5.0, 5.0), [c.error for c in result.cells]


def test_a_written_answer_retyped_without_its_metadata_is_kept_as_that_answer(chained):
    source, nb, course = chained
    answer = next(c for c in nb.cells if grade_id(c) == "why_triple")
    retyped = nbformat.v4.new_markdown_cell("Because three x is x and two x more.")  # what Colab saves
    nb.cells[nb.cells.index(answer)] = retyped
    restored, flags = restore(_as_colab_saves(nb), source)
    assert flags == ["written answer why_triple restored"]
    cell = next(c for c in restored.cells if grade_id(c) == "why_triple")
    assert cell.source == "Because three x is x and two x more." and role(cell) == "answer"


@pytest.mark.parametrize("colab", [False, True], ids=["jupyter", "colab-saved"])
def test_a_deleted_written_answer_is_a_grade_box_at_zero_with_why(chained, tmp_path, template, colab):
    from nbgrader.api import Gradebook

    from dlcourse.instructor.grading.batch import BatchOptions, grade_batch
    from tests.test_grade_batch import quiet

    source, nb, course = chained
    nb.cells = [c for c in nb.cells if grade_id(c) != "why_triple"]
    if colab:  # no cell ids: the self-check's heading after the question is still not the student's answer
        nb = _as_colab_saves(nb)
    restored, flags = restore(nb, source)
    assert flags == ["written answer why_triple missing"]
    assert _ids(restored)[-1] == "why_triple"  # in its place, after the question
    place = next(i for i, c in enumerate(restored.cells) if grade_id(c) == "why_triple")
    assert restored.cells[place - 1].source.startswith("Explain in one sentence")
    assert restored.cells[place + 1].source.startswith("## Self-check")  # build's closing cells stay last
    result, _ = grade_notebook(nb, source, template=template)
    answer = next(c for c in result.cells if c.grade_id == "why_triple")
    assert (answer.points, answer.error) == (0.0, "written answer why_triple missing")
    assert result.score == 5.0  # the tests are untouched
    # In the gradebook the TA sees a 0 with the comment, still to look at by hand.
    folder = tmp_path / "in"
    folder.mkdir()
    nbformat.write(nb, str(folder / "ann.ipynb"))
    grade_batch(course, "98_chained", folder, BatchOptions(workers=1, progress=False,
                                                           nbgrader_dir=tmp_path / "nb"), log=quiet)
    with Gradebook(f"sqlite:///{tmp_path / 'nb' / 'gradebook.db'}") as gb:
        grade = gb.find_grade("why_triple", "98_chained", "98_chained", "ann")
        comment = gb.find_comment("why_triple", "98_chained", "98_chained", "ann")
        assert (grade.score, grade.needs_manual_grade) == (0.0, True)
        assert comment.auto_comment == "written answer why_triple missing"


def test_an_answer_that_is_present_is_left_alone_and_unflagged(chained):
    source, nb, course = chained
    restored, flags = restore(_as_colab_saves(nb), source)
    assert flags == []
    assert next(c for c in restored.cells if grade_id(c) == "why_triple").source == "Three x is x plus two x."


def test_deleted_duplicated_and_reordered_tests_are_put_back_in_source_order(tmp_path_factory):
    _, source, student = build_course(tmp_path_factory.mktemp("restore"))
    nb = copy.deepcopy(student)
    cells = nb.cells
    ids = [grade_id(c) for c in cells]
    equal, close, shape, solution = (cells[ids.index(g)] for g in
                                     ("test_square_equal", "test_square_close", "test_square_shape", "square"))
    # close deleted, equal duplicated, shape moved above the solution
    nb.cells = [c for c in cells if c not in (close, shape)]
    nb.cells.insert(nb.cells.index(solution), shape)
    nb.cells.append(copy.deepcopy(equal))
    restored, flags = restore(nb, source)
    order = [g for g in _ids(restored) if g.startswith("test_")]
    assert sorted(order) == ["test_square_close", "test_square_equal", "test_square_shape"]
    positions = {g: i for i, g in enumerate(grade_id(c) for c in restored.cells)}
    assert all(positions[g] > positions["square"] for g in order)
    assert "missing test cell test_square_close restored" in flags
    assert any("duplicate of test cell test_square_equal" in f for f in flags)
    assert any("test_square_shape moved back" in f for f in flags)
    assert "the hidden scalar test" in restored.cells[positions["test_square_close"]].source


def test_tests_whose_metadata_was_stripped_are_recognised_by_their_text(tmp_path_factory):
    _, source, student = build_course(tmp_path_factory.mktemp("stripped"))
    nb = copy.deepcopy(student)
    for cell in nb.cells:
        cell.metadata = {}
    restored, flags = restore(nb, source)
    assert sorted(g for g in _ids(restored) if g.startswith("test_")) == \
        ["test_square_close", "test_square_equal", "test_square_shape"]
    assert sum("recognised by content" in f for f in flags) == 3
    assert not any("missing" in f for f in flags)


@pytest.mark.slow
def test_00_setup_with_its_first_test_cell_deleted_in_colab_grades_full_marks(template):
    """The case found by hand: the first test cell of 00_setup imports assert_close for every later test."""
    from dlcourse.instructor.authoring.check import solved_notebook
    from dlcourse.instructor.course import load_course

    course = load_course()
    source = read_source(course.source_path("00_setup"))
    nb = solved_notebook(student_notebook(course, "00_setup", source), source)
    first_test = next(c for c in nb.cells if role(c) == "tests")
    nb.cells.remove(first_test)
    result, _ = grade_notebook(_as_colab_saves(nb), source, template=template)
    assert result.score == result.max_score, [(c.grade_id, c.error) for c in result.cells if c.error]
    assert f"missing test cell {grade_id(first_test)} restored" in result.flags


def test_a_test_cell_the_student_edited_is_put_back_and_flagged_without_changing_the_score(chained, template):
    """Editing a test to `assert True` neither helps (the source's test runs) nor goes unseen (a flag)."""
    source, nb, course = chained
    for cell in nb.cells:
        if grade_id(cell) == "triple":
            cell.source = "def triple(x):\n    return 4 * x\n"   # wrong
        elif grade_id(cell) == "test_triple":
            cell.source = "assert True  # rewritten by the student\n"
    restored, flags = restore(nb, source)
    assert flags == ["test cell test_triple edited: restored"]
    assert "isclose(triple(2), 6)" in next(c for c in restored.cells if grade_id(c) == "test_triple").source
    result, _ = grade_notebook(nb, source, template=template)
    assert (result.score, result.max_score) == (2.0, 5.0), [c.error for c in result.cells]
    assert "test cell test_triple edited: restored" in result.flags


def test_an_unedited_test_cell_saved_by_colab_is_not_flagged(chained):
    source, nb, course = chained
    for cell in nb.cells:
        if role(cell) == "tests":
            cell.source = cell.source.replace("\n", "\r\n") + "\n\n"  # line endings and trailing blank lines only
    _, flags = restore(_as_colab_saves(nb), source)
    assert flags == []


RUBRIC_SOURCE = CHAINED_SOURCE.replace('# %% [markdown] answer="why_triple" points=1', textwrap.dedent('''\
    # %% [markdown] rubric="project_98"
    # | criterion | points |
    # | --- | --- |
    # | says why | 1 |

    # %% [markdown] answer="why_triple" points=1'''))
assert 'rubric="project_98"' in RUBRIC_SOURCE


@pytest.mark.parametrize("edit", ["deleted", "rewritten"])
def test_a_project_rubric_the_student_deleted_or_rewrote_goes_back_above_its_write_up(tmp_path, edit):
    """The TA grades a write-up against the rubric right above it: the grader puts the instructor's back."""
    course = make_course(tmp_path, source=RUBRIC_SOURCE, name="98_rubric")
    source = read_source(course.source_path("98_rubric"))
    nb = student_notebook(course, "98_rubric", source)
    if edit == "deleted":
        nb.cells = [c for c in nb.cells if grade_id(c) != "project_98"]
    else:
        next(c for c in nb.cells if grade_id(c) == "project_98").source = "| criterion | points |\n| any | 10 |"
    restored, flags = restore(nb, source)
    assert _ids(restored)[-2:] == ["project_98", "why_triple"]
    rubric = next(c for c in restored.cells if grade_id(c) == "project_98")
    assert "says why" in rubric.source and "any | 10" not in rubric.source
    assert flags == (["missing locked cell project_98 restored"] if edit == "deleted"
                     else ["locked cell project_98 edited: restored"])
