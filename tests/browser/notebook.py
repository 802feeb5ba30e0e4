"""Driving a notebook in JupyterLab the way a student does: click a cell, type in its
editor, Shift+Enter, read what the output area shows."""

from __future__ import annotations

import re

import nbformat
from playwright.sync_api import expect

PROMPT = re.compile(r"^\[(\d+)\]:$")
KERNEL_START = 90_000  # ms: torch imports on a busy 2-core machine
RUN = 120_000  # ms: one cell


def cell_indices(path) -> dict[str, int]:
    """grade id -> index of the cell in the notebook (the DOM has the cells in the same order)."""
    nb = nbformat.read(str(path), as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: i for i, c in enumerate(nb.cells)
            if "grade_id" in c.metadata.get("nbgrader", {})}


class Notebook:
    def __init__(self, page, path: str):
        self.page = page
        self.path = path
        self.cells = page.locator(".jp-Notebook .jp-Cell")

    def open(self, url: str) -> "Notebook":
        self.page.goto(url)
        expect(self.cells.first).to_be_attached(timeout=KERNEL_START)
        expect(self.page.get_by_role("contentinfo")).to_contain_text("| Idle", timeout=KERNEL_START)
        self.page.get_by_role("tab", name=re.compile("File Browser")).click()  # more room for the notebook
        return self

    def cell(self, index: int):
        return self.cells.nth(index)

    def type_into(self, index: int, *lines: str) -> None:
        """Replace a code cell's text by typing it; the editor indents after a colon, so
        each line is typed without its indentation (one level per line after a def)."""
        editor = self.cell(index).locator(".cm-content")
        editor.click()
        self.page.keyboard.press("ControlOrMeta+a")
        self.page.keyboard.type("\n".join(lines))
        self.page.keyboard.press("Escape")

    def run(self, index: int):
        """Select the cell, Shift+Enter, wait for its new execution count; returns the cell."""
        cell = self.cell(index)
        prompt = cell.locator(".jp-InputPrompt")
        before = prompt.inner_text().strip()
        prompt.click()
        self.page.keyboard.press("Shift+Enter")
        self.page.wait_for_function(
            "([el, before]) => /^\\[\\d+\\]:$/.test(el.innerText.trim()) && el.innerText.trim() !== before",
            arg=[prompt.element_handle(), before], timeout=RUN)
        return cell

    def output(self, index: int) -> str:
        return self.cell(index).locator(".jp-OutputArea").inner_text()

    def errors(self, index: int):
        return self.cell(index).locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")

    def save(self) -> None:
        self.page.keyboard.press("ControlOrMeta+s")
        tab = self.page.locator(".lm-TabBar-tab.lm-mod-current")
        expect(tab).not_to_have_class(re.compile(r"\bjp-mod-dirty\b"), timeout=30_000)

    def scroll_to(self, index: int) -> None:
        self.cell(index).evaluate("el => el.scrollIntoView({block: 'start'})")
