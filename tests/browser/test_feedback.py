"""A student's feedback page from `dlcourse grade --feedback`, opened from disk as a student
opens the file they were sent: no script errors, which tests passed and failed, the
student's own outputs, and no line of a hidden test."""

from __future__ import annotations

import re

import nbformat
import pytest

pytestmark = pytest.mark.browser

ASSIGNMENT = "01_backprop"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"  # nbgrader's markers


def hidden_test_lines(source_text: str) -> list[str]:
    """The lines only a hidden test has: between the hidden-test markers of an assignment
    source and nowhere else in it (a visible test may make the same call)."""
    hidden, visible, inside = [], set(), False
    for line in source_text.splitlines():
        if line.strip() == BEGIN_HIDDEN:
            inside = True
        elif line.strip() == END_HIDDEN:
            inside = False
        else:
            (hidden.append if inside else visible.add)(line.strip())
    return [line for line in hidden if line not in visible and len(line) > 12]  # long enough to be its own


def errors_of_the_page(log: list[str]) -> list[str]:
    """Script errors and failed loads of the page's own files; the CDN scripts that nbconvert's
    template links (MathJax, require.js) are refused on purpose: tests never use the network."""
    refused = [line for line in log if line.startswith("requestfailed: http")]
    return [line for line in log
            if line.startswith("pageerror")
            or (line.startswith("console.error") and not ("ERR_INTERNET_DISCONNECTED" in line and refused))
            or (line.startswith("requestfailed") and not line.startswith("requestfailed: http"))]


def test_a_feedback_page_shows_results_and_outputs_and_no_hidden_test(page, lab, graded_batch, shots):
    student = next(s for s, row in graded_batch.items() if "mutant" in s and row["status"] == "graded")
    row = graded_batch[student]
    html = lab.course / "autograder" / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html"
    page.goto(html.as_uri())
    page.wait_for_load_state("load")
    text = page.locator("body").inner_text()

    assert errors_of_the_page(page.console_log) == []
    assert f"Feedback: {ASSIGNMENT}, {student}" in text
    tests = {m.group(1): float(m.group(2)) for column in row
             if (m := re.fullmatch(r"(test_\w+) \(([\d.]+)\)", column))}
    assert tests, row
    for test, points in tests.items():  # each test's verdict, as the CSV has it
        verdict = "passed" if float(row[f"{test} ({points:g})"]) == points else "failed"
        assert f"{test}: {verdict}" in text, test
    assert any(row[f"{t} ({p:g})"] != f"{p:g}" for t, p in tests.items()), "a mutant should fail a test"

    autograded = nbformat.read(str(lab.course / "autograder" / "autograded" / student / ASSIGNMENT
                                   / f"{ASSIGNMENT}.ipynb"), as_version=4)
    printed = [line.strip() for cell in autograded.cells if cell.cell_type == "code"
               for out in cell.get("outputs", []) if out.get("name") == "stdout"
               for line in out["text"].splitlines() if len(line.strip()) > 8]
    assert printed, "the sample notebook prints nothing to look for"
    for line in printed[:5]:  # the student's own outputs
        assert line in text, line

    source = (lab.course / "notebooks" / ASSIGNMENT / f"{ASSIGNMENT}.py").read_text(encoding="utf-8")
    hidden = hidden_test_lines(source)
    assert hidden, "the source has no hidden tests to look for"
    everything = page.evaluate("document.documentElement.textContent")
    assert [line for line in hidden if line in everything] == []
    shots(page, "feedback-page")
