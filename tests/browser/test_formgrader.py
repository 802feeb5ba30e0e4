"""An instructor or TA in nbgrader's formgrader after `dlcourse grade` of a sample batch:
the assignment, every student and score, the flag of a flagged submission; a written
answer graded by hand with a comment lands in the gradebook and in `nbgrader export`."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from nbgrader.api import Gradebook
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

ASSIGNMENT = "01_backprop"
FLAGGED = "zz-metadata-stripped"  # graded, and flagged: its test cells were recognised by content
WRITTEN = "q_saturation"  # a written answer (2 points) graded by hand
COMMENT = "Right: a saturated sigmoid passes back almost no gradient."


def gradebook_url(lab) -> str:
    return f"sqlite:///{lab.course / 'autograder' / 'gradebook.db'}"


def nbgrader_export(lab, folder: Path) -> dict[tuple[str, str], dict]:
    """The course's grades as `nbgrader export` writes them: (assignment, student id) -> CSV row."""
    exported = folder / "grades.csv"
    done = subprocess.run([str(Path(sys.executable).parent / "nbgrader"), "export", "--to", str(exported)],
                          cwd=lab.course / "autograder", env=lab.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    with open(exported) as f:
        return {(r["assignment"], r["student_id"]): r for r in csv.DictReader(f)}


def submissions_page(page, lab):
    """Manual Grading > 01_backprop > 01_backprop, names shown."""
    page.goto(lab.lab_url())  # logs in (the formgrader's own requests carry the cookie, not the token)
    page.goto(f"{lab.url}/formgrader/gradebook/{ASSIGNMENT}/{ASSIGNMENT}")
    table = page.locator("table tbody")
    expect(table.locator("a.name-shown")).not_to_have_count(0, timeout=30_000)  # loaded
    page.get_by_text("Show All Names").click()
    return table


def test_the_formgrader_opens_from_jupyterlabs_nbgrader_menu(page, lab, graded_batch):
    page.goto(lab.lab_url())
    page.get_by_role("menuitem", name="Nbgrader").click()
    page.get_by_role("menuitem", name=re.compile("Formgrader")).click()
    formgrader = page.frame_locator("iframe")
    expect(formgrader.get_by_role("link", name="Manual Grading")).to_be_visible(timeout=30_000)
    formgrader.get_by_role("link", name="Manual Grading").click()
    assignment = formgrader.locator("table tbody tr", has=formgrader.get_by_role("link", name=ASSIGNMENT))
    mean = sum(float(row["score"]) for row in graded_batch.values()) / len(graded_batch)
    expect(assignment).to_contain_text(f"{round(mean, 2):g} / ", timeout=30_000)  # the batch's mean score
    formgrader.get_by_role("link", name="Manage Students").click()
    for student in graded_batch:
        expect(formgrader.locator("table")).to_contain_text(student)


def test_every_student_score_and_the_flag_are_listed(page, lab, graded_batch, shots):
    table = submissions_page(page, lab)
    expect(table.locator("tr")).to_have_count(len(graded_batch))
    for student, row in graded_batch.items():
        line = table.locator("tr", has=page.locator("a.name-shown", has_text=re.compile(f"^{re.escape(student)}$")))
        expect(line.locator("td.score")).to_have_text(re.compile(rf"^{float(row['score']):g} / \d+"))
        flag = line.locator("td.flagged .glyphicon-flag")
        expect(flag).to_have_count(1 if student == FLAGGED or row["status"] != "graded" else 0)
    assert graded_batch[FLAGGED]["flags"], "the sample's flagged submission carries no flag"
    shots(page, "formgrader-flagged")


def test_a_ta_grades_a_written_answer_and_comments(page, lab, graded_batch, tmp_path):
    student = next(s for s, row in graded_batch.items() if row["status"] == "graded" and "solution" in s)
    table = submissions_page(page, lab)
    loaded = lambda what: lambda r: f"/formgrader/api/{what}?" in r.url and r.request.method == "GET"  # noqa: E731
    with page.expect_response(loaded("grades")), page.expect_response(loaded("comments")):
        table.locator("a.name-shown", has_text=student).click()  # the inputs save once these arrived
    score = page.locator(f"input.score#{WRITTEN}")
    expect(score).to_be_visible(timeout=30_000)
    score.fill("1.5")
    with page.expect_response(lambda r: "/formgrader/api/grade/" in r.url and r.request.method == "PUT") as sent:
        score.press("Tab")  # the formgrader saves a score when it changes
    assert sent.value.ok, sent.value.status
    comment = page.locator(f"textarea.comment#{WRITTEN}-comment")
    comment.fill(COMMENT)
    with page.expect_response(lambda r: "/formgrader/api/comment/" in r.url and r.request.method == "PUT") as sent:
        comment.press("Tab")
    assert sent.value.ok, sent.value.status

    deadline = time.monotonic() + 20  # the page saves in the background: wait for both
    while True:
        with Gradebook(gradebook_url(lab)) as gb:
            grade = gb.find_grade(WRITTEN, ASSIGNMENT, ASSIGNMENT, student)
            comment_row = gb.find_comment(WRITTEN, ASSIGNMENT, ASSIGNMENT, student)
            saved = (grade.manual_score, comment_row.manual_comment)
            total = gb.find_submission(ASSIGNMENT, student).score
        if saved == (1.5, COMMENT) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert saved == (1.5, COMMENT)
    assert total == float(graded_batch[student]["score"]) + 1.5

    rows = nbgrader_export(lab, tmp_path)
    assert float(rows[ASSIGNMENT, student]["score"]) == total
