"""A TA grades a project by hand in nbgrader's formgrader after `dlcourse grade` of a sample batch of
02_cnn: the project's automatic check is in the grade CSV, the rubric (criteria and points) is the cell
right above the write-up's grade box, and the points the TA gives land in the gradebook and in
`nbgrader export`."""

from __future__ import annotations

import csv
import shutil
import time

import pytest
from nbgrader.api import Gradebook
from playwright.sync_api import expect

from .conftest import ROOT
from .test_formgrader import gradebook_url, nbgrader_export

pytestmark = pytest.mark.browser

ASSIGNMENT = "02_cnn"
AUTOMATIC = "test_project_02 (2)"  # the grade CSV's column of the automatic project checks
WRITEUP = "project_02_writeup"  # the write-up, 8 points by the rubric
RUBRIC_TITLE = "Rubric (graded by hand by a TA, 8 points)"


@pytest.fixture(scope="module")
def project_batch(lab, graded_batch):
    """student id -> grade CSV row of a sample batch of 02_cnn: the solution handed in after Run All (its
    outputs hold the reference project's record) and the blank notebook. Graded after the session's
    01_backprop batch (graded_batch), so that one grader at a time writes the gradebook."""
    sample, table = lab.course.parent / "sample-02", lab.course.parent / "grades-02.csv"
    # the executed solution: `dlcourse sample` hands the solution in with its outputs (the course copy has no solutions/)
    shutil.copytree(ROOT / "solutions" / ASSIGNMENT, lab.course / "solutions" / ASSIGNMENT, dirs_exist_ok=True)
    lab.dlcourse("sample", ASSIGNMENT, str(sample), "--count", "2", "--no-broken")
    lab.dlcourse("grade", ASSIGNMENT, str(sample), "--workers", "2", "--no-progress", "--csv", str(table))
    with open(table) as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def test_a_ta_grades_a_project_writeup_by_its_rubric_and_sees_the_points_in_nbgrader_export(
        page, lab, project_batch, tmp_path, shots):
    student = next(s for s in project_batch if "solution" in s)
    blank = next(s for s in project_batch if "blank" in s)
    # the automatic part is in the CSV like any test: the reference run's record passes, the blank has none
    assert project_batch[student][AUTOMATIC] == "2" and project_batch[blank][AUTOMATIC] == "0"

    page.goto(lab.lab_url())  # logs in (the formgrader's own requests carry the cookie, not the token)
    page.goto(f"{lab.url}/formgrader/gradebook/{ASSIGNMENT}/{ASSIGNMENT}")
    table = page.locator("table tbody")
    expect(table.locator("a.name-shown")).not_to_have_count(0, timeout=30_000)
    page.get_by_text("Show All Names").click()
    loaded = lambda what: lambda r: f"/formgrader/api/{what}?" in r.url and r.request.method == "GET"  # noqa: E731
    with page.expect_response(loaded("grades")), page.expect_response(loaded("comments")):
        table.locator("a.name-shown", has_text=student).click()

    score = page.locator(f"input.score#{WRITEUP}")
    expect(score).to_be_visible(timeout=30_000)
    rubric = page.get_by_text(RUBRIC_TITLE)
    expect(rubric).to_be_visible()
    expect(page.get_by_text("Ablation: batch norm, residual connections and augmentation")).to_be_visible()
    # the rubric is the cell right above the write-up the TA grades, read-only (no grade box of its own)
    rubric_cell, answer_cell, rubric_inputs = page.evaluate(f"""() => {{
        const cells = [...document.querySelectorAll("div.cell")].filter(c => !c.parentElement.closest("div.cell"));
        const rubric = cells.findIndex(c => c.textContent.includes({RUBRIC_TITLE!r}));
        const answer = cells.findIndex(c => c.querySelector("input.score#{WRITEUP}"));
        return [rubric, answer, rubric < 0 ? -1 : cells[rubric].querySelectorAll("input, textarea").length];
    }}""")
    assert rubric_cell >= 0 and answer_cell == rubric_cell + 1 and rubric_inputs == 0, (rubric_cell, answer_cell)
    score.scroll_into_view_if_needed()
    shots(page, "formgrader-project-rubric")

    score.fill("6.5")
    with page.expect_response(lambda r: "/formgrader/api/grade/" in r.url and r.request.method == "PUT") as sent:
        score.press("Tab")  # the formgrader saves a score when it changes
    assert sent.value.ok, sent.value.status
    deadline = time.monotonic() + 20  # saved in the background
    while True:
        with Gradebook(gradebook_url(lab)) as gb:
            saved = gb.find_grade(WRITEUP, ASSIGNMENT, ASSIGNMENT, student).manual_score
            total = gb.find_submission(ASSIGNMENT, student).score
        if saved == 6.5 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert saved == 6.5
    assert total == float(project_batch[student]["score"]) + 6.5

    rows = nbgrader_export(lab, tmp_path)
    assert float(rows[ASSIGNMENT, student]["score"]) == total
