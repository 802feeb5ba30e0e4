"""The course as a whole: where the repository is, which assignments exist, and
the course config, ``[tool.dlcourse]`` in pyproject.toml: the student repository
(the public GitHub repository `dlcourse publish` writes, that badges open and the
Colab setup cell installs from), the ref students install (a tag), where the local
checkout of the student repository is, and the date each solution may be released."""

from __future__ import annotations

import datetime
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (Gradescope's image, older lab machines)
    import tomli as tomllib

ASSIGNMENT_NAME = re.compile(r"^\d\d_[a-z0-9_]+$")
ROOT_ENV = "DLCOURSE_ROOT"
REPOSITORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+$")
# Refs that move: a student's Drive copy saved in week 1 would install whatever they point at in week 9.
MOVING_REFS = ("main", "master", "HEAD", "develop", "trunk")


class CourseError(Exception):
    """A problem an instructor can fix; the message says what and how."""


@dataclass(frozen=True)
class Course:
    root: Path
    repository: str  # the student repository, owner/name on GitHub
    ref: str  # the tag (or commit) of it that students install
    student_checkout: Path | None = None  # default destination of publish and release
    release_dates: dict[str, datetime.date] = field(default_factory=dict, hash=False, compare=False)
    # Where the notebooks download data sets from first (dlcourse.data's mirror); build writes it into
    # every setup cell
    data_mirror: str | None = None
    # The assignments that ask students for a Colab GPU, and why ([tool.dlcourse.gpu]); the others say
    # they need none
    gpu: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    native_code: tuple[str, ...] = ()  # assignments whose notebooks may load native code of their own

    @property
    def notebooks_dir(self) -> Path:
        return self.root / "notebooks"

    def assignments(self) -> list[str]:
        """Every assignment, in course order (the NN_ prefix)."""
        if not self.notebooks_dir.is_dir():
            return []
        return sorted(
            p.name
            for p in self.notebooks_dir.iterdir()
            if p.is_dir() and ASSIGNMENT_NAME.match(p.name) and (p / f"{p.name}.py").exists()
        )

    def resolve(self, names: list[str] | None) -> list[str]:
        """The assignments named (all of them when none is), or a CourseError listing the known ones."""
        known = self.assignments()
        if not names:
            return known
        unknown = [n for n in names if n not in known]
        misnamed = [n for n in unknown if (self.notebooks_dir / n).is_dir() and not ASSIGNMENT_NAME.match(n)]
        if misnamed:
            raise CourseError(
                f"notebooks/{misnamed[0]} is not an assignment: its name breaks the rule NN_name (two digits, an "
                "underscore, then lowercase letters, digits and underscores, e.g. 07_optim); rename the folder "
                "and its .py file")
        unnamed = [n for n in unknown if (self.notebooks_dir / n).is_dir() and not (self.notebooks_dir / n / f"{n}.py").exists()]
        if unnamed:
            raise CourseError(f"notebooks/{unnamed[0]} has no {unnamed[0]}.py: an assignment's source is named as "
                              "its folder")
        if unknown:
            raise CourseError(
                f"unknown assignment(s): {', '.join(unknown)}. "
                f"Known assignments: {', '.join(known) or '(none: notebooks/ has no NN_name/NN_name.py)'}."
            )
        return list(names)

    def source_path(self, name: str) -> Path:
        return self.notebooks_dir / name / f"{name}.py"

    def student_path(self, name: str) -> Path:
        return self.root / "assignments" / name / f"{name}.ipynb"

    def solution_path(self, name: str) -> Path:
        return self.root / "solutions" / name / f"{name}.ipynb"

    def mutants_path(self, name: str) -> Path:
        return self.root / "autograder" / name / "mutants.toml"

    def colab_url(self, path: str) -> str:
        return f"https://colab.research.google.com/github/{self.repository}/blob/{self.ref}/{path}"

    def github_url(self, path: str) -> str:
        return f"https://github.com/{self.repository}/blob/{self.ref}/{path}"

    def git_url(self) -> str:
        """The URL pip and git fetch the student repository from."""
        return f"https://github.com/{self.repository}"

    def pip_spec(self) -> str:
        return f"dlcourse @ git+{self.git_url()}@{self.ref}"

    def ref_moves(self) -> bool:
        return self.ref in MOVING_REFS


def find_root(start: Path | None = None) -> Path:
    """The course repository: $DLCOURSE_ROOT, else the nearest parent with notebooks/ and pyproject.toml."""
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV]).resolve()
    here = (start or Path.cwd()).resolve()
    for candidate in [here, *here.parents]:
        if (candidate / "pyproject.toml").exists() and (candidate / "notebooks").is_dir():
            return candidate
    raise CourseError(
        f"no course repository found at or above {here}: run dlcourse from the course "
        f"checkout (the folder with pyproject.toml and notebooks/), or set ${ROOT_ENV}."
    )


def load_course(root: Path | None = None) -> Course:
    root = root or find_root()
    where = root / "pyproject.toml"
    try:
        with open(where, "rb") as f:
            config = tomllib.load(f).get("tool", {}).get("dlcourse", {})
    except tomllib.TOMLDecodeError as error:
        raise CourseError(f"{where}: not valid TOML ({error})") from None
    # `repository` is the key's old name (before the course was split in two).
    repository = config.get("student_repository", config.get("repository"))
    if not repository:
        raise CourseError(
            f"{where}: [tool.dlcourse] needs student_repository = 'owner/name': the public GitHub "
            "repository `dlcourse publish` writes, that Colab opens and students install from"
        )
    if not isinstance(repository, str) or not REPOSITORY.match(repository):
        raise CourseError(f"{where}: [tool.dlcourse] student_repository = {repository!r} is not 'owner/name'")
    ref = config.get("ref")
    if not ref or not isinstance(ref, str):
        raise CourseError(
            f"{where}: [tool.dlcourse] needs ref = 'v1.0' (the tag of the student repository "
            "students install; one per term or release)"
        )
    checkout = config.get("student_checkout")
    dates = config.get("release_dates", {})
    if not isinstance(dates, dict) or not all(
        isinstance(d, datetime.date) and not isinstance(d, datetime.datetime) for d in dates.values()
    ):
        raise CourseError(
            f"{where}: [tool.dlcourse.release_dates] takes one date per assignment, e.g. 01_backprop = 2026-10-13"
        )
    mirror = config.get("data_mirror")
    if mirror is not None and not (isinstance(mirror, str) and mirror.startswith(("https://", "http://"))):
        raise CourseError(
            f"{where}: [tool.dlcourse] data_mirror = {mirror!r} is not a URL: give the https:// address of a "
            "folder holding <data set>/<file name> (e.g. cifar10/cifar-10-python.tar.gz)"
        )
    gpu = config.get("gpu", {})
    if not isinstance(gpu, dict) or not all(isinstance(v, str) and v.strip() for v in gpu.values()):
        raise CourseError(
            f"{where}: [tool.dlcourse.gpu] takes one line per assignment that needs a GPU, saying why, e.g. "
            '02_cnn = "part 3 trains a ResNet on CIFAR-10"'
        )
    native_code = config.get("native_code", [])
    if not isinstance(native_code, list) or not all(isinstance(n, str) for n in native_code):
        raise CourseError(f"{where}: [tool.dlcourse] native_code takes a list of assignments, e.g. ['07_cuda']")
    return Course(
        root=root,
        gpu=dict(gpu),
        data_mirror=mirror.rstrip("/") if mirror else None,
        repository=repository,
        ref=ref,
        student_checkout=(root / checkout).resolve() if checkout else None,
        release_dates=dict(dates),
        native_code=tuple(native_code),
    )
