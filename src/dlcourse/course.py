"""The course as a whole: where the repository is, which assignments exist, and
the one course config (GitHub repository and ref) that badges and the Colab
setup cell are built from."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ASSIGNMENT_NAME = re.compile(r"^\d\d_[a-z0-9_]+$")
ROOT_ENV = "DLCOURSE_ROOT"


class CourseError(Exception):
    """A problem an instructor can fix; the message says what and how."""


@dataclass(frozen=True)
class Course:
    root: Path
    repository: str
    ref: str

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

    def pip_spec(self) -> str:
        return f"dlcourse @ git+https://github.com/{self.repository}@{self.ref}"


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
    try:
        with open(root / "pyproject.toml", "rb") as f:
            config = tomllib.load(f).get("tool", {}).get("dlcourse", {})
    except tomllib.TOMLDecodeError as error:
        raise CourseError(f"{root / 'pyproject.toml'}: not valid TOML ({error})") from None
    try:
        return Course(root=root, repository=config["repository"], ref=config["ref"])
    except KeyError as missing:
        raise CourseError(
            f"{root / 'pyproject.toml'}: [tool.dlcourse] needs {missing} "
            "(repository = 'owner/name' on GitHub, ref = branch or tag)"
        ) from None
