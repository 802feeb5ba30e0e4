"""The leak scan: no solution line and no hidden-test line may reach a student.

A "secret" line is a line inside a solution block or a hidden-test block of the
source that does not also appear in the public part of the source (a line such
as ``import numpy as np`` inside a solution is not a secret when the notebook
shows it elsewhere). Very short lines (``return x``) are not distinctive
enough to count.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from dlcourse.instructor.source import split_blocks
from dlcourse.instructor.cells import BEGIN_HIDDEN, BEGIN_SOLUTION, END_HIDDEN, END_SOLUTION

MIN_SECRET_CHARS = 16
MARKERS = (BEGIN_SOLUTION, END_SOLUTION, BEGIN_HIDDEN, END_HIDDEN)


@dataclass(frozen=True)
class Leak:
    file: str
    cell: int
    kind: str  # "solution", "hidden test", "marker" or "build-machine path"
    line: str

    def __str__(self) -> str:
        return f"{self.file}, cell {self.cell}: {self.kind} line {self.line!r}"


def secret_lines(source: NotebookNode) -> dict[str, set[str]]:
    """Distinctive solution and hidden-test lines of a source notebook."""
    public: set[str] = set()
    secrets: dict[str, set[str]] = {"solution": set(), "hidden test": set()}
    for cell in source.cells:
        lines, blocks = split_blocks(cell.source)
        public.update(line.strip() for line in lines)
        for block in blocks:
            kind = "solution" if block.kind == "solution" else "hidden test"
            secrets[kind].update(line.strip() for line in block.lines)
    return {
        kind: {line for line in lines if len(line) >= MIN_SECRET_CHARS and line not in public}
        for kind, lines in secrets.items()
    }


def cell_texts(nb: NotebookNode):
    """Every text a reader of the notebook sees: cell sources and text outputs."""
    for index, cell in enumerate(nb.cells, start=1):
        yield index, cell.get("source", "")
        for output in cell.get("outputs", []) or []:
            if output.get("output_type") == "stream":
                yield index, output.get("text", "")
            elif output.get("output_type") == "error":
                yield index, "\n".join(output.get("traceback", []))
            else:  # every textual representation: plain, markdown, HTML, JSON, JavaScript
                for mime, text in output.get("data", {}).items():
                    if mime.startswith("text/") or mime.endswith(("json", "javascript")):
                        yield index, "".join(text) if isinstance(text, list) else str(text)


def scan_notebook(path: Path, source: NotebookNode, allow_solutions: bool, root: Path | None = None) -> list[Leak]:
    """Leaks in one generated notebook; solutions may appear only where allow_solutions."""
    secrets = secret_lines(source)
    kinds = ["hidden test"] if allow_solutions else ["solution", "hidden test"]
    nb = nbformat.read(str(path), as_version=4)
    name = str(path.relative_to(root)) if root else str(path)
    leaks: list[Leak] = []
    # where the notebook was built: a printed path names the instructor's machine (and maybe home)
    machine = [str(p) for p in {root, Path.home()} if p is not None and len(Path(p).parts) > 2]
    for index, text in cell_texts(nb):
        for line in text.splitlines():
            stripped = line.strip()
            if any(place in line for place in machine):
                leaks.append(Leak(name, index, "build-machine path", stripped[:120]))
                continue
            if stripped in MARKERS:
                leaks.append(Leak(name, index, "marker", stripped))
                continue
            for kind in kinds:
                if stripped in secrets[kind]:
                    leaks.append(Leak(name, index, kind, stripped))
    return leaks
