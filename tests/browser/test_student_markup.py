"""Nothing a student wrote runs in a page a TA or an instructor opens. A submission carries script
payloads in a markdown cell (a written answer is one), in HTML, SVG, JavaScript and markdown outputs,
in a failure message and in its student id; it is graded into the course copy's gradebook, then its
feedback page, the batch report, the similarity report and the formgrader's view of the autograded
notebook are opened in Chromium: no payload runs (no dialog, no marker set), while an honest
submission's table and SVG plot still show and cost no flag."""

from __future__ import annotations

import csv
import json

import nbformat
import pytest
from playwright.sync_api import expect

from dlcourse.instructor.authoring.build import student_notebook
from dlcourse.instructor.authoring.check import solved_notebook
from dlcourse.instructor.course import load_course
from dlcourse.instructor.source import read_source

pytestmark = pytest.mark.browser

ASSIGNMENT = "00_setup"
ATTACKER, HONEST = "eve<img src=x onerror=alert('xss-id')>", "honest-tables"

# every payload calls alert() with its own name, and sets a marker on the top window
def js(name: str) -> str:
    return f"alert('xss-{name}');top.xss=(top.xss||[]).concat('{name}')"


MARKDOWN = "\n\n".join([
    "A written answer with markup in it:",
    f"<img src=x onerror=\"{js('md-img')}\">",
    f"<script>{js('md-script')}</script>",
    f"[a link](javascript:{js('md-link')})",
    f"<svg><script>{js('md-svg')}</script></svg>",
    f"<iframe srcdoc=\"<script>parent.{js('md-iframe')}</script>\"></iframe>",
    f"<details open ontoggle=\"{js('md-toggle')}\"><summary>x</summary>y</details>",
])
OUTPUTS = f'''from IPython.display import HTML, SVG, Javascript, Markdown, display
display(HTML("<img src=x onerror=\\"{js('html-img')}\\">"))
display(SVG('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10" onload="{js('svg-onload')}">'
            '<script>{js('svg-script')}</script></svg>'))
display(Javascript("{js('javascript')}"))
display(Markdown("<img src=x onerror=\\"{js('markdown-output')}\\">"))
'''
FAILING = f'''def standardize(x):
    raise AssertionError("<img src=x onerror=\\"{js('failure-message')}\\">")
'''
HONEST_OUTPUTS = '''from IPython.display import HTML, SVG, display
display(HTML("<table id='honest-table'><tr><th>epoch</th><th>loss</th></tr><tr><td>1</td><td>0.5</td></tr></table>"))
display(SVG('<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><rect width="40" height="20" fill="teal"/></svg>'))
'''


@pytest.fixture(scope="module")
def markup_batch(lab, graded_batch, tmp_path_factory):
    """An attacking and an honest submission of 00_setup, graded with feedback into the course copy (after
    the session's sample batch: one writer at a time on the SQLite gradebook)."""
    course = load_course(lab.course)
    source = read_source(course.source_path(ASSIGNMENT))
    student = student_notebook(course, ASSIGNMENT, source)
    folder = tmp_path_factory.mktemp("markup")
    attack = solved_notebook(student, source, replace={"standardize": FAILING})
    attack.cells[3:3] = [nbformat.v4.new_markdown_cell(MARKDOWN), nbformat.v4.new_code_cell(OUTPUTS)]
    honest = solved_notebook(student, source)
    honest.cells[3:3] = [nbformat.v4.new_code_cell(HONEST_OUTPUTS)]
    nbformat.write(attack, str(folder / f"{ATTACKER}.ipynb"))
    nbformat.write(honest, str(folder / f"{HONEST}.ipynb"))
    grades = folder / "grades.csv"
    lab.dlcourse("grade", ASSIGNMENT, str(folder), "--workers", "2", "--no-progress", "--csv", str(grades),
                 "--feedback", "autograder/feedback")
    lab.dlcourse("report", ASSIGNMENT, "-o", str(folder / "report"))
    lab.dlcourse("similarity", ASSIGNMENT, str(folder), "--threshold", "0", "--report", str(folder / "similarity"))
    with open(grades, newline="") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    return folder, rows


def watch(page) -> list[str]:
    """Every dialog a script opens, dismissed and recorded."""
    dialogs: list[str] = []

    def record(dialog):
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", record)
    return dialogs


def assert_nothing_ran(page, dialogs: list[str]) -> None:
    for link in page.locator("a[href^='javascript' i]").all():  # a click would run it: there must be none
        pytest.fail(f"a javascript: link is on the page: {link.get_attribute('href')}")
    page.wait_for_timeout(500)  # onerror/onload fire right after load
    assert dialogs == []
    assert page.evaluate("() => window.top.xss || []") == []
    handlers = page.evaluate("""() => [...document.querySelectorAll('*')].flatMap(e =>
        [...e.attributes].filter(a => a.name.startsWith('on') && a.value.includes('xss')).map(a => a.name))""")
    assert handlers == []


def student_id(rows, prefix: str) -> str:
    return next(s for s in rows if s.startswith(prefix))


def test_the_grade_flags_the_markup_and_keeps_the_scores(markup_batch):
    _, rows = markup_batch
    attacker, honest = rows[student_id(rows, "eve")], rows[HONEST]
    assert "<" not in student_id(rows, "eve")  # ids are made safe when submissions are read
    assert "markup that could run code shown as text" in attacker["flags"]
    assert float(attacker["test_standardize (2)"]) == 0
    assert honest["flags"] == "" and float(honest["score"]) == float(honest["max score"])


def test_the_feedback_page_runs_no_student_script(browser, lab, markup_batch):
    from tests.browser.conftest import close_page, open_page

    _, rows = markup_batch
    for who in (student_id(rows, "eve"), HONEST):
        page = open_page(browser, lab)
        dialogs = watch(page)
        page.goto((lab.course / "autograder" / "feedback" / who / ASSIGNMENT / f"{ASSIGNMENT}.html").as_uri())
        page.wait_for_load_state("load")
        assert_nothing_ran(page, dialogs)
        text = page.locator("body").inner_text()
        if who == HONEST:
            expect(page.locator("#honest-table")).to_be_visible()  # honest HTML is kept as HTML
            assert page.locator("img[src^='data:image/svg+xml']").count() >= 1  # the SVG plot, as an image
        else:
            assert "onerror" in text  # the payloads are shown to the TA, as text
        close_page(page)


def test_the_batch_and_similarity_reports_run_no_student_script(browser, lab, markup_batch):
    from tests.browser.conftest import close_page, open_page

    folder, _ = markup_batch
    pages = [folder / "report" / "index.html", folder / "similarity" / "index.html",
             *sorted((folder / "similarity").glob("pair-*.html"))]
    assert len(pages) >= 3, "the similarity report has no pair page to open"
    for path in pages:
        page = open_page(browser, lab)
        dialogs = watch(page)
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        assert_nothing_ran(page, dialogs)
        close_page(page)


def test_the_formgrader_shows_the_autograded_notebook_without_running_it(page, lab, markup_batch):
    _, rows = markup_batch
    attacker = student_id(rows, "eve")
    dialogs = watch(page)
    page.goto(lab.lab_url())  # logs in
    page.goto(f"{lab.url}/formgrader/gradebook/{ASSIGNMENT}/{ASSIGNMENT}")
    table = page.locator("table tbody")
    expect(table.locator("a.name-shown")).not_to_have_count(0, timeout=30_000)
    page.get_by_text("Show All Names").click()
    table.locator("a.name-shown", has_text=attacker).click()
    expect(page.get_by_text("A written answer with markup in it").first).to_be_visible(timeout=30_000)
    assert_nothing_ran(page, dialogs)
    autograded = json.loads((lab.course / "autograder" / "autograded" / attacker / ASSIGNMENT
                             / f"{ASSIGNMENT}.ipynb").read_text(encoding="utf-8"))
    assert "application/javascript" not in json.dumps(autograded)
