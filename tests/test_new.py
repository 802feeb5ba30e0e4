"""`dlcourse new NN_name`: an instructor starts an assignment with one command and carries it through
build, check, grade, publish and release; a folder that breaks the naming rule says which rule."""

from __future__ import annotations

import nbformat
import pytest

from dlcourse.cli import EXIT_COURSE_ERROR, EXIT_OK, main
from tests.test_publish import course, in_course, quiet  # noqa: F401  (fixtures: a built demo course)


def test_a_new_assignment_goes_through_the_whole_pipeline(in_course, tmp_path, capsys):  # noqa: F811
    assert main(["new", "07_optim"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "wrote notebooks/07_optim/07_optim.py" in out and "wrote autograder/07_optim/mutants.toml" in out
    assert "[tool.dlcourse.release_dates]" in out and "dlcourse build 07_optim && dlcourse check 07_optim" in out
    assert main(["build", "07_optim"]) == EXIT_OK
    assert main(["check", "07_optim"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "07_optim" in out and "2/2" in out  # both mutants caught
    assert "note: 07_optim has no release date" in out

    student = nbformat.read(str(in_course.student_path("07_optim")), as_version=4)
    for cell in student.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "mean_square":
            cell.source = "def mean_square(x):\n    return sum(v * v for v in x) / len(x)\n"
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    nbformat.write(student, str(submissions / "ada.ipynb"))
    assert main(["grade", "07_optim", str(submissions), "--csv", str(tmp_path / "grades.csv"),
                 "--no-progress"]) == EXIT_OK
    grades = (tmp_path / "grades.csv").read_text()
    assert "ada,07_optim,2,2" in grades

    destination = tmp_path / "student-course"
    assert main(["publish", "--to", str(destination)]) == EXIT_OK
    assert (destination / "assignments" / "07_optim" / "07_optim.ipynb").exists()
    assert main(["release", "07_optim", "--to", str(destination)]) == EXIT_COURSE_ERROR  # no date yet
    assert "07_optim has no release date" in capsys.readouterr().err
    assert main(["release", "07_optim", "--to", str(destination), "--force"]) == EXIT_OK
    assert (destination / "solutions" / "07_optim" / "07_optim.ipynb").exists()


def test_new_refuses_a_bad_name_and_an_existing_assignment(in_course, capsys):  # noqa: F811
    assert main(["new", "optim"]) == EXIT_COURSE_ERROR
    assert "breaks the naming rule NN_name" in capsys.readouterr().err
    assert main(["new", "99_demo"]) == EXIT_COURSE_ERROR
    assert "exists already" in capsys.readouterr().err


@pytest.mark.parametrize("folder, message", [
    ("7_Optim", "its name breaks the rule NN_name"), ("08_optim", "has no 08_optim.py")])
def test_a_folder_that_is_not_an_assignment_says_which_rule_it_breaks(in_course, capsys, folder, message):  # noqa: F811
    (in_course.notebooks_dir / folder).mkdir()
    if folder == "7_Optim":
        (in_course.notebooks_dir / folder / f"{folder}.py").write_text("# %%\n")
    assert main(["check", folder]) == EXIT_COURSE_ERROR
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
