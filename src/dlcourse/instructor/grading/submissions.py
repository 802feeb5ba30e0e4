"""Find the submissions of one assignment, whatever shape the batch comes in.

- a folder with one ``.ipynb`` per student: the student id is the file's stem;
- a folder per student holding their notebook under any name (a Drive or Colab download is
  ``Copy of 01_backprop.ipynb``): the student id is the folder's name;
- nbgrader's tree ``<root>/<student>/<assignment>/*.ipynb`` (``submitted/``),
  other files in the student's folder come along into the working copy;
- a zip from an LMS: unpacked safely (no path escapes, size-capped) and then read as
  either of the above, or as flat LMS file names: Canvas
  ``<student>_<id>_<id>_<file>.ipynb`` (``late`` too) and Moodle folders
  ``<Full Name>_<id>_assignsubmission_file_/``.

Reading a notebook never raises: an unreadable one comes back with the reason.
The submissions themselves are only ever read, never moved or changed.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat import NotebookNode

MAX_NOTEBOOK_BYTES = 64 * 2**20
MAX_ZIP_BYTES = 4 * 2**30
CANVAS = re.compile(r"^(?P<student>[^_]+)_(?:late_)?\d+_\d+_(?P<file>.+)$")
MOODLE = re.compile(r"^(?P<student>.+?)_\d+_assignsubmission_file_?$")
SAFE_ID = re.compile(r"[^A-Za-z0-9._@-]+")
# What Colab, Drive, browsers and LMSs do to a file's name: "Copy of 01_backprop (2).ipynb",
# "01_backprop-1.ipynb" (Canvas, a resubmission). Such a name is the assignment's, not a student's.
NAME_DECORATIONS = re.compile(r"^(?:copy of\s+)+|(?:\s*\(\d+\)|-\d+)+$", re.IGNORECASE)


class SubmissionError(Exception):
    pass


@dataclass
class Submission:
    student: str
    notebook: Path | None
    files: dict[str, Path] = field(default_factory=dict)  # name in the working copy -> file

    def sha256(self) -> str:
        digest = hashlib.sha256()
        for name, path in sorted({"": self.notebook, **self.files}.items()):
            if path is not None and path.exists():
                digest.update(name.encode() + b"\0" + path.read_bytes())
        return digest.hexdigest()


def student_id(text: str) -> str:
    return SAFE_ID.sub("_", text.strip()).strip("_.") or "unknown"


def is_assignment_name(stem: str, assignment: str) -> bool:
    """True for a file named after the assignment ("Copy of 01_backprop"), which names no student."""
    return NAME_DECORATIONS.sub("", stem.strip()).strip() == assignment


def find_submissions(path: Path, assignment: str, scratch: Path | None = None,
                     notebook: str | None = None) -> list[Submission]:
    """Every submission under `path` (a folder, nbgrader's tree, or a zip), sorted by student. `notebook`:
    in nbgrader's tree, the one notebook of an assignment of several to take (its other notebooks come
    along as files); a student without it has no notebook."""
    path = Path(path)
    if not path.exists():
        raise SubmissionError(f"{path}: no such file or folder")
    if path.is_file() and zipfile.is_zipfile(path):
        target = Path(tempfile.mkdtemp(prefix="dlcourse-zip-", dir=scratch))
        _unzip(path, target)
        return _from_unzipped(target, assignment, notebook)
    if path.is_file() and path.suffix == ".ipynb":
        # "Copy of 01_backprop.ipynb" names no student: its folder does (alice/Copy of 01_backprop.ipynb)
        owner = path.resolve().parent.name if is_assignment_name(path.stem, assignment) else path.stem
        return [Submission(student_id(owner), path)]
    if not path.is_dir():
        raise SubmissionError(f"{path}: expected a folder of .ipynb files, nbgrader's submitted/ tree or a zip")
    return _from_folder(path, assignment, notebook)


def _from_folder(root: Path, assignment: str, notebook_name: str | None = None) -> list[Submission]:
    found: dict[str, Submission] = {}
    tree = [d for d in sorted(root.iterdir()) if d.is_dir() and (d / assignment).is_dir()]
    if root.name != assignment and (root / "submitted").is_dir() and not tree:
        return _from_folder(root / "submitted", assignment, notebook_name)
    for student_dir in tree:
        folder = student_dir / assignment
        notebooks = sorted(folder.glob("*.ipynb"))
        main = folder / f"{notebook_name or assignment}.ipynb"
        notebook = main if main.exists() or notebook_name else (notebooks[0] if notebooks else None)
        notebook = notebook if notebook is not None and notebook.exists() else None
        files = {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*"))
                 if p.is_file() and p != notebook and ".ipynb_checkpoints" not in p.parts
                 and not p.name.startswith(".")}
        found[student_dir.name] = Submission(student_id(student_dir.name), notebook, files)
    # a folder per student with the notebook under any name: <student>/Copy of 01_backprop.ipynb
    for student_dir in sorted(d for d in root.iterdir() if d.is_dir() and d not in tree and not d.name.startswith(".")):
        notebooks = [p for p in sorted(student_dir.glob("*.ipynb")) if not p.name.startswith(".")]
        if notebooks and student_id(student_dir.name) not in found:
            named = [p for p in notebooks if is_assignment_name(p.stem, assignment)]
            found[student_id(student_dir.name)] = Submission(student_id(student_dir.name), (named or notebooks)[0])
    unnamed = [p.name for p in sorted(root.glob("*.ipynb")) if is_assignment_name(p.stem, assignment)]
    if unnamed:
        raise SubmissionError(
            f"{root}: {', '.join(unnamed)} is named after the assignment, not a student: rename it "
            "<student>.ipynb or put it in a folder named after the student"
        )
    for notebook in sorted(root.glob("*.ipynb")):
        student = student_id(notebook.stem)
        if student not in found:
            found[student] = Submission(student, notebook)
    return sorted(found.values(), key=lambda s: s.student)


def _from_unzipped(root: Path, assignment: str, notebook: str | None = None) -> list[Submission]:
    entries = [p for p in root.iterdir() if not p.name.startswith(("__MACOSX", "."))]
    if any(p.is_dir() and (p / assignment).is_dir() for p in entries):
        return _from_folder(root, assignment, notebook)  # nbgrader's <student>/<assignment>/ tree
    if len(entries) == 1 and entries[0].is_dir() and not MOODLE.match(entries[0].name):
        return _from_unzipped(entries[0], assignment, notebook)  # a zip of one folder
    moodle = [d for d in entries if d.is_dir() and MOODLE.match(d.name)]
    if moodle:
        out = []
        for folder in sorted(moodle):
            notebooks = sorted(folder.rglob("*.ipynb"))
            out.append(Submission(student_id(MOODLE.match(folder.name)["student"]), notebooks[0] if notebooks else None))
        return out
    found: dict[str, Submission] = {}
    for notebook in sorted(root.glob("*.ipynb")):
        match = CANVAS.match(notebook.name)
        if match:
            student = student_id(match["student"])
            if student not in found or is_assignment_name(Path(match["file"]).stem, assignment):
                found[student] = Submission(student, notebook)
    if found:
        return sorted(found.values(), key=lambda s: s.student)
    return _from_folder(root, assignment, notebook)


def _unzip(archive: Path, target: Path) -> None:
    total = 0
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            name = Path(info.filename)
            if name.is_absolute() or ".." in name.parts:
                continue  # a path that would escape the folder
            total += info.file_size
            if total > MAX_ZIP_BYTES:
                raise SubmissionError(f"{archive}: unpacks to more than {MAX_ZIP_BYTES >> 30} GiB")
            destination = target / name
            if info.is_dir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(destination, "wb") as dst:
                shutil.copyfileobj(src, dst)


def read_submission(path: Path | None) -> tuple[NotebookNode | None, str | None]:
    """The notebook (converted to nbformat 4), or None and the reason it cannot be graded."""
    if path is None:
        return None, "no notebook in the submission"
    try:
        data = path.read_bytes()
    except OSError as error:
        return None, f"cannot read {path.name}: {error}"
    if len(data) > MAX_NOTEBOOK_BYTES:
        return None, f"{path.name} is larger than {MAX_NOTEBOOK_BYTES >> 20} MiB"
    try:
        raw = json.loads(data.decode("utf-8", errors="replace"))
    except json.JSONDecodeError as error:
        return None, f"malformed JSON in {path.name} (line {error.lineno}, column {error.colno}): {error.msg}"
    if not isinstance(raw, dict) or not isinstance(raw.get("cells", raw.get("worksheets")), list):
        return None, f"{path.name} is JSON but not a notebook (no list of cells)"
    try:
        nb = nbformat.reads(json.dumps(raw), as_version=4, capture_validation_error={})
    except Exception as error:  # nbformat raises many kinds on broken files
        return None, f"{path.name} is not a readable notebook: {error}"
    cells = []
    for cell in nb.get("cells", []):
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            continue
        source = cell.get("source", "")
        cell["source"] = "".join(source) if isinstance(source, list) else str(source)
        if not isinstance(cell.get("metadata"), dict):
            cell["metadata"] = nbformat.NotebookNode()
        cells.append(cell)
    nb.cells = cells
    return nb, None
