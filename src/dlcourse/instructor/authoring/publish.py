"""`dlcourse publish` and `dlcourse release`: write the student course, behind a leak gate.

The course repository (this one) stays private: it holds every solution and hidden test. The
student course is a second, public repository that Colab opens and students pip install from;
publish writes into a local checkout of it only what students may see:

- README.md for students, LICENSE, .gitignore, pyproject.toml (without the course config and the
  instructor extras), a student environment.yml (the notebooks' libraries and JupyterLab), the
  student side of the package (src/dlcourse without src/dlcourse/instructor: students get the
  helpers their notebooks import, not the grader), data/ (manifest, README, offline subsets);
- assignments/NN/NN.ipynb for every published assignment, colab/ (the badges of those);
- solutions/NN/NN.ipynb only for the assignments a TA released (`dlcourse release`).

Before it writes anything, the leak gate reads every one of those files for every solution
line, model answer and hidden-test line of every assignment (the distinctive lines of the
marked blocks in notebooks/), every nbgrader marker and every file of the instructor toolchain;
one hit and nothing is written.
A released assignment's solution lines and model answers may appear; its hidden tests never.

Publish commits nothing. `.dlcourse-publish.json` in the student course records what it wrote
(path -> sha256): a file changed by hand since (uncommitted) stops the next publish, and a file
publish no longer writes is removed. Runs in the instructor's process.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import io
import json
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from dlcourse import __version__
from dlcourse.instructor.authoring.build import colab_index, notebook_bytes
from dlcourse.instructor.authoring.leaks import MIN_SECRET_CHARS, cell_texts
from dlcourse.instructor.source import read_source, split_blocks
from dlcourse.instructor.cells import BEGIN_HIDDEN, BEGIN_SOLUTION, END_HIDDEN, END_SOLUTION, grade_id, role
from dlcourse.instructor.course import Course, CourseError

MANIFEST = ".dlcourse-publish.json"
MARKERS = (BEGIN_SOLUTION, END_SOLUTION, BEGIN_HIDDEN, END_HIDDEN)
# Never published, whatever the folder holds: bytecode, caches, editor and OS litter.
SKIP_PARTS = ("__pycache__", ".ipynb_checkpoints", "cache", ".DS_Store")
# .venv/: the student README's JupyterLab steps make one in the course folder
GITIGNORE = "__pycache__/\n*.pyc\n*.egg-info/\n.ipynb_checkpoints/\n.venv/\n# the data cache\ndata/cache/\n"
# The instructor toolchain (authoring, grading, Gradescope, export, similarity, report): never in the
# student course, which installs the student side of the package only.
INSTRUCTOR_PACKAGE = "src/dlcourse/instructor"
# conda-forge names that differ from PyPI's
PYPI_TO_CONDA = {"torch": "pytorch"}
# Not a dependency of the package, but what the student README runs the notebooks in
STUDENT_TOOLS = ("python", "pip", "jupyterlab")

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class PublishError(CourseError):
    """Publish or release refused; nothing was written. The message says what to do."""


class LeakError(PublishError):
    def __init__(self, leaks: list[Leak]):
        self.leaks = leaks
        shown = "\n".join(f"  {leak}" for leak in leaks[:20])
        more = f"\n  ... and {len(leaks) - 20} more" if len(leaks) > 20 else ""
        super().__init__(
            f"the leak gate found {len(leaks)} secret line(s) in what publish would write; "
            f"nothing was written:\n{shown}{more}"
        )


@dataclass(frozen=True)
class Secret:
    """A line students must not see, and where it comes from."""

    kind: str  # "solution", "model answer" or "hidden test"
    assignment: str
    cell: int  # 1-based index of the source cell
    cell_id: str | None

    def where(self) -> str:
        return f"notebooks/{self.assignment}/{self.assignment}.py, cell {self.cell}" + (
            f" ({self.cell_id})" if self.cell_id else "")


@dataclass(frozen=True)
class Leak:
    file: str
    line: int  # 1-based line of the file; for a notebook, of the cell
    text: str
    secret: Secret | None  # None for an nbgrader marker
    cell: int | None = None  # a notebook's cell, 1-based

    def __str__(self) -> str:
        where = f"{self.file}, cell {self.cell}, line {self.line}" if self.cell else f"{self.file}, line {self.line}"
        if self.secret is None and self.text not in MARKERS:
            return f"{self.file}: {self.text}"
        if self.secret is None:
            return f"{where}: nbgrader marker {self.text!r}"
        return f"{where}: {self.secret.kind} line {self.text!r} from {self.secret.where()}{self.remedy()}"

    def remedy(self) -> str:
        """What clears a line another assignment keeps secret: its file is of one assignment, the
        secret of an assignment not released."""
        parts = self.file.split("/")
        own = parts[1] if len(parts) > 2 and parts[0] in ("assignments", "solutions") else None
        if own is None or own == self.secret.assignment or self.secret.kind == "hidden test":
            return ""
        other = self.secret.assignment
        return (f" (a line of {other}'s unreleased {self.secret.kind} too: write it differently in one of the two, "
                f"or release {other} first)")


@dataclass
class Published:
    """What publish did: paths relative to the student course."""

    destination: Path
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    assignments: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def unchanged(self) -> bool:
        return not (self.added or self.changed or self.removed)


# ---------------------------------------------------------------------------------------------
# What is secret


def secrets(course: Course, names: list[str] | None = None) -> dict[str, Secret]:
    """Every distinctive secret line of the assignments (all by default): stripped line -> where from.

    A line that some source also shows in public (``optimizer.step()``, a solution of 00_setup,
    is plain code in 05_generative) is not secret; neither is a line shorter than
    MIN_SECRET_CHARS (``return x``)."""
    public: set[str] = set()
    candidates: list[tuple[str, Secret]] = []
    for name in course.assignments():
        source = read_source(course.source_path(name))
        for index, cell in enumerate(source.cells, start=1):
            lines, blocks = split_blocks(cell.source)
            public.update(line.strip() for line in lines)
            if names is not None and name not in names:
                continue
            for block in blocks:
                if block.kind == "hidden":
                    kind = "hidden test"
                else:
                    kind = "model answer" if role(cell) == "answer" else "solution"
                secret = Secret(kind, name, index, grade_id(cell))
                candidates += [(line.strip(), secret) for line in block.lines]
    found: dict[str, Secret] = {}
    for line, secret in candidates:
        if len(line) >= MIN_SECRET_CHARS and line not in public:
            found.setdefault(line, secret)
    return found


def _file_texts(relative: str, data: bytes):
    """(cell or None, text) pieces of a file as a reader would see them; archives unpacked."""
    if relative.endswith(".ipynb"):
        yield from cell_texts(nbformat.reads(data.decode("utf-8"), as_version=4))
        return
    if relative.endswith(".gz"):
        data = gzip.decompress(data)
    elif data[:4] == b"PK\x03\x04":  # .npz and any other zip
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for member in archive.namelist():
                yield None, archive.read(member).decode("utf-8", errors="replace")
        return
    yield None, data.decode("utf-8", errors="replace")


# Read line by line (a stripped line equal to a secret line); anything else is data, searched
# for each secret line anywhere in it (a string in a JSON file, text inside an archive).
PREFIX = re.compile(r"^(?:#+|>>>|\.\.\.|>|[-*]|//)\s*")
LINE_FILES = (".py", ".ipynb", ".md", ".toml", ".yml", ".yaml", ".txt", ".cfg", ".gitignore", "LICENSE")


def scan(files: dict[str, bytes], secret_lines: dict[str, Secret], allowed: set[tuple[str, str]] = frozenset()) -> list[Leak]:
    """Every secret line and nbgrader marker in `files` (path -> bytes). `allowed`: (assignment,
    kind) pairs that may appear (the solutions and model answers of released assignments)."""
    active = {line: s for line, s in secret_lines.items() if (s.assignment, s.kind) not in allowed}
    leaks: list[Leak] = []
    for relative in sorted(files):
        by_line = relative.endswith(LINE_FILES) and not relative.startswith("data/offline/")
        for cell, text in _file_texts(relative, files[relative]):
            if by_line:
                for number, line in enumerate(text.splitlines(), start=1):
                    stripped = line.strip()
                    bare = PREFIX.sub("", stripped)  # the line commented out, quoted or in a doctest
                    for candidate in (stripped, bare):
                        if candidate in active or candidate in MARKERS:
                            leaks.append(Leak(relative, number, stripped[:200], active.get(candidate), cell))
                            break
                continue
            hits = [line for line in active if line in text] + [m for m in MARKERS if m in text]
            for number, line in enumerate(text.splitlines(), start=1):
                for hit in hits:
                    if hit in line:
                        leaks.append(Leak(relative, number, line.strip()[:200], active.get(hit), cell))
                        break
    return leaks


# ---------------------------------------------------------------------------------------------
# What publish writes


def _tree(root: Path, folder: str, leave_out: str | None = None) -> dict[str, bytes]:
    base = root / folder
    out = {}
    for path in sorted(base.rglob("*")):
        parts = path.relative_to(root).parts
        relative = "/".join(parts)
        if leave_out and (relative == leave_out or relative.startswith(leave_out + "/")):
            continue
        if path.is_file() and not any(p in SKIP_PARTS or p.startswith(".") for p in parts) and path.suffix != ".pyc":
            out[relative] = path.read_bytes()
    return out


def instructor_files(files: dict[str, bytes]) -> list[Leak]:
    """The part of the leak gate that keeps the grader out: any file of the instructor toolchain."""
    return [Leak(path, 1, "a file of the instructor toolchain (dlcourse.instructor): the student package "
                 "carries only the student side", None)
            for path in sorted(files) if path == INSTRUCTOR_PACKAGE or path.startswith(INSTRUCTOR_PACKAGE + "/")]


def student_pyproject(text: str) -> str:
    """pyproject.toml without the course config and the instructor's tool sections."""
    chunks: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.startswith("["):
            # comment lines just above a table header belong to that table
            pending = []
            while chunks[-1] and chunks[-1][-1].startswith("#"):
                pending.insert(0, chunks[-1].pop())
            chunks.append(pending)
        chunks[-1].append(line)
    # the course config, the test settings, and the extras of the instructor toolchain students do not get
    dropped = ("[tool.dlcourse", "[tool.pytest", "[project.optional-dependencies]")
    kept = [c for c in chunks if c and not any(l.startswith(dropped) for l in c if l.startswith("["))]
    return "\n".join("\n".join(c) for c in kept).strip("\n") + "\n"


def _conda_name(requirement: str) -> str:
    name = re.split(r"[<>=!~ ;\[]", requirement.strip(), maxsplit=1)[0].lower()
    return PYPI_TO_CONDA.get(name, name)


def student_environment(environment: str, pyproject: str) -> str:
    """environment.yml for students: from the course's, the packages the student package depends on
    (the same ranges) and JupyterLab; no nbgrader, Dask, PostgreSQL driver, Playwright or test tools;
    pip installs the package itself from the student course."""
    dependencies = tomllib.loads(pyproject).get("project", {}).get("dependencies", [])
    keep = {*STUDENT_TOOLS, *map(_conda_name, dependencies)}
    lines = ["# Conda environment for the course's notebooks: `conda env create -f environment.yml`, then",
             "# `conda activate dlcourse`. The same packages and ranges as pyproject.toml, and JupyterLab;",
             "# pip installs dlcourse itself from this folder."]
    in_dependencies = in_pip = False
    for line in environment.splitlines():
        stripped = line.strip()
        if in_pip and line.startswith("      "):
            continue  # the course's pip section (instructor packages, the editable install with its extras)
        in_pip = False
        if not stripped or stripped.startswith("#"):
            continue  # the course's comments speak of instructor tools
        if not line.startswith(" "):
            in_dependencies = stripped == "dependencies:"
        if in_dependencies and stripped == "- pip:":
            lines += [line, line[:line.index("-")] + "    - -e ."]
            in_pip = True
        elif not (in_dependencies and stripped.startswith("- ")) or _conda_name(stripped[2:]) in keep:
            lines.append(line)
    return "\n".join(lines) + "\n"


def student_readme(course: Course, assignments: list[str], released: list[str]) -> str:
    table, _ = colab_index(course, assignments)
    table = table.split("\n\n", 2)[2].split("\n\n## Keeping")[0]  # the badge table of colab/README.md
    solutions = "".join(
        f"- [{name}](solutions/{name}/{name}.ipynb) "
        f"([open in Colab]({course.colab_url(f'solutions/{name}/{name}.ipynb')}))\n" for name in released
    ) or "None yet: each assignment's solution appears here after its deadline.\n"
    return f"""# Deep learning course: the student course

The assignments of the course as notebooks, and the helper package `dlcourse` they use.
This is version {course.ref}; every notebook installs exactly this version.

## In Google Colab (nothing to install)

{table}

1. Click a badge. Colab opens the notebook.
2. If the note at the top of the notebook asks for a GPU (the assignments that train larger
   models do, and say why), **Runtime > Change runtime type > T4 GPU** before you run anything
   (changing it later starts a new machine and loses what has run); otherwise keep the CPU
   runtime and save your free GPU time.
3. **File > Save a copy in Drive**: your copy keeps your answers (the one you opened does not).
4. Run the cells from the top. The first code cell installs `dlcourse` and prints its version;
   if it fails, it prints pip's reason and what to do.

A Colab machine forgets its files when it disconnects. `dlcourse.mount_drive()` mounts your
Google Drive and returns the folder `MyDrive/dlcourse`: save checkpoints there.

## In JupyterLab (your laptop, a lab machine, a local GPU)

```bash
git clone --branch {course.ref} {course.git_url()}.git && cd {course.repository.split('/')[1]}
python3 -m venv .venv && . .venv/bin/activate      # Python 3.10 or newer
pip install torch torchvision                      # or the CUDA build from pytorch.org
pip install -e .
jupyter lab assignments/                           # pip install jupyterlab if you do not have it
```

or with conda: `conda env create -f environment.yml && conda activate dlcourse`.
`dlcourse doctor` prints your Python, torch, GPU and the dlcourse version and commit: paste it
into any question you send the course staff.

## Handing in

Fill in every `# YOUR CODE HERE` and `YOUR ANSWER HERE`, run the test cell under each answer,
then run the whole notebook once from the top (**Runtime > Restart session and run all** in Colab) and
read the **self-check**, the last cell (a cell that fails shows its error and the run goes on, so
the self-check always runs): it lists each visible test as passed, failed or not run,
with its points. Hand in the `.ipynb` (Colab: **File > Download > Download .ipynb**) where your course says:
the LMS, Gradescope, or JupyterHub. The name of the file does not matter ("Copy of ..." is fine).
The grader runs hidden tests of the same functions, so passing the visible tests is a good sign,
not a promise.

## Solutions

{solutions}
Data sets: see [data/README.md](data/README.md) (sources and licenses). Code: see [LICENSE](LICENSE).
"""


def planned_files(course: Course, assignments: list[str], released: list[str], strict: bool = True) -> dict[str, bytes]:
    """Everything publish writes, path in the student course -> bytes (the manifest aside).
    strict=False leaves out what is missing instead of refusing (what `dlcourse check` scans)."""
    root = course.root
    files: dict[str, bytes] = {}
    for required in ("pyproject.toml", "LICENSE", "environment.yml", "data/manifest.json"):
        if not (root / required).is_file() and strict:
            raise PublishError(f"{root / required} is missing: the student course needs it")
    if (root / "pyproject.toml").is_file():
        pyproject = (root / "pyproject.toml").read_text(encoding="utf-8")
        files["pyproject.toml"] = student_pyproject(pyproject).encode()
        if (root / "environment.yml").is_file():
            environment = (root / "environment.yml").read_text(encoding="utf-8")
            files["environment.yml"] = student_environment(environment, pyproject).encode()
    for copied in ("LICENSE", "data/manifest.json"):
        if (root / copied).is_file():
            files[copied] = (root / copied).read_bytes()
    files[".gitignore"] = GITIGNORE.encode()
    if (root / "src" / "dlcourse").is_dir():
        files.update(_tree(root, "src/dlcourse", leave_out=INSTRUCTOR_PACKAGE))
    if (root / "data" / "README.md").exists():
        files["data/README.md"] = (root / "data" / "README.md").read_bytes()
    if (root / "data" / "offline").is_dir():
        files.update(_tree(root, "data/offline"))
    for name in assignments:
        path = course.student_path(name)
        if path.exists():
            files[f"assignments/{name}/{name}.ipynb"] = path.read_bytes()
        elif strict:
            raise PublishError(f"{path.relative_to(root)} does not exist: run `dlcourse build {name}` first")
    for name in released:
        files[f"solutions/{name}/{name}.ipynb"] = _executed_solution(course, name)
    readme, index = colab_index(course, assignments)
    files["colab/README.md"] = readme.encode()
    files["colab/index.ipynb"] = notebook_bytes(index).encode()
    files["README.md"] = student_readme(course, assignments, released).encode()
    return files


def _executed_solution(course: Course, name: str) -> bytes:
    path = course.solution_path(name)
    if not path.exists():
        raise PublishError(f"{path.relative_to(course.root)} does not exist: run `dlcourse build {name}` first")
    nb = nbformat.read(str(path), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not code or not all(c.execution_count for c in code):
        raise PublishError(
            f"{path.relative_to(course.root)} is not executed: run `dlcourse build {name}` "
            "(without --no-execute) first"
        )
    return path.read_bytes()


# ---------------------------------------------------------------------------------------------
# The destination


def _git(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True)


def _is_git_checkout(folder: Path) -> bool:
    return (folder / ".git").exists()


def _check_destination(course: Course, destination: Path) -> None:
    root = course.root.resolve()
    if destination == root or destination in root.parents:
        raise PublishError(
            f"{destination} is the course repository itself (or holds it): publish to a checkout "
            f"of the student repository {course.repository}, e.g. --to ../{course.repository.split('/')[1]}"
        )
    if (destination / "notebooks").is_dir() and any((destination / "notebooks").glob("*/*.py")):
        raise PublishError(
            f"{destination} holds notebooks/ (assignment sources): it looks like a course repository, "
            f"not the student course; publish to a checkout of {course.repository}"
        )
    if destination.exists():
        top = _git(destination, "rev-parse", "--show-toplevel")
        if top.returncode == 0 and Path(top.stdout.strip()).resolve() == _git_toplevel(root):
            raise PublishError(
                f"{destination} is inside the course repository's git checkout: publish to a "
                f"separate checkout of the student repository {course.repository}"
            )


def _git_toplevel(folder: Path) -> Path | None:
    top = _git(folder, "rev-parse", "--show-toplevel")
    return Path(top.stdout.strip()).resolve() if top.returncode == 0 else None


def read_manifest(destination: Path) -> dict:
    path = destination / MANIFEST
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise PublishError(f"{path} is not valid JSON: restore it from git (it records what publish wrote)") from None


def published_assignments(destination: Path) -> list[str]:
    return list(read_manifest(destination).get("assignments", []))


def released_assignments(destination: Path) -> list[str]:
    return list(read_manifest(destination).get("released", []))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hand_edits(destination: Path, manifest: dict, planned: dict[str, bytes]) -> list[str]:
    """Uncommitted changes in a git checkout of the student course that publish did not make."""
    if not _is_git_checkout(destination):
        return []
    status = _git(destination, "status", "--porcelain", "-z", "--untracked-files=all", "--no-renames")
    if status.returncode != 0:
        raise PublishError(f"{destination}: git status failed: {status.stderr.strip()}")
    written = manifest.get("files", {})
    edits = []
    entries = status.stdout.split("\0")
    for entry in entries:
        if len(entry) < 4:
            continue
        path = entry[3:]
        file = destination / path
        current = _sha256(file.read_bytes()) if file.is_file() else None
        if path == MANIFEST or (current is not None and current == written.get(path)):
            continue  # publish's own uncommitted work
        if current is not None and path in planned and current == _sha256(planned[path]):
            continue  # already what publish would write
        edits.append(path)
    return sorted(edits)


# ---------------------------------------------------------------------------------------------
# The two commands


def resolve_destination(course: Course, to: str | Path | None) -> Path:
    if to is None:
        if course.student_checkout is None:
            raise PublishError(
                "where is the student course? Pass --to DIR (a checkout of "
                f"{course.repository}) or set student_checkout in [tool.dlcourse]"
            )
        return course.student_checkout
    return Path(to).expanduser().resolve()


def gate(course: Course, files: dict[str, bytes], released: list[str]) -> list[Leak]:
    """The leak gate over `files`: every assignment's secrets, released solutions allowed."""
    allowed = {(name, kind) for name in released for kind in ("solution", "model answer")}
    return instructor_files(files) + scan(files, secrets(course), allowed)


def check_leaks(course: Course, name: str) -> list[Leak]:
    """What `dlcourse check NAME` adds: the gates of `publish` and of `release` for the assignment.
    Publish: what it writes for the assignment (its student notebook, colab/, the README, the package
    and the data) holds no secret line of any assignment. Release, on its date in
    [tool.dlcourse.release_dates], the assignments due earlier released before it (none when it has no
    date): its executed solution holds no secret line of an assignment still unreleased then (a solution
    line two assignments share is the secret of the first in course order until that one is released).
    The same gate as `release`, so that check passing means release will."""
    files = planned_files(course, [name], [], strict=False)
    everything = secrets(course)
    leaks = instructor_files(files) + scan(files, everything)
    solution = course.solution_path(name)
    if solution.exists():
        due = course.release_dates.get(name)
        before = [n for n, date in course.release_dates.items() if due is not None and date < due] + [name]
        allowed = {(n, kind) for n in before for kind in ("solution", "model answer")}
        leaks += scan({f"solutions/{name}/{name}.ipynb": solution.read_bytes()}, everything, allowed)
    return leaks


def publish(course: Course, destination: Path, names: list[str] | None = None,
            released: list[str] | None = None, log=print) -> Published:
    """Write or update the student course in `destination`; raises PublishError (nothing written)."""
    destination = Path(destination).resolve()
    _check_destination(course, destination)
    manifest = read_manifest(destination)
    known = course.assignments()
    before = [n for n in manifest.get("assignments", []) if n in known]
    assignments = sorted(set(before) | set(course.resolve(names) if names else ([] if before else known)))
    released = sorted(set(released if released is not None else manifest.get("released", [])) & set(known))
    unpublished = [n for n in released if n not in assignments]
    if unpublished:
        raise PublishError(f"cannot release {', '.join(unpublished)}: not published; publish it first")

    planned = planned_files(course, assignments, released)
    leaks = gate(course, planned, released)
    if leaks:
        raise LeakError(leaks)
    edits = _hand_edits(destination, manifest, planned)
    if edits:
        raise PublishError(
            f"{destination} has uncommitted changes publish did not make: {', '.join(edits[:10])}; "
            "commit or discard them (git -C DIR status) and publish again"
        )

    result = Published(destination, assignments=assignments, released=released)
    new_manifest = {
        "about": "Written by `dlcourse publish` (do not edit): what it wrote, so that the next "
                 "publish updates only what changed.",
        "dlcourse": __version__,
        "ref": course.ref,
        "assignments": assignments,
        "released": released,
        "files": {path: _sha256(data) for path, data in sorted(planned.items())},
    }
    for path in sorted(set(manifest.get("files", {})) - set(planned)):
        target = destination / path
        if target.is_file():
            target.unlink()
            result.removed.append(path)
    for path, data in sorted(planned.items()):
        target = destination / path
        if target.is_file() and target.read_bytes() == data:
            continue
        (result.changed if target.exists() else result.added).append(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    manifest_bytes = (json.dumps(new_manifest, indent=1, sort_keys=True) + "\n").encode()
    if result.added or result.changed or result.removed or not (destination / MANIFEST).exists() or \
            (destination / MANIFEST).read_bytes() != manifest_bytes:
        (destination / MANIFEST).write_bytes(manifest_bytes)
    if course.ref_moves():
        result.notes.append(
            f"ref = {course.ref!r} is a branch: a student's saved copy installs whatever it points at later. "
            "Set [tool.dlcourse] ref to a tag (e.g. v" + __version__ + "), run `dlcourse build --headers-only`, publish again."
        )
    elif _is_git_checkout(destination) and not result.unchanged and \
            _git(destination, "rev-parse", "-q", "--verify", f"refs/tags/{course.ref}").returncode == 0:
        result.notes.append(
            f"tag {course.ref} already exists in {destination}: students on it keep the old files. For a new "
            "release: bump __version__ and [tool.dlcourse] ref, `dlcourse build --headers-only`, publish again."
        )
    return result


def release(course: Course, name: str, destination: Path, force: bool = False,
            today: datetime.date | None = None, log=print) -> Published:
    """Add an assignment's executed solution to the published student course (TAs, after the deadline)."""
    [name] = course.resolve([name])
    destination = Path(destination).resolve()
    published = published_assignments(destination)
    if name not in published:
        raise PublishError(
            f"{name} is not published in {destination}: run `dlcourse publish --to {destination} {name}` first"
        )
    due = course.release_dates.get(name)
    today = today or datetime.date.today()
    if due is None:
        if not force:
            raise PublishError(
                f"{name} has no release date: add `{name} = YYYY-MM-DD` (after its deadline) under "
                "[tool.dlcourse.release_dates] in pyproject.toml, or pass --force to release it now"
            )
        log(f"WARNING: releasing the solution of {name}, which has no release date (--force)")
    elif today < due:
        if not force:
            raise PublishError(
                f"{name}'s solution is due for release on {due} ([tool.dlcourse.release_dates]); "
                f"today is {today}. Wait, or pass --force to release it now"
            )
        log(f"WARNING: releasing the solution of {name} BEFORE its release date {due} (--force)")
    return publish(course, destination, released=sorted(set(released_assignments(destination)) | {name}), log=log)


def push_commands(course: Course, result: Published) -> list[str]:
    """The git commands that publish the written files (publish itself commits nothing)."""
    folder = str(result.destination)
    lines = []
    if not _is_git_checkout(result.destination):
        lines += [f"git -C {folder} init -b main",
                  f"git -C {folder} remote add origin {course.git_url()}.git"]
    message = f"dlcourse {__version__}: {', '.join(result.assignments)}" + (
        f"; solutions of {', '.join(result.released)}" if result.released else "")
    lines += [f"git -C {folder} add -A",
              f"git -C {folder} commit -m '{message}'",
              f"git -C {folder} tag {course.ref}   # the ref every setup cell installs",
              f"git -C {folder} push origin HEAD {course.ref}"]
    return lines
