"""nbgrader's ``### AUTOTEST`` and ``### HASHED AUTOTEST`` lines, expanded as ``nbgrader generate_assignment``
does. Runs in the grader process, once per source notebook, before any submission is graded.

A test cell line such as ``### AUTOTEST squares(3); total`` stands for the tests nbgrader generates from the
course's ``autotests.yml``: it runs the source notebook (solutions included) in a fresh Python kernel, asks
each snippet's type, and writes asserts that compare the student's value with the one it computed (hashed,
for HASHED lines, so the student notebook does not show it). Graded unexpanded, such a line is a comment and
a blank notebook passes; so the grader expands the source with nbgrader's own ``InstantiateTests`` (the
step generate_assignment runs first), and the cells it writes are the very ones handed out (nbgrader salts
the hashes from the cell's text and place, not at random), so restoring them flags nothing.

The kernel runs the instructor's source, not student code: it is not confined (nbgrader does the same).
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from pathlib import Path

from nbformat import NotebookNode

from dlcourse.instructor.cells import nbgrader_metadata

DELIMITER = "AUTOTEST"  # nbgrader's InstantiateTests.autotest_delimiter
FILENAME = "autotests.yml"  # nbgrader's InstantiateTests.autotest_filename

_expanded: dict[str, NotebookNode] = {}  # sha256 of (source, autotests.yml) -> the expanded source
_lock = threading.Lock()


class AutotestError(ValueError):
    """The source has AUTOTEST lines that cannot be expanded; the message says what to do."""


def has_autotests(nb: NotebookNode) -> bool:
    """Does a code cell hold an AUTOTEST line (a comment naming the delimiter), as nbgrader looks for them?"""
    return any(cell.get("cell_type") == "code" and any(
        DELIMITER in line and line.strip().startswith("#") for line in cell.get("source", "").splitlines())
        for cell in nb.cells)


def find_autotests_file(*folders: Path | None, filename: str = FILENAME) -> Path | None:
    """The first `filename` (``autotests.yml``) of `folders`: nbgrader reads the assignment's source
    folder's, then the course root's."""
    for folder in folders:
        if folder is not None and (Path(folder) / filename).is_file():
            return Path(folder) / filename
    return None


def expand_autotests(source: NotebookNode, *folders: Path | None, filename: str = FILENAME) -> NotebookNode:
    """`source` with every AUTOTEST line expanded by nbgrader's ``InstantiateTests``, from the first
    `filename` in `folders` (the assignment's source folder, then the course root; the kernel starts in
    the first folder, where the source's relative paths point; an nbgrader course may name another file
    with ``InstantiateTests.autotest_filename``). A source without AUTOTEST lines comes back as it is;
    each expansion is made once per process (cached by content)."""
    if not has_autotests(source):
        return source
    tests_file = find_autotests_file(*folders, filename=filename)
    if tests_file is None:
        where = " or ".join(str(Path(f) / filename) for f in folders if f is not None) or filename
        raise AutotestError(f"the source has ### AUTOTEST lines but there is no {where}: add the course's "
                            "autotests.yml (nbgrader's format) there")
    key = hashlib.sha256(json.dumps(source, sort_keys=True).encode() + tests_file.read_bytes()).hexdigest()
    with _lock:  # one kernel at a time; threads of one batch share the result
        if key not in _expanded:
            _expanded[key] = _instantiate(source, tests_file, Path(folders[0] or tests_file.parent))
        return copy.deepcopy(_expanded[key])


def _instantiate(source: NotebookNode, tests_file: Path, folder: Path) -> NotebookNode:
    from nbgrader.preprocessors import InstantiateTests

    nb = copy.deepcopy(source)
    kernelspec = nb.metadata.setdefault("kernelspec", {})
    kernelspec.setdefault("name", "python3")
    for cell in nb.cells:  # InstantiateTests reads nbgrader metadata as attributes
        if "nbgrader" in cell.get("metadata", {}):
            cell.metadata.nbgrader = nbgrader_metadata(cell)
    # nbgrader joins the folder and the file name: an absolute name is read wherever the course keeps it
    preprocessor = InstantiateTests(autotest_filename=str(tests_file.resolve()))
    try:
        nb, _ = preprocessor.preprocess(nb, {"metadata": {"path": str(folder)}})
    except Exception as error:  # a snippet that fails in the solution, a bad autotests.yml
        message = " ".join(str(error).split())[:300] or type(error).__name__
        raise AutotestError(f"expanding ### AUTOTEST lines with {tests_file} failed ({type(error).__name__}: "
                            f"{message}): run `nbgrader generate_assignment` on this source to see where") from error
    return nb
