"""What Colab writes is graded like the original.

Colab saves a notebook as nbformat 4.0 (no cell ids), adds ``metadata.id`` and
``metadata.colab`` to cells and ``outputId`` to code cells, keeps sources as lists of lines,
adds its own notebook metadata, and a download is named ``Copy of 99_demo.ipynb``
("Copy of 99_demo (1).ipynb" the second time). The solution and a partly right notebook,
saved that way, get the scores of the originals, and the student id never becomes the file
name, whether the batch is a flat folder, a folder per student or an LMS zip.
"""

from __future__ import annotations

import json
import textwrap
import zipfile
from pathlib import Path

import nbformat
import pytest

from dlcourse.instructor.authoring.build import build, student_notebook
from dlcourse.instructor.grading.batch import BatchOptions, grade_batch
from dlcourse.instructor.grading.submissions import SubmissionError, find_submissions
from tests.conftest import make_course

SOURCE = textwrap.dedent('''\
    # %% [markdown]
    # # Two functions

    # %% solution="double"
    def double(x):
        ### BEGIN SOLUTION
        return 2 * x
        ### END SOLUTION

    # %% tests="test_double" points=2
    assert double(2) == 4
    ### BEGIN HIDDEN TESTS
    assert double(-3.5) == -7.0
    ### END HIDDEN TESTS

    # %% solution="triple"
    def triple(x):
        ### BEGIN SOLUTION
        return 3 * x
        ### END SOLUTION

    # %% tests="test_triple" points=3
    assert triple(2) == 6
    ### BEGIN HIDDEN TESTS
    assert triple(-1) == -3
    ### END HIDDEN TESTS
    ''')
ANSWERS = {"double": "def double(x):\n    return 2 * x", "triple": "def triple(x):\n    return 3 * x"}
PARTIAL = {"double": ANSWERS["double"], "triple": "def triple(x):\n    return x + x + 2  # right at 2 only"}


def quiet(*_):
    pass


@pytest.fixture
def course(tmp_path):
    root = tmp_path / "course"
    root.mkdir()
    course = make_course(root, source=SOURCE)
    course.mutants_path("99_demo").write_text("")
    build(course, "99_demo", execute_solution=False, log=quiet)
    return course


def answered(course, answers: dict[str, str]) -> dict:
    nb = student_notebook(course, "99_demo")
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
    return json.loads(nbformat.writes(nb))


def colab_saved(nb: dict, name: str = "Copy of 99_demo.ipynb") -> dict:
    """The notebook as Colab saves it after a student ran it."""
    nb = json.loads(json.dumps(nb))
    nb["nbformat"], nb["nbformat_minor"] = 4, 0
    nb["metadata"] = {"colab": {"provenance": [], "name": name, "gpuType": "T4"},
                      "kernelspec": {"name": "python3", "display_name": "Python 3"},
                      "language_info": {"name": "python"}, "accelerator": "GPU"}
    for number, cell in enumerate(nb["cells"]):
        cell.pop("id", None)
        text = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        cell["source"] = text.splitlines(keepends=True)
        cell["metadata"]["id"] = f"Xb{number:04d}qZ"
        if cell["cell_type"] == "code":
            cell["metadata"]["colab"] = {"base_uri": "https://localhost:8080/"}
            cell["metadata"]["outputId"] = f"5e1f{number:04d}-0c1d-4b2a-9f3e-{number:012d}"
            cell["execution_count"] = number
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["ran\n"]}]
    return nb


def write(path: Path, nb: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=2))
    return path


def scores(course, batch: Path, db: Path) -> dict[str, float]:
    rows = grade_batch(course, "99_demo", batch, BatchOptions(progress=False, db_url=f"sqlite:///{db}"), log=quiet)
    return {row.student: row.score for row in rows}


def test_colab_saved_solution_and_partial_grade_like_the_originals(course, tmp_path):
    originals = tmp_path / "originals"
    write(originals / "ada.ipynb", answered(course, ANSWERS))
    write(originals / "bob.ipynb", answered(course, PARTIAL))
    saved = tmp_path / "colab"
    write(saved / "ada" / "Copy of 99_demo.ipynb", colab_saved(answered(course, ANSWERS)))
    write(saved / "bob" / "Copy of 99_demo (1).ipynb", colab_saved(answered(course, PARTIAL)))
    expected = scores(course, originals, tmp_path / "a.db")
    assert expected == {"ada": 5, "bob": 2}
    assert scores(course, saved, tmp_path / "b.db") == expected


def test_a_colab_download_in_a_flat_folder_is_refused_not_named_copy_of(course, tmp_path):
    flat = tmp_path / "flat"
    write(flat / "ada.ipynb", colab_saved(answered(course, ANSWERS)))
    write(flat / "Copy of 99_demo.ipynb", colab_saved(answered(course, ANSWERS)))
    with pytest.raises(SubmissionError, match=r"Copy of 99_demo.ipynb is named after the assignment, not a student"):
        find_submissions(flat, "99_demo")
    single = write(tmp_path / "carol" / "Copy of 99_demo.ipynb", colab_saved(answered(course, ANSWERS)))
    assert [s.student for s in find_submissions(single, "99_demo")] == ["carol"]


def test_lms_zips_of_colab_downloads_keep_the_student_id(course, tmp_path):
    nb = json.dumps(colab_saved(answered(course, ANSWERS)))
    canvas = tmp_path / "canvas.zip"
    with zipfile.ZipFile(canvas, "w") as zf:
        zf.writestr("ada_123_456_Copy of 99_demo.ipynb", nb)
        zf.writestr("bob_late_124_457_Copy of 99_demo-1.ipynb", nb)
        zf.writestr("bob_late_124_457_notes.ipynb", json.dumps(colab_saved(answered(course, {}))))
    found = find_submissions(canvas, "99_demo", tmp_path)
    assert [(s.student, s.notebook.name) for s in found] == [
        ("ada", "ada_123_456_Copy of 99_demo.ipynb"), ("bob", "bob_late_124_457_Copy of 99_demo-1.ipynb")]
    moodle = tmp_path / "moodle.zip"
    with zipfile.ZipFile(moodle, "w") as zf:
        zf.writestr("Ada Lovelace_991_assignsubmission_file_/Copy of 99_demo.ipynb", nb)
    assert [s.student for s in find_submissions(moodle, "99_demo", tmp_path)] == ["Ada_Lovelace"]
    assert scores(course, canvas, tmp_path / "c.db") == {"ada": 5, "bob": 5}
