"""`dlcourse publish` and `dlcourse release`: the student course holds what students may see and
nothing else, the leak gate refuses a planted secret wherever it is, publishing twice changes
nothing, releases come after publishing and after their date; and dlcourse runs on Python 3.10."""

from __future__ import annotations

import ast
import datetime
import gzip
import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
import yaml

from dlcourse.instructor.authoring.build import build
from dlcourse.instructor.authoring.publish import MANIFEST, LeakError, PublishError, gate, publish, release, secrets
from dlcourse.cli import EXIT_COURSE_ERROR, EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from dlcourse.instructor.course import CourseError, load_course
from tests.conftest import make_course

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
SOLUTION_LINE = "return 2 * x  # the distinctive solution line"
HIDDEN_LINE = 'assert double(-3.5) == -7.0, "the hidden negative-number test"'
ANSWER_LINE = "Because multiplication distributes over addition in every ring."
LATER = datetime.date(2100, 1, 1)


def quiet(*_):
    pass


def git(folder: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "TA", "GIT_AUTHOR_EMAIL": "ta@example.org", "GIT_COMMITTER_NAME": "TA",
           "GIT_COMMITTER_EMAIL": "ta@example.org", "PATH": "/usr/bin:/bin:/usr/local/bin"}
    return subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True, text=True, env=env).stdout


@pytest.fixture
def course(tmp_path):
    """The demo course with what the student course needs from a course repository."""
    root = tmp_path / "course"
    root.mkdir()
    course = make_course(root)
    (root / "LICENSE").write_text("MIT License\n")
    (root / "environment.yml").write_text("name: demo\n")
    package = root / "src" / "dlcourse"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""The demo package.\n\n    Doubles numbers.\n"""\n__version__ = "0.2.0"\n')
    (root / "data" / "offline").mkdir(parents=True)
    (root / "data" / "manifest.json").write_text('{"datasets": {}}\n')
    (root / "data" / "offline" / "words.txt.gz").write_bytes(gzip.compress(b"alpha\nbeta\n"))
    build(course, "99_demo", execute_solution=True, log=quiet)
    return course


@pytest.fixture
def in_course(course, monkeypatch):
    monkeypatch.chdir(course.root)
    monkeypatch.delenv("DLCOURSE_ROOT", raising=False)
    return course


def every_file(folder: Path) -> dict[str, str]:
    """Every file under `folder` as text, archives unpacked: what a reader could find in it."""
    out = {}
    for path in folder.rglob("*"):
        if not path.is_file() or ".git" in path.parts:
            continue
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        if data[:4] == b"PK\x03\x04":
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                data = b"\n".join(archive.read(member) for member in archive.namelist())
        out[str(path.relative_to(folder))] = data.decode("utf-8", errors="replace")
    return out


def test_publish_writes_the_student_course_and_nothing_secret(course, tmp_path):
    destination = tmp_path / "student"
    result = publish(course, destination, log=quiet)
    files = every_file(destination)
    for path in ("README.md", "LICENSE", "environment.yml", "pyproject.toml", ".gitignore", MANIFEST,
                 "assignments/99_demo/99_demo.ipynb", "colab/README.md", "colab/index.ipynb",
                 "src/dlcourse/__init__.py", "data/manifest.json", "data/offline/words.txt.gz"):
        assert path in files, path
    assert sorted(result.added) == sorted(p for p in files if p != MANIFEST)
    assert not any(p.startswith(("notebooks/", "autograder/", "solutions/", "tests/")) for p in files)
    assert "[tool.dlcourse]" not in files["pyproject.toml"]
    assert "Colab" in files["README.md"] and "Handing in" in files["README.md"]
    assert "https://colab.research.google.com/github/example/course/blob/v1/assignments/99_demo/99_demo.ipynb" \
        in files["README.md"]
    for text in (SOLUTION_LINE, HIDDEN_LINE, ANSWER_LINE, "BEGIN SOLUTION", "HIDDEN TESTS"):
        assert not [p for p, content in files.items() if text in content], text


def test_publish_twice_changes_nothing_in_a_git_checkout(course, tmp_path):
    destination = tmp_path / "student"
    destination.mkdir()
    git(destination, "init", "-q", "-b", "main")
    publish(course, destination, log=quiet)
    git(destination, "add", "-A")
    git(destination, "commit", "-q", "-m", "publish")
    again = publish(course, destination, log=quiet)
    assert again.unchanged
    assert git(destination, "status", "--porcelain") == ""
    # uncommitted, publish's own: a third publish accepts them and still changes nothing
    source = course.source_path("99_demo")
    source.write_text(source.read_text().replace("Write `double`.", "Write `double`, carefully."))
    build(course, "99_demo", execute_solution=False, log=quiet)
    changed = publish(course, destination, log=quiet)
    assert "assignments/99_demo/99_demo.ipynb" in changed.changed
    assert publish(course, destination, log=quiet).unchanged


@pytest.mark.parametrize("where", ["package docstring", "markdown cell", "data file", "archive", "hidden test",
                                   "model answer", "marker"])
def test_the_leak_gate_refuses_a_planted_secret_and_writes_nothing(course, tmp_path, where):
    root = course.root
    planted = {"package docstring": SOLUTION_LINE, "markdown cell": SOLUTION_LINE, "data file": SOLUTION_LINE,
               "archive": SOLUTION_LINE, "hidden test": HIDDEN_LINE, "model answer": ANSWER_LINE,
               "marker": "### BEGIN SOLUTION"}[where]
    if where in ("package docstring", "marker"):
        init = root / "src" / "dlcourse" / "__init__.py"
        init.write_text(init.read_text().replace("    Doubles numbers.\n", f"    Doubles numbers.\n    {planted}\n"))
        expected = "src/dlcourse/__init__.py, line 4"
    elif where == "data file":
        (root / "data" / "manifest.json").write_text(json.dumps({"datasets": {"x": {"about": planted}}}, indent=1))
        expected = "data/manifest.json, line 4"
    elif where == "archive":
        (root / "data" / "offline" / "words.txt.gz").write_bytes(gzip.compress(f"alpha\n{planted}\n".encode()))
        expected = "data/offline/words.txt.gz, line 2"
    else:
        path = course.student_path("99_demo")
        nb = nbformat.read(str(path), as_version=4)
        nb.cells.insert(3, nbformat.v4.new_markdown_cell(f"A hint:\n\n{planted}"))
        nbformat.write(nb, str(path))
        expected = "assignments/99_demo/99_demo.ipynb, cell 4, line 3"
    destination = tmp_path / "student"
    with pytest.raises(LeakError) as error:
        publish(course, destination, log=quiet)
    message = str(error.value)
    assert expected in message and "nothing was written" in message
    if where == "marker":
        assert "nbgrader marker '### BEGIN SOLUTION'" in message
    else:
        kind = {"hidden test": "hidden test", "model answer": "model answer"}.get(where, "solution")
        cell = {"hidden test": "cell 4 (test_double)", "model answer": "cell 5 (why_double)"}.get(where, "cell 3 (double)")
        assert f"{kind} line" in message and f"from notebooks/99_demo/99_demo.py, {cell}" in message
    assert not destination.exists()


def test_publish_leaves_the_instructor_toolchain_out_and_the_gate_refuses_it(course, tmp_path):
    grader = course.root / "src" / "dlcourse" / "instructor" / "grading" / "runner.py"
    grader.parent.mkdir(parents=True)
    grader.write_text("SIMILARITY_THRESHOLD = 0.5\n")
    destination = tmp_path / "student"
    publish(course, destination, log=quiet)
    assert (destination / "src" / "dlcourse" / "__init__.py").is_file()
    assert not (destination / "src" / "dlcourse" / "instructor").exists()
    # the gate's own check, should a change to what publish copies let the folder in
    leaks = gate(course, {"src/dlcourse/instructor/grading/runner.py": grader.read_bytes(),
                          "src/dlcourse/checks.py": b"x = 1\n"}, [])
    assert [str(leak) for leak in leaks] == [
        "src/dlcourse/instructor/grading/runner.py: a file of the instructor toolchain (dlcourse.instructor): "
        "the student package carries only the student side"]


def test_the_real_course_publishes_the_student_side_only(tmp_path):
    """What a student installs from the student course: the helpers, no grader; an environment
    without the instructor's tools; an instructor verb answered in one line."""
    destination = tmp_path / "student"
    publish(load_course(ROOT), destination, log=quiet)
    package = destination / "src" / "dlcourse"
    modules = sorted(".".join(p.relative_to(destination / "src").with_suffix("").parts)
                     for p in package.rglob("*.py") if p.name != "__main__.py")
    assert "dlcourse.checks" in modules and "dlcourse.selfcheck" in modules and "dlcourse.data" in modules
    assert not [m for m in modules if m.startswith("dlcourse.instructor")]
    assert not (package / "instructor").exists()
    # every module the student gets imports without the instructor part
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\nprint('ok')"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(destination / "src"), "DLCOURSE_OFFLINE": "1",
           "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code, *modules], capture_output=True, text=True, env=env,
                          cwd=tmp_path)
    assert done.stdout.strip() == "ok", done.stderr
    done = subprocess.run([sys.executable, "-m", "dlcourse.cli", "build", "00_setup"], capture_output=True,
                          text=True, env=env, cwd=tmp_path)
    assert done.returncode == EXIT_USAGE and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "dlcourse build: an instructor tool" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr

    pyproject = (destination / "pyproject.toml").read_text()
    assert pyproject.startswith("[build-system]\n")
    assert "optional-dependencies" not in pyproject and "nbgrader" not in pyproject
    environment = yaml.safe_load((destination / "environment.yml").read_text())
    pip = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    conda = {re.split(r"[<>=!~ ]", item, maxsplit=1)[0]: item for item in environment["dependencies"]
             if isinstance(item, str)}
    assert pip == ["-e ."]
    assert set(conda) == {"python", "pip", "pytorch", "torchvision", "numpy", "matplotlib", "scikit-learn", "tqdm",
                          "tomli", "jupyterlab"}
    dependencies = tomllib.loads(pyproject)["project"]["dependencies"]
    assert {conda["pytorch"].replace("pytorch", "torch"), conda["numpy"]} <= {d.split(";")[0] for d in dependencies}
    assert ".venv/" in (destination / ".gitignore").read_text().splitlines()


def test_the_cli_reports_a_leak_and_exits_1(in_course, tmp_path, capsys):
    init = in_course.root / "src" / "dlcourse" / "__init__.py"
    init.write_text(init.read_text() + f'"""\n{SOLUTION_LINE}\n"""\n')
    assert main(["publish", "--to", str(tmp_path / "student")]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert err.startswith("dlcourse publish: the leak gate found 1 secret line(s)") and "src/dlcourse/__init__.py" in err
    assert not (tmp_path / "student").exists()


def test_the_cli_prints_what_changed_and_the_git_commands(in_course, tmp_path, capsys):
    destination = tmp_path / "student"
    assert main(["publish", "--to", str(destination)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "added   assignments/99_demo/99_demo.ipynb" in out and "nothing is committed" in out
    assert f"git -C {destination} tag v1" in out and f"git -C {destination} push origin HEAD v1" in out
    assert main(["publish", "--to", str(destination)]) == EXIT_OK
    assert capsys.readouterr().out == f"{destination}: up to date, nothing changed\n"


def bad_config(course):
    (course.root / "pyproject.toml").write_text('[tool.dlcourse]\nref = "v1"\n')


def dirty_checkout(course, destination):
    destination.mkdir()
    git(destination, "init", "-q", "-b", "main")
    (destination / "README.md").write_text("my own notes\n")


@pytest.mark.parametrize("case, message", [
    ("no student repository", "[tool.dlcourse] needs student_repository = 'owner/name'"),
    ("the course itself", "is the course repository itself"),
    ("hand edits", "has uncommitted changes publish did not make: README.md"),
    ("unknown assignment", "unknown assignment(s): 42_nothing"),
    ("no destination", "Pass --to DIR"),
])
def test_bad_input_is_one_line_and_writes_nothing(in_course, tmp_path, capsys, case, message):
    destination = tmp_path / "student"
    args = ["publish", "--to", str(destination)]
    if case == "no student repository":
        bad_config(in_course)
    elif case == "the course itself":
        args = ["publish", "--to", str(in_course.root)]
    elif case == "hand edits":
        dirty_checkout(in_course, destination)
    elif case == "unknown assignment":
        args.append("42_nothing")
    else:
        args = ["publish"]
    before = sorted(p.name for p in in_course.root.rglob("*"))
    assert main(args) == EXIT_COURSE_ERROR
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert sorted(p.name for p in in_course.root.rglob("*")) == before
    if case == "hand edits":
        assert sorted(p.name for p in destination.iterdir()) == [".git", "README.md"]
        assert (destination / "README.md").read_text() == "my own notes\n"
    elif case != "the course itself":
        assert not destination.exists()


def test_release_before_and_after_publish(in_course, tmp_path, capsys):
    destination = tmp_path / "student"
    with pytest.raises(PublishError, match="99_demo is not published"):
        release(in_course, "99_demo", destination, force=True, log=quiet)
    publish(in_course, destination, log=quiet)
    assert not (destination / "solutions").exists()
    with pytest.raises(PublishError, match=r"99_demo has no release date: add `99_demo = YYYY-MM-DD`.*--force"):
        release(in_course, "99_demo", destination, log=quiet)  # no date: never released by accident
    assert not (destination / "solutions").exists()
    result = release(in_course, "99_demo", destination, force=True, log=quiet)
    assert result.added == ["solutions/99_demo/99_demo.ipynb"] and result.released == ["99_demo"]
    solution = (destination / "solutions" / "99_demo" / "99_demo.ipynb").read_text()
    assert "the distinctive solution line" in solution and ANSWER_LINE in solution
    assert HIDDEN_LINE not in solution and "BEGIN SOLUTION" not in solution
    assert "solutions/99_demo/99_demo.ipynb" in (destination / "README.md").read_text()
    assert publish(in_course, destination, log=quiet).unchanged, "a later publish keeps the released solution"
    # the hidden tests never go out, released or not
    path = in_course.solution_path("99_demo")
    nb = nbformat.read(str(path), as_version=4)
    nb.cells[-2].outputs = [nbformat.v4.new_output("stream", text=HIDDEN_LINE + "\n")]
    nbformat.write(nb, str(path))
    with pytest.raises(LeakError, match="hidden test line"):
        publish(in_course, destination, log=quiet)


def test_release_dates_are_honoured_and_force_says_so(in_course, tmp_path, capsys):
    (in_course.root / "pyproject.toml").write_text(
        '[tool.dlcourse]\nstudent_repository = "example/course"\nref = "v1"\n'
        '[tool.dlcourse.release_dates]\n99_demo = 2100-01-01\n')
    course = load_course(in_course.root)
    destination = tmp_path / "student"
    publish(course, destination, log=quiet)
    assert main(["release", "99_demo", "--to", str(destination)]) == EXIT_COURSE_ERROR
    err = capsys.readouterr().err
    assert "due for release on 2100-01-01" in err and "--force" in err and err.count("\n") == 1
    assert not (destination / "solutions").exists()
    assert main(["release", "99_demo", "--to", str(destination), "--force"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "WARNING: releasing the solution of 99_demo BEFORE its release date 2100-01-01 (--force)" in out
    assert (destination / "solutions" / "99_demo" / "99_demo.ipynb").exists()
    release(course, "99_demo", destination, today=LATER, log=quiet)  # after the date: no --force needed


def test_an_unexecuted_solution_is_not_released(in_course, tmp_path):
    destination = tmp_path / "student"
    publish(in_course, destination, log=quiet)
    build(in_course, "99_demo", execute_solution=False, log=quiet)
    with pytest.raises(PublishError, match="is not executed: run `dlcourse build 99_demo`"):
        release(in_course, "99_demo", destination, force=True, log=quiet)
    assert not (destination / "solutions").exists()


def visible_lines(folder: Path) -> dict[str, set[str]]:
    """Every line a reader of each file sees, stripped: notebook cells and outputs, text, archives."""
    out = {}
    for path, text in every_file(folder).items():
        if path.endswith(".ipynb"):
            nb = nbformat.reads(text, as_version=4)
            text = "\n".join(c.source + "\n" + "\n".join(str(o.get("text", "")) + str(o.get("data", ""))
                                                          for o in c.get("outputs", [])) for c in nb.cells)
        out[path] = {line.strip() for line in text.splitlines()}
    return out


def test_the_real_course_published_and_released_leaks_nothing(tmp_path):
    """Done when: publish to an empty folder, then every line of every file there compared with
    every solution line, model answer and hidden test of every assignment: none found; the same
    once every solution is released, for the hidden tests. (Shorter text inside a longer line is
    the spec: "call d_optimizer.step()" names what a solution calls; the data files, where a
    line is not a reader's line, are searched for the text anywhere.)"""
    course = load_course(ROOT)
    destination = tmp_path / "student"
    publish(course, destination, log=quiet)
    found = secrets(course)
    assert len(found) > 500 and {s.kind for s in found.values()} == {"solution", "model answer", "hidden test"}
    lines = visible_lines(destination)
    assert sorted(p.split("/")[1] for p in lines if p.startswith("assignments/")) == course.assignments()
    markers = {"### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"}
    assert {path: seen & (set(found) | markers) for path, seen in lines.items() if seen & (set(found) | markers)} == {}
    data = {p: t for p, t in every_file(destination).items() if p.startswith("data/")}
    assert [(p, line) for p, text in data.items() for line in found if line in text] == []
    for name in course.assignments():
        release(course, name, destination, today=LATER, log=quiet)
    hidden = {line for line, s in found.items() if s.kind == "hidden test"} | markers
    lines = visible_lines(destination)
    assert sorted(p for p in lines if p.startswith("solutions/")) == [
        f"solutions/{n}/{n}.ipynb" for n in course.assignments()]
    assert {path: seen & hidden for path, seen in lines.items() if seen & hidden} == {}


# ---------------------------------------------------------------------------------------------
# Versions


def test_the_cli_runs_without_tomllib_as_on_python_3_10(tmp_path):
    """Python 3.10 has no tomllib: dlcourse reads its config with tomli instead."""
    code = (
        "import sys\n"
        "class NoTomllib:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'tomllib': raise ModuleNotFoundError(\"No module named 'tomllib'\")\n"
        "sys.meta_path.insert(0, NoTomllib())\n"
        "sys.version_info = (3, 10, 13, 'final', 0)\n"
        "from dlcourse.cli import main\n"
        "from dlcourse.instructor.course import load_course\n"
        "import dlcourse.instructor.authoring.mutants\n"
        "assert 'tomllib' not in sys.modules and 'tomli' in sys.modules\n"
        f"course = load_course(__import__('pathlib').Path({str(ROOT)!r}))\n"
        "print(course.repository, course.ref, sorted(course.release_dates)[0])\n"
        "sys.exit(main(['--version']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    course = load_course(ROOT)
    assert done.stdout.splitlines()[0] == f"{course.repository} {course.ref} 00_setup"
    assert done.stdout.splitlines()[1].startswith("dlcourse ")


def test_the_package_is_python_3_10_syntax():
    for path in sorted((ROOT / "src" / "dlcourse").rglob("*.py")):
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 10))


def test_the_version_is_in_one_place_and_the_ref_is_a_tag():
    import dlcourse

    text = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in text and 'path = "src/dlcourse/__init__.py"' in text
    course = load_course(ROOT)
    assert not course.ref_moves()
    assert course.ref == f"v{dlcourse.__version__}", "the student course's tag names the package version"


def test_build_headers_only_writes_what_a_full_build_writes(course):
    """A new ref (a new release) changes only the header cells: `build --headers-only` keeps the
    committed outputs and writes the bytes a full build (real execution) writes."""
    root = course.root
    (root / "pyproject.toml").write_text('[tool.dlcourse]\nstudent_repository = "example/course"\nref = "v2"\n')
    course = load_course(root)
    build(course, "99_demo", headers_only=True, log=quiet)
    headers_only = course.solution_path("99_demo").read_bytes(), course.student_path("99_demo").read_bytes()
    assert b"example/course/blob/v2/solutions/99_demo/99_demo.ipynb" in headers_only[0]
    build(course, "99_demo", execute_solution=True, log=quiet)
    assert (course.solution_path("99_demo").read_bytes(), course.student_path("99_demo").read_bytes()) == headers_only
    source = course.source_path("99_demo")
    source.write_text(source.read_text().replace("return 2 * x", "return x + x"))
    with pytest.raises(CourseError, match="its code changed since the solution ran"):
        build(course, "99_demo", headers_only=True, log=quiet)


def test_check_runs_the_leak_gate_over_what_publish_would_write(course):
    from dlcourse.instructor.authoring.check import check_assignment

    init = course.root / "src" / "dlcourse" / "__init__.py"
    init.write_text(init.read_text() + f"# {SOLUTION_LINE}\n")
    report = check_assignment(course, "99_demo", workers=1, log=quiet)
    assert not report.ok
    assert any("src/dlcourse/__init__.py, line 6: solution line" in problem for problem in report.problems), report.problems
