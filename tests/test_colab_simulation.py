"""The student path as Colab runs it, without the network.

A stand-in for a fresh Colab VM, per notebook:
- the student course is published (`dlcourse publish`) into a git repository, tagged with the
  configured ref and cloned bare; git's ``url.<file URL>.insteadOf`` sends the exact URL the setup
  cell uses (https://github.com/<student repository>) there;
- a Python environment whose site-packages holds everything this machine's .venv has (torch,
  torchvision, numpy, matplotlib, ipykernel, ...) except dlcourse: Colab's preinstalled packages.
  Colab's runtime list (googlecolab/backend-info, pip-freeze.gpu.txt, 2026-08) has Python 3.13,
  torch 2.11.0+cu128, torchvision 0.26.0, numpy 2.1.3, matplotlib 3.10.0, scikit-learn 1.6.1,
  tqdm 4.67.3; this machine cannot install those offline, so the nearest it has stand in
  (Python 3.11, torch 2.14.1, see .ci/setup), and a test below checks that pyproject's ranges
  admit Colab's versions, so that pip keeps them as it keeps ours here;
- a stand-in ``google.colab`` (drive.mount, files.download) imported when the kernel starts, as
  Colab's kernel does, and Colab's environment markers (COLAB_RELEASE_TAG, ...); /content is a
  temporary folder ($DLCOURSE_COLAB_CONTENT).
pip runs with no index at all (PIP_NO_INDEX): anything it tried to download would fail the test.
Colab's pip builds dlcourse in an isolated environment with hatchling from PyPI; offline, the
build backend comes from the environment (hatchling is in the test extra) and build isolation is
off (PIP_NO_BUILD_ISOLATION=0), the only difference from Colab's install.

Each published student notebook runs its setup cell, the cells before its first exercise, the
setup cell again (harmless), and a probe, through nbclient.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from packaging.requirements import Requirement
from packaging.version import Version

from dlcourse import __version__ as COURSE_VERSION
from dlcourse.instructor.authoring.publish import publish
from dlcourse.instructor.course import load_course

ROOT = Path(__file__).resolve().parents[1]
# The assignments by their sources, so that collecting these tests does not load the course.
ASSIGNMENTS = sorted(path.parent.name for path in ROOT.glob("notebooks/[0-9][0-9]_*/[0-9][0-9]_*.py"))


@functools.cache
def course():
    return load_course(ROOT)

# Colab's GPU runtime, googlecolab/backend-info pip-freeze.gpu.txt (2026-08-19, Python 3.13)
COLAB_VERSIONS = {"torch": "2.11.0", "torchvision": "0.26.0", "numpy": "2.1.3", "matplotlib": "3.10.0",
                  "scikit-learn": "1.6.1", "tqdm": "4.67.3"}
PREINSTALLED_SKIP = ("dlcourse", "_editable_impl_dlcourse", "__editable__")

GOOGLE_COLAB = {
    "__init__.py": '"""Stand-in for Colab\'s google.colab (the Colab simulation test)."""\n',
    "drive.py": '''import os

def mount(mountpoint, force_remount=False, timeout_ms=120000, readonly=False):
    os.makedirs(os.path.join(mountpoint, "MyDrive"), exist_ok=True)
    print(f"Mounted at {mountpoint}")
''',
    "files.py": '''DOWNLOADED = []

def download(filename):
    DOWNLOADED.append(filename)
''',
}

PROBE = '''import importlib.metadata, importlib.util, json, subprocess, sys
import dlcourse, dlcourse.data
from google.colab import files
drive = dlcourse.mount_drive()
files.download("probe.ipynb")
print("PROBE " + json.dumps({
    "file": dlcourse.__file__, "version": dlcourse.__version__, "in_colab": dlcourse.in_colab(),
    "cache": str(dlcourse.data.cache_dir()), "drive": str(drive), "downloads": files.DOWNLOADED,
    "direct_url": json.loads(importlib.metadata.distribution("dlcourse").read_text("direct_url.json")),
    "doctor": dlcourse.doctor.dlcourse_origin(),
    "instructor": importlib.util.find_spec("dlcourse.instructor") is not None,
    "build": subprocess.run(["dlcourse", "build"], capture_output=True, text=True).stderr,
}))'''


def git(*args, cwd=None):
    env = {**os.environ, "GIT_AUTHOR_NAME": "TA", "GIT_AUTHOR_EMAIL": "ta@example.org",
           "GIT_COMMITTER_NAME": "TA", "GIT_COMMITTER_EMAIL": "ta@example.org"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def student_remote(tmp_path_factory) -> Path:
    """The published student course as GitHub would hold it: a bare repository with the tag."""
    work = tmp_path_factory.mktemp("student-course")
    publish(course(), work, log=lambda *_: None)
    git("init", "-q", "-b", "main", cwd=work)
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "dlcourse publish", cwd=work)
    git("tag", course().ref, cwd=work)
    remote = tmp_path_factory.mktemp("github") / "student.git"
    git("clone", "-q", "--bare", str(work), str(remote))
    return remote


def make_colab_vm(tmp: Path, remote: Path) -> dict:
    """A fresh stand-in Colab VM in `tmp`: its Python environment, kernel, /content and git config."""
    env_dir = tmp / "colab-python"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                        text=True).strip())
    ours = Path(sysconfig.get_path("purelib"))
    for entry in ours.iterdir():
        if entry.name.startswith(PREINSTALLED_SKIP) or entry.name == "google":
            continue
        (site / entry.name).symlink_to(entry)
    colab = site / "google" / "colab"
    colab.mkdir(parents=True)
    if (ours / "google").is_dir():  # protobuf and friends share the google namespace
        for entry in (ours / "google").iterdir():
            (site / "google" / entry.name).symlink_to(entry)
    for name, text in GOOGLE_COLAB.items():
        (colab / name).write_text(text)

    home = tmp / "home"
    home.mkdir()
    gitconfig = home / ".gitconfig"
    gitconfig.write_text(f'[url "{remote.as_uri()}"]\n\tinsteadOf = {course().git_url()}\n')
    content = tmp / "content"
    content.mkdir()
    kernels = tmp / "jupyter" / "kernels" / "colab"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}",
                 "--IPKernelApp.exec_lines=import google.colab"],
        "display_name": "Colab stand-in", "language": "python",
    }))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "DLCOURSE_", "VIRTUAL_ENV", "PYTHON", "GIT_", "JUPYTER"))}
    env.update({
        "HOME": str(home), "GIT_CONFIG_GLOBAL": str(gitconfig), "GIT_TERMINAL_PROMPT": "0",
        "PATH": f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "COLAB_RELEASE_TAG": "release-colab-20260819-060000-RC00", "COLAB_BACKEND_VERSION": "next",
        "DLCOURSE_COLAB_CONTENT": str(content), "DLCOURSE_OFFLINE": "1",
    })
    return {"python": python, "env": env, "content": content, "jupyter": tmp / "jupyter", "site": site}


def freeze(vm: dict) -> set[str]:
    done = subprocess.run([str(vm["python"]), "-m", "pip", "freeze", "--all"], env=vm["env"],
                          capture_output=True, text=True, check=True)
    return set(done.stdout.splitlines())


FIRST_CODE_CELLS = 2  # after the setup cell: the imports, and the data or Drive cell where there is one


def first_cells(name: str) -> nbformat.NotebookNode:
    """The published notebook up to its first exercise (at most FIRST_CODE_CELLS code cells after
    the setup cell: 05_generative trains a classifier next), the setup cell again, and the probe."""
    nb = nbformat.read(str(course().student_path(name)), as_version=4)
    cells = []
    for cell in nb.cells:
        code_after_setup = sum(c.cell_type == "code" and c.get("id") != "colab-setup" for c in cells)
        if cell.get("metadata", {}).get("nbgrader", {}).get("solution") or (
                cell.cell_type == "code" and code_after_setup == FIRST_CODE_CELLS):
            break
        cells.append(cell)
    setup = next(c for c in cells if c.get("id") == "colab-setup")
    nb.cells = cells + [nbformat.v4.new_code_cell(setup.source), nbformat.v4.new_code_cell(PROBE)]
    for index, cell in enumerate(nb.cells):
        cell.id = f"sim-{index}"
    return nb


def stream(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def test_colab_versions_are_inside_the_package_ranges():
    """pip keeps Colab's own torch, numpy... only while pyproject's ranges admit them."""
    text = (ROOT / "pyproject.toml").read_text()
    requirements = [Requirement(line.strip().strip('",')) for line in
                    text.split("dependencies = [", 1)[1].split("]", 1)[0].splitlines() if line.strip().startswith('"')]
    colab_python = {"python_version": "3.13", "python_full_version": "3.13.15"}
    requirements = [r for r in requirements if r.marker is None or r.marker.evaluate(colab_python)]
    assert {r.name for r in requirements} == set(COLAB_VERSIONS)
    for requirement in requirements:
        assert Version(COLAB_VERSIONS[requirement.name]) in requirement.specifier, requirement


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_a_published_notebook_runs_its_setup_cell_as_in_colab(student_remote, tmp_path, monkeypatch, name):
    vm = make_colab_vm(tmp_path, student_remote)
    before = freeze(vm)
    monkeypatch.setenv("JUPYTER_PATH", str(vm["jupyter"]))
    nb = first_cells(name)
    client = NotebookClient(nb, timeout=300, kernel_name="colab", allow_errors=False,
                            resources={"metadata": {"path": str(vm["content"])}})
    client.execute(env=vm["env"])

    setup_outputs = [stream(c) for c in nb.cells if c.source.startswith("# Setup: in Google Colab")]
    commit = git("rev-parse", f"{course().ref}^{{commit}}", cwd=student_remote).strip()
    assert setup_outputs[0].strip() == f"dlcourse {COURSE_VERSION} from {course().git_url()}@{course().ref} (commit {commit[:12]})"
    assert setup_outputs[-1] == setup_outputs[0], "running the setup cell again changes nothing"
    assert "Restart" not in "".join(setup_outputs)

    probe = json.loads(stream(nb.cells[-1]).split("PROBE ", 1)[1])
    assert Path(probe["file"]).resolve().is_relative_to(vm["site"].resolve()), "dlcourse comes from the installed package"
    assert probe["version"] == COURSE_VERSION and probe["in_colab"]
    assert probe["direct_url"]["url"] == course().git_url()
    assert probe["direct_url"]["vcs_info"] == {"vcs": "git", "requested_revision": course().ref, "commit_id": commit}
    assert Path(probe["cache"]) == vm["content"] / "dlcourse-data"
    assert Path(probe["drive"]) == vm["content"] / "drive" / "MyDrive" / "dlcourse" and Path(probe["drive"]).is_dir()
    assert probe["downloads"] == ["probe.ipynb"]
    assert probe["doctor"] == [commit, f"{course().git_url()}@{course().ref}"], "dlcourse doctor names the commit"
    assert not probe["instructor"], "the student course installs no instructor module"
    assert probe["build"].startswith("dlcourse build: an instructor tool") and probe["build"].count("\n") == 1

    added, removed = freeze(vm) - before, before - freeze(vm)
    assert removed == set() and added == {f"dlcourse @ git+{course().git_url()}@{commit}"}, (
        "pip installed only dlcourse and changed none of Colab's packages")


def test_the_setup_cell_explains_a_failed_install_and_asks_for_a_restart_when_needed(student_remote, tmp_path, monkeypatch):
    # the student repository with a second release on top: tag FIX, one commit later
    remote = tmp_path / "github" / "student.git"
    git("clone", "-q", "--bare", str(student_remote), str(remote))
    work = tmp_path / "work"
    git("clone", "-q", str(remote), str(work))
    (work / "README.md").write_text((work / "README.md").read_text() + "\nA fix.\n")
    git("commit", "-q", "-am", "a fix", cwd=work)
    git("tag", "v-fix", cwd=work)
    git("push", "-q", "origin", "HEAD:main", "v-fix", cwd=work)
    vm = make_colab_vm(tmp_path / "vm", remote)
    monkeypatch.setenv("JUPYTER_PATH", str(vm["jupyter"]))
    setup = next(c for c in nbformat.read(str(course().student_path("00_setup")), 4).cells if c.get("id") == "colab-setup")
    ref_line = f'URL, REF = "{course().git_url()}", "{course().ref}"'
    assert ref_line in setup.source
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(setup.source.replace(ref_line, ref_line.replace(course().ref, "v-missing"))),
                nbformat.v4.new_code_cell(setup.source),
                nbformat.v4.new_code_cell("import dlcourse"),
                nbformat.v4.new_code_cell(setup.source.replace(ref_line, ref_line.replace(course().ref, "v-fix")))]
    client = NotebookClient(nb, timeout=300, kernel_name="colab", allow_errors=True,
                            resources={"metadata": {"path": str(vm["content"])}})
    client.execute(env=vm["env"])

    failed = nb.cells[0].outputs
    error = next(o for o in failed if o.output_type == "error")
    assert error.ename == "RuntimeError"
    assert f"pip could not install dlcourse from {course().git_url()}@v-missing (its last lines are above)" in error.evalue
    assert "has internet" in error.evalue and "Runtime > Restart session" in error.evalue
    assert "v-missing" in stream(nb.cells[0]), "pip's own reason is shown"
    assert stream(nb.cells[1]).startswith(f"dlcourse {COURSE_VERSION} from {course().git_url()}@{course().ref} (commit ")
    fixed = stream(nb.cells[3])
    assert f"@v-fix (commit {git('rev-parse', 'v-fix^{commit}', cwd=remote)[:12]})" in fixed
    assert "RESTART NEEDED: dlcourse changed after it was imported. Runtime > Restart session" in fixed


def test_run_all_in_colab_with_a_wrong_and_an_unwritten_exercise_reaches_the_self_check(student_remote, tmp_path,
                                                                                        monkeypatch):
    """Colab's Runtime > Run all stops at the first cell whose execution is an error, like nbclient here."""
    from tests.test_run_all import partly_wrong

    vm = make_colab_vm(tmp_path, student_remote)
    monkeypatch.setenv("JUPYTER_PATH", str(vm["jupyter"]))
    nb, _, _, _ = partly_wrong("00_setup")
    NotebookClient(nb, timeout=600, kernel_name="colab", allow_errors=False,
                   resources={"metadata": {"path": str(vm["content"])}}).execute(env=vm["env"])
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code"), "every cell ran"
    failed = [c.metadata.nbgrader["grade_id"] for c in nb.cells
              if c.get("metadata", {}).get("nbgrader", {}).get("grade") and not c.metadata.nbgrader.get("solution")
              and any(o.output_type == "error" for o in c.outputs)]
    tally = stream(nb.cells[-1])
    assert len(failed) >= 2 and f"{len(failed)} failed" in tally, tally
    assert all(f"{test}" in line and "FAILED" in line for test in failed for line in tally.splitlines()
               if line.startswith(test + " "))
