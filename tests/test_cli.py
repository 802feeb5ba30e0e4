"""The `dlcourse` command's conventions: --version, --help, exit codes, one-line messages for an instructor's mistakes."""

from __future__ import annotations

import subprocess
import sys

import nbformat
import pytest

import dlcourse
from dlcourse.cli import EXIT_COURSE_ERROR, EXIT_OK, EXIT_USAGE, INSTRUCTOR_COMMANDS, build_parser, main

VERBS = ("doctor", "build", "check", "sample", "publish", "release", "grade")


@pytest.fixture
def in_course(demo_course, monkeypatch):
    monkeypatch.chdir(demo_course.root)
    monkeypatch.delenv("DLCOURSE_ROOT", raising=False)
    return demo_course


def run_command(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dlcourse.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_version_prints_the_package_version():
    done = run_command("--version")
    assert done.returncode == EXIT_OK and done.stdout.strip() == f"dlcourse {dlcourse.__version__}"


def test_help_lists_each_verb_on_one_line_with_an_example_and_the_exit_codes():
    done = run_command("--help")
    assert done.returncode == EXIT_OK
    lines = done.stdout.splitlines()
    for verb in VERBS:
        assert any(line.split()[:1] == [verb] and len(line.split()) > 1 for line in lines), verb
    assert "example:" in done.stdout and "dlcourse check 01_backprop" in done.stdout
    assert "3 course error" in done.stdout


@pytest.mark.parametrize("args", [["nonsense"], ["check", "--workers", "0"], ["sample"]])
def test_a_usage_error_exits_2(args, capsys):
    with pytest.raises(SystemExit) as exit:
        main(args)
    assert exit.value.code == EXIT_USAGE


@pytest.mark.parametrize("command", [["check", "42_nothing"], ["release", "42_nothing"],
                                     ["sample", "42_nothing", "out"], ["grade", "42_nothing", "subs"]])
def test_an_unknown_assignment_is_one_message_from_every_command(in_course, command, capsys):
    assert main(command) == EXIT_COURSE_ERROR
    err = capsys.readouterr().err
    assert err == (f"dlcourse {command[0]}: unknown assignment(s): 42_nothing. Known assignments: 99_demo.\n")


def test_release_of_an_unpublished_assignment_is_a_one_line_error(in_course, capsys):
    from dlcourse.instructor.authoring.build import build

    build(in_course, "99_demo", execute_solution=False, log=lambda *_: None)  # fresh: the gate lets it through
    assert main(["release", "99_demo", "--to", str(in_course.root / "student-course")]) == EXIT_COURSE_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "99_demo is not published" in err and "dlcourse publish --to" in err
    assert "Traceback" not in err and not (in_course.root / "student-course").exists()


def test_a_broken_course_config_is_a_one_line_error(in_course, capsys):
    (in_course.root / "pyproject.toml").write_text("[tool.dlcourse\n")
    assert main(["check"]) == EXIT_COURSE_ERROR
    err = capsys.readouterr().err
    assert err.startswith("dlcourse check: ") and "pyproject.toml: not valid TOML" in err and err.count("\n") == 1


def test_sample_writes_the_solution_the_blank_and_each_mutant(in_course, capsys):
    folder = in_course.root / "sample"
    assert main(["sample", "99_demo", str(folder), "--no-broken"]) == EXIT_OK
    names = sorted(p.stem for p in folder.glob("*.ipynb"))
    assert names == ["s000-solution", "s001-blank", "s002-mutant-adds-two", "s003-mutant-negatives-wrong"]
    assert "return x + 2" in "".join(c.source for c in nbformat.read(folder / "s002-mutant-adds-two.ipynb", 4).cells)
    assert capsys.readouterr().out == f"wrote 4 submissions of 99_demo to {folder}\n"


def test_the_instructor_verbs_are_the_ones_a_student_install_answers_in_one_line():
    # dlcourse.cli names them for the student package, where dlcourse.instructor (which defines them) is absent
    subparsers = next(a for a in build_parser()._actions if isinstance(a, __import__("argparse")._SubParsersAction))
    assert set(subparsers.choices) - {"doctor"} == set(INSTRUCTOR_COMMANDS)
