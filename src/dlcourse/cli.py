"""The `dlcourse` command: doctor (students), build / check / grade / release (instructors and TAs)."""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

from dlcourse.course import CourseError, load_course


def _doctor(args: argparse.Namespace) -> int:
    from dlcourse import doctor

    doctor.print_report()
    return 0


def _build(args: argparse.Namespace) -> int:
    from dlcourse.authoring.build import build, write_colab_index

    course = load_course()
    for name in course.resolve(args.assignments):
        result = build(course, name, execute_solution=not args.no_execute)
        print(f"{name}: wrote {result['student'].relative_to(course.root)} and "
              f"{result['solution'].relative_to(course.root)}")
    for path in write_colab_index(course):
        print(f"wrote {path.relative_to(course.root)}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from dlcourse.authoring.check import check_assignment, format_table
    from dlcourse.grading.zygote import zygote

    course = load_course()
    try:
        reports = [check_assignment(course, name, workers=args.workers) for name in course.resolve(args.assignments)]
    finally:
        zygote().close()  # the kernels' template: no need to wait for it to notice we are gone
    print(format_table(reports))
    return 0 if all(r.ok for r in reports) else 1


def _release(args: argparse.Namespace) -> int:
    from dlcourse.authoring.build import release_solution

    course = load_course()
    for name in course.resolve(args.assignments):
        target = release_solution(course, name, Path(args.to) / name)
        print(f"{name}: solution released to {target}")
    return 0


def _grade(args: argparse.Namespace) -> int:
    from dlcourse.grading.cli import run_grade

    return run_grade(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dlcourse", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    doctor = commands.add_parser("doctor", help="print the environment report (versions, GPU, data cache)")
    doctor.set_defaults(run=_doctor)

    build = commands.add_parser("build", help="build student and solution notebooks from notebooks/")
    build.add_argument("assignments", nargs="*", help="e.g. 00_setup (default: all)")
    build.add_argument("--no-execute", action="store_true",
                       help="do not run the solution (writes it without outputs)")
    build.set_defaults(run=_build)

    check = commands.add_parser("check", help="grade solution, blank and mutants; scan for leaks")
    check.add_argument("assignments", nargs="*", help="e.g. 00_setup (default: all)")
    check.add_argument("--workers", type=int, default=None, help="notebooks graded at once (default: cores)")
    check.set_defaults(run=_check)

    release = commands.add_parser("release", help="copy executed solutions to a folder to publish (TAs)")
    release.add_argument("assignments", nargs="+")
    release.add_argument("--to", default="release/solutions", help="destination folder")
    release.set_defaults(run=_release)

    grade = commands.add_parser("grade", help="autograde a batch of submissions into nbgrader's gradebook")
    from dlcourse.grading.cli import add_arguments

    add_arguments(grade)
    grade.set_defaults(run=_grade)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except CourseError as error:
        print(f"dlcourse {args.command}: {error}", file=sys.stderr)
        return 2


def command() -> None:
    """The `dlcourse` console script."""
    code = main()
    # What is left is freed by the exit anyway; without this the interpreter's last garbage collection
    # walks every object nbgrader, jupyter and sqlalchemy made: 0.6 s after the work is done.
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    command()
