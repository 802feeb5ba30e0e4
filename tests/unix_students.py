"""Students as real Unix users, for tests of nbgrader's exchange (tests/test_exchange.py): create and
remove them, run a command as one of them (runuser), and give them a Python with nbgrader that they may
run, as a JupyterHub's shared environment is. Needs root."""

from __future__ import annotations

import importlib.metadata
import os
import pwd
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest

SBIN = f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"  # useradd and runuser live here; CI's PATH may lack it
# Reads nbgrader's first file, as a student's Python must (importing all of nbgrader takes seconds).
READS_NBGRADER = "import importlib.util; open(importlib.util.find_spec('nbgrader').origin).close()"


def tool(name: str) -> str:
    found = shutil.which(name, path=SBIN)
    if found is None:
        pytest.fail(f"{name} not found: run .ci/setup (apt-get install passwd util-linux)")
    return found


@dataclass
class Student:
    """A Unix user with a home folder, running commands there as themselves."""

    name: str
    python: str = sys.executable  # the one they run nbgrader with (student_python)

    @property
    def home(self) -> Path:
        return Path(pwd.getpwnam(self.name).pw_dir)

    @property
    def uid(self) -> int:
        return pwd.getpwnam(self.name).pw_uid

    def attempt(self, *command: str) -> subprocess.CompletedProcess:
        """`command` as this user in their home, with the environment a login gives them."""
        env = {"HOME": str(self.home), "USER": self.name, "LOGNAME": self.name, "LANG": "C.UTF-8",
               "PATH": f"{Path(self.python).parent}:/usr/bin:/bin"}
        return subprocess.run([tool("runuser"), "-u", self.name, "--", *command], cwd=self.home, env=env,
                              capture_output=True, text=True, timeout=300)

    def run(self, *command: str) -> str:
        """`command` as this user; its output, or a failure that shows it."""
        done = self.attempt(*command)
        assert done.returncode == 0, f"{self.name}: {' '.join(command)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
        return done.stdout + done.stderr

    def nbgrader(self, *args: str) -> str:
        return self.run(self.python, "-m", "nbgrader", *args)


def create_user(name: str) -> Student:
    subprocess.run([tool("useradd"), "--create-home", "--shell", "/bin/sh", "--user-group", name],
                   check=True, capture_output=True, text=True)
    return Student(name)


def remove_user(name: str) -> None:
    subprocess.run([tool("userdel"), "--remove", name], capture_output=True)


def nbgrader_closure() -> list[importlib.metadata.Distribution]:
    """nbgrader and every distribution it requires (extras asked for included), installed here."""
    from packaging.requirements import Requirement

    found: dict[str, importlib.metadata.Distribution] = {}
    done: set[tuple[str, str]] = set()
    todo = [("nbgrader", "")]
    while todo:
        name, extra = todo.pop()
        name = re.sub(r"[-_.]+", "-", name).lower()
        if (name, extra) in done:
            continue
        done.add((name, extra))
        try:
            found.setdefault(name, importlib.metadata.distribution(name))
        except importlib.metadata.PackageNotFoundError:
            continue
        for line in found[name].requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": extra}):
                todo += [(requirement.name, wanted) for wanted in ("", *requirement.extras)]
    return list(found.values())


def interpreter_for(student: Student) -> str:
    """A Python of this version that `student` may run: this one's base interpreter, else the system's
    (a pyenv or uv interpreter under /root is closed to other users)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [os.path.realpath(sys.executable), os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
                  f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for candidate in dict.fromkeys(candidates):
        runs = student.attempt(candidate, "-c", "import sys, venv; print('%d.%d' % sys.version_info[:2])")
        if runs.returncode == 0 and runs.stdout.strip() == version:
            return candidate
    pytest.fail(f"no Python {version} that other users may run (tried {', '.join(candidates)}): students need "
                f"one, as on a JupyterHub; install python{version} system-wide (apt-get install python{version})")


def link_tree(files: list[Path], origin: Path, target: Path) -> None:
    """`files` (under `origin`) at the same places under `target`: hard links, copies across file systems."""
    for path in files:
        destination = target / path.relative_to(origin)
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, destination)
        except FileExistsError:
            pass
        except OSError:
            shutil.copy2(path, destination)


def student_python(student: Student, folder: Path) -> str:
    """The Python students run nbgrader with: a venv in `folder` (which they may read) on an interpreter
    they may run, seeing this environment's packages where they may read them, else holding nbgrader and
    its requirements linked from here. On a JupyterHub students run a shared environment; a checkout
    under /root (a CI clone) is closed to them."""
    subprocess.run([interpreter_for(student), "-m", "venv", "--without-pip", str(folder)], check=True)
    python = str(folder / "bin" / "python")
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               check=True, capture_output=True, text=True).stdout.strip())
    ours = Path(sysconfig.get_path("purelib")).resolve()
    if student.attempt(python, "-c", f"import sys; sys.path.append({str(ours)!r}); {READS_NBGRADER}").returncode == 0:
        (site / "instructor-environment.pth").write_text(f"{ours}\n", encoding="utf-8")
    else:
        files = [Path(dist.locate_file(f)).resolve() for dist in nbgrader_closure() for f in dist.files or []]
        link_tree([f for f in files if f.is_file() and ours in f.parents], ours, site)
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    works = student.attempt(python, "-c", READS_NBGRADER)
    assert works.returncode == 0, f"the students' Python cannot read nbgrader:\n{works.stderr}"
    return python
