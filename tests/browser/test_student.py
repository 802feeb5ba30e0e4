"""A student in JupyterLab: opens 00_setup, types answers with the keyboard, runs the
tests, validates with nbgrader's toolbar button, saves, and the saved file grades."""

from __future__ import annotations

import csv
import shutil

import nbformat
import pytest
from playwright.sync_api import expect

from .conftest import VIEWPORT, close_page, open_page
from .notebook import Notebook, cell_indices

pytestmark = pytest.mark.browser

# The student's own copy of the handed-out notebook: typing into assignments/ itself would make the
# course copy's student notebook older than its source, and `dlcourse grade` refuses a stale course.
HANDED_OUT = "assignments/00_setup/00_setup.ipynb"
NOTEBOOK = "student-work/00_setup.ipynb"
RIGHT = ["def standardize(x, eps=1e-8):",
         "return (x - x.mean(dim=0)) / (x.std(dim=0, correction=0) + eps)"]
WRONG = ["def standardize(x, eps=1e-8):",  # over rows instead of columns
         "return (x - x.mean(dim=1, keepdim=True)) / (x.std(dim=1, correction=0, keepdim=True) + eps)"]


@pytest.fixture(scope="module")
def notebook(browser, lab):
    """00_setup open in JupyterLab with its kernel started and the set-up cells run."""
    (lab.course / NOTEBOOK).parent.mkdir(exist_ok=True)
    shutil.copy(lab.course / HANDED_OUT, lab.course / NOTEBOOK)
    page = open_page(browser, lab)
    nb = Notebook(page, NOTEBOOK).open(lab.lab_url(NOTEBOOK))
    nb.grade_ids = cell_indices(lab.course / NOTEBOOK)
    first_solution = nb.grade_ids["standardize"]
    setup = [i for i in range(first_solution)
             if "jp-CodeCell" in (nb.cell(i).get_attribute("class") or "")]
    for index in setup:  # the Colab install cell (a no-op here) and the imports
        nb.run(index)
    yield nb
    close_page(page)


def test_a_wrong_answer_shows_the_hint_of_the_test(notebook):
    solution, test = notebook.grade_ids["standardize"], notebook.grade_ids["test_standardize"]
    notebook.type_into(solution, *WRONG)
    notebook.run(solution)
    notebook.run(test)
    shown = notebook.output(test)
    assert "CheckError" in shown and "column means of standardize(x)" in shown
    assert "hint: each column should have mean 0: reduce over dim=0" in shown


def test_an_unsolved_exercise_says_it_is_not_implemented(notebook):
    solution = notebook.grade_ids["pairwise_sq_distances"]
    test = notebook.grade_ids["test_pairwise_sq_distances"]
    notebook.run(solution)  # the blank solution cell, as handed out
    notebook.run(test)
    shown = notebook.output(test)
    assert "NotImplementedError" in shown and "pairwise_sq_distances" in shown
    assert "not written yet: replace these two lines with your code" in shown  # what to do, not only a traceback


def test_a_typed_solution_passes_and_the_saved_file_grades_full_marks(notebook, lab, shots, tmp_path):
    solution, test = notebook.grade_ids["standardize"], notebook.grade_ids["test_standardize"]
    notebook.type_into(solution, *RIGHT)
    notebook.run(solution)
    notebook.run(test)
    expect(notebook.errors(test)).to_have_count(0)
    shown = notebook.output(test)  # nothing, or the test's own "passed" line
    assert "Error" not in shown and "Traceback" not in shown, shown
    notebook.scroll_to(solution - 1)  # the exercise's text, the typed solution, the passing test
    bottom = notebook.cell(test).bounding_box()
    shots(notebook.page, "student-test-passes",
          clip={"x": 0, "y": 0, "width": VIEWPORT["width"], "height": bottom["y"] + bottom["height"] + 8})
    notebook.save()
    saved = nbformat.read(str(lab.course / NOTEBOOK), as_version=4)
    assert saved.cells[solution].source == f"{RIGHT[0]}\n    {RIGHT[1]}"  # typed, auto-indented, saved

    handin = tmp_path / "handin"
    handin.mkdir()
    shutil.copy(lab.course / NOTEBOOK, handin / "browser-student.ipynb")
    table = tmp_path / "grades.csv"
    done = lab.dlcourse("grade", "00_setup", str(handin), "--csv", str(table), "--no-progress", "--workers", "1",
                        "--db", f"sqlite:///{tmp_path / 'gradebook.db'}", "--nbgrader-dir", str(tmp_path / "nbgrader"))
    assert table.exists(), done.stdout + done.stderr
    with open(table) as f:
        (row,) = list(csv.DictReader(f))
    assert row["status"] == "graded", row
    assert row["test_standardize (2)"] == "2", row  # the solved cell: full marks
    assert row["test_pairwise_sq_distances (2)"] == "0", row  # still blank


def test_validate_button_shows_nbgraders_verdict(notebook):
    page = notebook.page
    page.locator(".jp-NotebookPanel-toolbar").get_by_role("button", name="Validate").click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_contain_text("Validation Results", timeout=120_000)
    expect(dialog).to_contain_text("The following cell failed", timeout=120_000)
    verdict = dialog.inner_text()
    assert "pairwise_sq_distances" in verdict and "NotImplementedError" in verdict
    dialog.locator(".jp-mod-accept").first.click()
    expect(dialog).to_have_count(0)
