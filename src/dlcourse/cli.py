"""The `dlcourse` command: doctor (students); build, check, sample, grade, publish, release, gradescope, export
(instructors and TAs).

Exit status: 0 done, 1 a check or a grade failed, 2 usage error (argparse), 3 course error: a
missing file, an unknown assignment or a bad config, reported in one line that says what to fix.
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

from dlcourse import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_COURSE_ERROR = 0, 1, 2, 3
EXAMPLES = """\
exit status: 0 done, 1 a check, a grade or the leak gate failed, 2 usage error, 3 course error
  (a missing file, an unknown assignment, a bad config; one line says what to fix)

example:
  dlcourse build 01_backprop && dlcourse check 01_backprop
  dlcourse grade 01_backprop submissions.zip --csv grades.csv
  dlcourse publish --to ../dlcourse-student && dlcourse release 01_backprop --to ../dlcourse-student
"""


# The verbs of the instructor toolchain (dlcourse.instructor.commands). The student course ships
# without it; there each of them answers with INSTRUCTOR_ONLY.
INSTRUCTOR_COMMANDS = ("new", "build", "check", "sample", "publish", "release", "similarity", "report", "grade",
                       "gradescope", "export")
INSTRUCTOR_ONLY = ("dlcourse {command}: an instructor tool, not part of the student package you installed; "
                   "instructors run it in a checkout of the course repository (pip install -e '.[instructor]').")


def _doctor(args: argparse.Namespace) -> int:
    from dlcourse import doctor

    doctor.print_report()
    return EXIT_OK


def _instructor_only(args: argparse.Namespace) -> int:
    print(INSTRUCTOR_ONLY.format(command=args.command), file=sys.stderr)
    return EXIT_USAGE


def _expected_errors() -> tuple[type[Exception], ...]:
    """The errors `main` reports in one line: a file the command needs, and the course's own."""
    try:
        from dlcourse.instructor.commands import EXPECTED_ERRORS
    except ModuleNotFoundError:
        return (OSError,)
    return (OSError, *EXPECTED_ERRORS)


def fraction(text: str) -> float:
    """An argparse type: a number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 0 to 1")
    return value


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def shared_options() -> dict[str, argparse.ArgumentParser]:
    """Options several commands take, defined once: argparse parents by name."""
    assignments = argparse.ArgumentParser(add_help=False)
    assignments.add_argument("assignments", nargs="*", help="e.g. 00_setup (default: all)")
    workers = argparse.ArgumentParser(add_help=False)
    workers.add_argument("--workers", type=positive_int, default=None, metavar="N",
                         help="notebooks graded at once (default: every core; with GPUs, 3 per GPU)")
    return {"assignments": assignments, "workers": workers}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dlcourse", description=__doc__.splitlines()[0], epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"dlcourse {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    shared = shared_options()

    doctor = commands.add_parser("doctor", help="print the environment report (versions, GPU, data cache)")
    doctor.set_defaults(run=_doctor)

    try:
        from dlcourse.instructor.commands import add_commands
    except ModuleNotFoundError as error:
        if not (error.name or "").startswith("dlcourse.instructor"):
            raise  # the instructor part is there but one of its libraries is not: say which
        for verb in INSTRUCTOR_COMMANDS:
            commands.add_parser(verb, help="instructor tool (not in the student package)", add_help=False,
                                prefix_chars="\0").set_defaults(run=_instructor_only)
            commands.choices[verb].add_argument("ignored", nargs=argparse.REMAINDER)
    else:
        add_commands(commands, shared)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except _expected_errors() as error:
        if isinstance(error, OSError) and error.filename and error.strerror:  # a file or folder the command needs
            message = f"{error.filename}: {error.strerror}"
        else:
            message = str(error)
    print(f"dlcourse {args.command}: {message}", file=sys.stderr)
    return EXIT_COURSE_ERROR


def command() -> None:
    """The `dlcourse` console script."""
    code = main()
    # What is left is freed by the exit anyway; without this the interpreter's last garbage collection
    # walks every object nbgrader, jupyter and sqlalchemy made: 0.6 s after the work is done.
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    command()
