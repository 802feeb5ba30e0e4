"""dlcourse.instructor.grading.sanitize: a graded notebook shows a student's markup as text when it could run
code, and leaves honest content (tables, images, LaTeX, pandas' styles, course notebooks) unchanged.
The browser suite (tests/browser/test_student_markup.py) proves the pages in Chromium."""

from __future__ import annotations

import glob

import nbformat
import pytest
from nbconvert.filters.markdown import markdown2html

from dlcourse.instructor.grading.sanitize import active_html, active_markup, sanitize_notebook

PAYLOADS = [
    "<img src=x onerror=alert(1)>", "<IMG SRC=x OnError=alert(1)>", "<script>alert(1)</script>",
    "[x](javascript:alert(1))", "[x]( JaVaScRiPt:alert(1))", "<a href=\"&#106;avascript:alert(1)\">x</a>",
    "<a href=\" java\tscript:alert(1)\">x</a>", "<svg onload=alert(1)>", "<svg><script>alert(1)</script></svg>",
    "<iframe srcdoc=\"<script>alert(1)</script>\"></iframe>", "<details open ontoggle=alert(1)>",
    "<math><mi xlink:href=\"javascript:alert(1)\">x</mi></math>", "<object data=\"data:text/html,<script>\">",
    "<form><button formaction=javascript:alert(1)>x</button></form>", "$\\href{javascript:alert(1)}{x}$",
    "<a href=\"data:text/html;base64,PHNjcmlwdD4=\">x</a>", "<embed src=x.swf>", "<base href=//evil.example>",
    "[x][1]\n\n[1]: javascript:alert(1)", "<javascript:alert(1)>",
    "<meta http-equiv=refresh content='0;url=javascript:alert(1)'>", "<div style=\"x:expression(alert(1))\">",
    # a made-up tag is inert only bare: with an attribute, or with a hyphen (a custom element a page may define)
    "<eos onmouseover=alert(1)>", "<eos title=x>", "<x-widget>", "<script>", "<noscript>", "<template>",
]
HONEST = [
    "<table class=\"dataframe\"><thead><tr><th>a</th></tr></thead><tbody><tr><td>1</td></tr></tbody></table>",
    "<style scoped>.dataframe tbody tr th {vertical-align: top;}</style><table><tr><td>1</td></tr></table>",
    "<img src=\"data:image/png;base64,iVBORw0KGgo=\">", "<img src=\"https://example.org/a.png\" width=100>",
    "$0 < t < T$ and $$\\sum_i x_i > 0$$", "**bold** and `a<b` and [a link](https://pytorch.org)",
    "<details><summary>hint</summary>use broadcasting</details>", "H<sub>2</sub>O, x<sup>2</sup>",
    "the decoder stops when it writes `<eos>`; pad with `<pad>`, start from <bos>",  # a tokenizer's special tokens
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_markup_that_can_run_code_is_found(payload):
    assert active_markup(payload) != []


@pytest.mark.parametrize("text", HONEST)
def test_honest_markup_is_not(text):
    assert active_markup(text) == []


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_markdown_cell_with_a_payload_renders_as_harmless_text_that_shows_it(payload):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"My answer. {payload}")])
    clean, changes = sanitize_notebook(nb)
    assert changes and "markdown shown as text" in changes[0]
    rendered = markdown2html(clean.cells[0].source)
    assert active_html(rendered) == [], rendered   # the note itself quotes tags: only as text
    assert "My answer." in rendered
    assert nb.cells[0].source == f"My answer. {payload}"  # the input is not modified


@pytest.mark.parametrize("payload", [p for p in PAYLOADS if not p.startswith("[")])  # links: markdown only
def test_an_html_output_with_a_payload_becomes_a_pre_of_its_source(payload):
    cell = nbformat.v4.new_code_cell("display(HTML(...))", outputs=[nbformat.v4.new_output(
        "display_data", data={"text/html": payload, "text/plain": "<IPython.core.display.HTML object>"})])
    clean, changes = sanitize_notebook(nbformat.v4.new_notebook(cells=[cell]))
    html_out = clean.cells[0].outputs[0].data["text/html"]
    assert active_html(html_out) == [] and "<pre>" in html_out and changes


def test_scripts_widgets_and_svg_are_made_inert_silently():
    svg = '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>'
    cell = nbformat.v4.new_code_cell("x", outputs=[
        nbformat.v4.new_output("display_data", data={"image/svg+xml": svg, "text/plain": "<SVG>"}),
        nbformat.v4.new_output("display_data", data={"application/javascript": "alert(1)", "text/plain": "js"}),
        nbformat.v4.new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "a"},
                                                      "text/plain": "HBox()"})])
    nb = nbformat.v4.new_notebook(cells=[cell], metadata={"widgets": {"application/vnd.jupyter.widget-state+json": {}}})
    clean, changes = sanitize_notebook(nb)
    svg_out, js_out, widget_out = clean.cells[0].outputs
    assert svg_out.data["text/html"].startswith('<img src="data:image/svg+xml;base64,') and "image/svg+xml" not in svg_out.data
    assert dict(js_out.data) == {"text/plain": "js"} and dict(widget_out.data) == {"text/plain": "HBox()"}
    assert "widgets" not in clean.metadata
    assert changes == []  # an honest notebook has these (a tqdm bar, an SVG plot): no flag


def test_every_notebook_of_the_course_is_left_exactly_as_it_is():
    paths = sorted(glob.glob("solutions/*/*.ipynb") + glob.glob("assignments/*/*.ipynb"))
    assert paths
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        clean, changes = sanitize_notebook(nb)
        assert changes == [], (path, changes)
        assert [c.get("source") for c in clean.cells] == [c.get("source") for c in nb.cells]
