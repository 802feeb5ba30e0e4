"""`dlcourse build`: what students and TAs get from one source, byte-for-byte reproducible,
and a clear refusal of a broken source."""

from __future__ import annotations

import dataclasses
import os
import sys
import types

import nbformat
import pytest

from dlcourse.env import in_colab
from dlcourse.instructor.authoring.build import build, stale_files, student_notebook
from dlcourse.instructor.authoring.generated_cells import COLAB_CHECK
from dlcourse.instructor.course import CourseError, load_course
from dlcourse.instructor.source import SourceError, read_source
from dlcourse.cli import EXIT_COURSE_ERROR, main
from tests.conftest import DEMO_SOURCE, make_course


def cell_by_id(nb, grade_id):
    return next(c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id)


def test_student_notebook_hides_solutions_and_hidden_tests(demo_course):
    build(demo_course, "99_demo", execute_solution=False)
    text = demo_course.student_path("99_demo").read_text()
    assert "the distinctive solution line" not in text
    assert "the hidden negative-number test" not in text
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
    nb = nbformat.read(str(demo_course.student_path("99_demo")), as_version=4)
    assert "raise NotImplementedError(\"not written yet: replace these two lines" in cell_by_id(nb, "double").source
    assert "YOUR ANSWER HERE" in cell_by_id(nb, "why_double").source
    tests = cell_by_id(nb, "test_double")
    assert tests.metadata.nbgrader["locked"] and tests.metadata.nbgrader["points"] == 2
    assert tests.metadata.editable is False and tests.metadata.deletable is False
    assert "checksum" in tests.metadata.nbgrader


def test_student_notebook_opens_with_badges_and_colab_only_setup(demo_course):
    nb = student_notebook(demo_course, "99_demo")
    badges, setup = nb.cells[0], nb.cells[1]
    assert ("https://colab.research.google.com/github/example/course/blob/v1/"
            "assignments/99_demo/99_demo.ipynb") in badges.source
    assert "https://github.com/example/course/blob/v1/assignments/99_demo/99_demo.ipynb" in badges.source
    assert f"if {COLAB_CHECK}:" in setup.source
    assert 'URL, REF = "https://github.com/example/course", "v1"' in setup.source
    assert 'f"dlcourse @ git+{URL}@{REF}"' in setup.source


def test_setup_cell_does_nothing_outside_colab(demo_course):
    setup = student_notebook(demo_course, "99_demo").cells[1].source
    namespace: dict = {}
    exec(compile(setup, "setup-cell", "exec"), namespace)  # would pip install if it thought it was Colab
    assert "sys" in namespace and "URL" not in namespace and "subprocess" not in namespace


@pytest.mark.parametrize("module, variable", [(False, False), (True, False), (False, True), (True, True)])
def test_the_setup_cell_and_in_colab_agree(demo_course, monkeypatch, module, variable):
    # Colab's kernel imports google.colab when it starts and sets COLAB_RELEASE_TAG; a student who runs
    # the import cell first still has the variable, so the setup cell installs dlcourse all the same
    setup = student_notebook(demo_course, "99_demo").cells[1].source
    assert f"if {COLAB_CHECK}:" in setup
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-20260819-060000-RC00")
    if not variable:
        monkeypatch.delenv("COLAB_RELEASE_TAG")
    if module:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert eval(COLAB_CHECK, {"sys": sys, "os": os}) == in_colab() == (module or variable)


def test_the_course_data_mirror_is_set_by_the_setup_cell_unless_the_student_set_one(demo_course, monkeypatch):
    assert "DLCOURSE_DATA_MIRROR" not in student_notebook(demo_course, "99_demo").cells[1].source
    course = dataclasses.replace(demo_course, data_mirror="https://data.example.edu/dl")
    setup = student_notebook(course, "99_demo").cells[1].source
    monkeypatch.setenv("DLCOURSE_DATA_MIRROR", "")
    monkeypatch.delenv("DLCOURSE_DATA_MIRROR")
    exec(compile(setup, "setup-cell", "exec"), {})
    assert os.environ["DLCOURSE_DATA_MIRROR"] == "https://data.example.edu/dl"
    monkeypatch.setenv("DLCOURSE_DATA_MIRROR", "/content/drive/MyDrive/data")
    exec(compile(setup, "setup-cell", "exec"), {})
    assert os.environ["DLCOURSE_DATA_MIRROR"] == "/content/drive/MyDrive/data"


def test_only_the_assignments_in_the_gpu_table_ask_for_a_gpu_and_say_why(demo_course):
    assert "needs no GPU" in student_notebook(demo_course, "99_demo").cells[0].source
    course = dataclasses.replace(demo_course, gpu={"99_demo": "part 2 trains a ResNet"})
    badges = student_notebook(course, "99_demo").cells[0].source
    assert "**Runtime > Change runtime type > T4 GPU**: part 2 trains a ResNet." in badges
    assert "needs no GPU" not in badges


@pytest.mark.parametrize("setting, message", [
    ('data_mirror = "data.example.edu"', "data_mirror = 'data.example.edu' is not a URL"),
    ("gpu = { 99_demo = 1 }", "[tool.dlcourse.gpu] takes one line per assignment"),
])
def test_a_bad_mirror_or_gpu_setting_is_one_clear_error(demo_course, setting, message):
    pyproject = demo_course.root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + setting + "\n")
    with pytest.raises(CourseError, match=message.replace("[", "\\[").replace("]", "\\]")):
        load_course(demo_course.root)


def test_solution_notebook_is_executed_without_markers_or_hidden_tests(demo_course):
    build(demo_course, "99_demo", execute_solution=True, log=lambda *_: None)
    text = demo_course.solution_path("99_demo").read_text()
    assert "the distinctive solution line" in text
    assert "Because multiplication distributes" in text
    assert "the hidden negative-number test" not in text
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
    nb = nbformat.read(str(demo_course.solution_path("99_demo")), as_version=4)
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code"), "every cell ran"
    assert not any("nbgrader" in c.metadata for c in nb.cells)


def test_build_is_byte_for_byte_reproducible(demo_course):
    build(demo_course, "99_demo", execute_solution=True, log=lambda *_: None)
    first = demo_course.student_path("99_demo").read_bytes()
    build(demo_course, "99_demo", execute_solution=True, log=lambda *_: None)
    assert demo_course.student_path("99_demo").read_bytes() == first
    assert stale_files(demo_course, "99_demo") == []


def test_stale_generated_files_are_detected(demo_course):
    build(demo_course, "99_demo", execute_solution=False)
    source = demo_course.source_path("99_demo")
    source.write_text(source.read_text().replace("Write `double`.", "Write `double`, carefully."))
    assert stale_files(demo_course, "99_demo") == [
        "assignments/99_demo/99_demo.ipynb",
        "solutions/99_demo/99_demo.ipynb",
    ]


def test_hand_edited_solution_cell_is_stale_but_outputs_are_not(demo_course):
    build(demo_course, "99_demo", execute_solution=True, log=lambda *_: None)
    path = demo_course.solution_path("99_demo")
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []  # outputs may differ from run to run: not stale
    nbformat.write(nb, str(path))
    assert stale_files(demo_course, "99_demo") == []
    nb.cells[-2].source += "\n# edited by hand"
    nbformat.write(nb, str(path))
    assert stale_files(demo_course, "99_demo") == ["solutions/99_demo/99_demo.ipynb"]


@pytest.mark.parametrize(
    "broken, message",
    [
        (DEMO_SOURCE.replace("    ### END SOLUTION\n", "", 1), "never closed"),
        (DEMO_SOURCE.replace("    ### BEGIN SOLUTION\n", "", 1), "without a matching BEGIN"),
        (DEMO_SOURCE.replace('tests="test_double"', 'tests="double"'), "already used by cell"),
        (DEMO_SOURCE.replace('tests="test_double" points=2', 'tests="test_double"'), "has no points"),
        (DEMO_SOURCE.replace('points=2', 'points=-1'), "must be a positive number"),
        (DEMO_SOURCE.replace('# %% solution="double"', "# %%"), "solution markers in a cell that is not"),
    ],
)
def test_broken_sources_are_refused_naming_file_and_cell(tmp_path, broken, message):
    course = make_course(tmp_path, source=broken)
    with pytest.raises(SourceError) as error:
        read_source(course.source_path("99_demo"))
    text = str(error.value)
    assert message in text
    assert "99_demo.py" in text and "cell " in text


def test_unknown_assignment_lists_the_known_ones(demo_course, monkeypatch, capsys):
    monkeypatch.chdir(demo_course.root)
    monkeypatch.delenv("DLCOURSE_ROOT", raising=False)
    assert main(["check", "42_nothing"]) == EXIT_COURSE_ERROR
    err = capsys.readouterr().err
    assert "unknown assignment(s): 42_nothing" in err and "Known assignments: 99_demo" in err


def test_build_of_a_broken_source_exits_with_the_message(tmp_path, monkeypatch, capsys):
    course = make_course(tmp_path, source=DEMO_SOURCE.replace('tests="test_double" points=2', 'tests="test_double"'))
    monkeypatch.chdir(course.root)
    monkeypatch.delenv("DLCOURSE_ROOT", raising=False)
    assert main(["build", "99_demo", "--no-execute"]) == EXIT_COURSE_ERROR
    assert "graded cell 'test_double' has no points" in capsys.readouterr().err


def test_colab_index_has_a_badge_per_assignment_and_goes_stale(demo_course):
    from dlcourse.instructor.authoring.build import stale_colab_files, write_colab_index

    assert stale_colab_files(demo_course) == ["colab/README.md", "colab/index.ipynb"]
    write_colab_index(demo_course)
    assert stale_colab_files(demo_course) == []
    readme = (demo_course.root / "colab" / "README.md").read_text()
    assert ("https://colab.research.google.com/github/example/course/blob/v1/assignments/99_demo/99_demo.ipynb"
            in readme)
    assert "| 99_demo | Demo assignment |" in readme
    assert "Drive" in readme


@pytest.mark.parametrize("broken, message", [
    (DEMO_SOURCE.replace('solution="double"', "solution=double"), 'the id in solution=double needs quotes: solution="double"'),
    (DEMO_SOURCE.replace('points=2', "points=three", 1), "points=three is not a number; write points=2"),
    (DEMO_SOURCE.replace('tests="test_double" points=2', "tests points=2"), 'tests has no value; write tests="an_id"'),
    (DEMO_SOURCE.replace('tests="test_double"', 'test="test_double"'), "unknown key test=; did you mean tests=?"),
], ids=["unquoted id", "points not a number", "key without a value", "misspelt key"])
def test_header_mistakes_get_a_message_about_what_is_actually_wrong(tmp_path, broken, message):
    """What jupytext silently drops used to surface as an unrelated error about markers or points."""
    course = make_course(tmp_path, source=broken)
    with pytest.raises(SourceError) as error:
        read_source(course.source_path("99_demo"))
    assert message in str(error.value) and "99_demo.py, line " in str(error.value)


RUBRIC = '''
# %% [markdown] rubric="rubric_double"
# | criterion | points |
# | --- | --- |
# | names the ring axiom | 0.5 |
# | one clear sentence | 0.5 |
'''
RUBRIC_SOURCE = DEMO_SOURCE.replace('\n# %% [markdown] answer="why_double"', RUBRIC + '\n# %% [markdown] answer="why_double"')


def test_a_rubric_is_a_read_only_cell_right_above_the_answer_it_grades(tmp_path):
    course = make_course(tmp_path, source=RUBRIC_SOURCE)
    build(course, "99_demo", execute_solution=False)
    nb = nbformat.read(str(course.student_path("99_demo")), as_version=4)
    rubric = cell_by_id(nb, "rubric_double")
    assert rubric.cell_type == "markdown" and "names the ring axiom | 0.5" in rubric.source
    meta = rubric.metadata.nbgrader
    assert meta["locked"] and not meta["grade"] and not meta["solution"] and "checksum" in meta
    assert rubric.metadata.editable is False and rubric.metadata.deletable is False  # read-only in JupyterLab
    answer = nb.cells[nb.cells.index(rubric) + 1]
    assert answer.metadata.nbgrader["grade_id"] == "why_double"
    solution = nbformat.read(str(course.solution_path("99_demo")), as_version=4)
    assert any("names the ring axiom" in c.source and not c.metadata for c in solution.cells)


@pytest.mark.parametrize("broken, message", [
    (RUBRIC_SOURCE.replace("| 0.5 |\n# | one", "| 1.5 |\n# | one"), "rubric 'rubric_double' gives 2 points in all, but "
     "the answer below it ('why_double') is worth points=1"),
    (RUBRIC_SOURCE.replace("| criterion | points |", "| criterion | score |"), "has no 'points' column"),
    (RUBRIC_SOURCE.replace("| 0.5 |\n# | one", "| half |\n# | one"), "criterion 'names the ring axiom' has points 'half'"),
    (DEMO_SOURCE.replace('# %% tests="test_double"', RUBRIC.strip() + '\n\n# %% tests="test_double"'),
     "must be followed by the written answer it grades"),
    (DEMO_SOURCE + RUBRIC, "must be followed by the written answer it grades"),
    (RUBRIC_SOURCE.replace('rubric="rubric_double"', 'rubric="rubric_double" points=1'), "points= belongs on the answer"),
], ids=["points do not add up", "no points column", "points not a number", "above a tests cell", "last cell",
        "points on the rubric"])
def test_a_rubric_that_does_not_fit_its_answer_is_refused_in_one_line(tmp_path, broken, message):
    course = make_course(tmp_path, source=broken)
    with pytest.raises(SourceError) as error:
        read_source(course.source_path("99_demo"))
    text = str(error.value)
    assert message in text and "99_demo.py, cell " in text and "\n" not in text
