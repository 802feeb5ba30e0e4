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
from dlcourse.instructor.course import CourseError, load_course

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_COURSE_ERROR = 0, 1, 2, 3
EXAMPLES = """\
exit status: 0 done, 1 a check, a grade or the leak gate failed, 2 usage error, 3 course error
  (a missing file, an unknown assignment, a bad config; one line says what to fix)

example:
  dlcourse build 01_backprop && dlcourse check 01_backprop
  dlcourse grade 01_backprop submissions.zip --csv grades.csv
  dlcourse publish --to ../dlcourse-student && dlcourse release 01_backprop --to ../dlcourse-student
"""


def _doctor(args: argparse.Namespace) -> int:
    from dlcourse import doctor

    doctor.print_report()
    return EXIT_OK


def _build(args: argparse.Namespace) -> int:
    from dlcourse.instructor.authoring.build import build, write_colab_index

    course = load_course()
    for name in course.resolve(args.assignments):
        result = build(course, name, execute_solution=not args.no_execute, headers_only=args.headers_only)
        print(f"{name}: wrote {result['student'].relative_to(course.root)} and "
              f"{result['solution'].relative_to(course.root)}")
    for path in write_colab_index(course):
        print(f"wrote {path.relative_to(course.root)}")
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    from dlcourse.instructor.authoring.check import check_assignment, format_table
    from dlcourse.instructor.grading.template import Template

    course = load_course()
    with Template() as template:  # the kernels' template, for every assignment checked; closed at the end
        reports = [check_assignment(course, name, workers=args.workers, template=template)
                   for name in course.resolve(args.assignments)]
    print(format_table(reports))
    return EXIT_OK if all(r.ok for r in reports) else EXIT_FAILED


def _sample(args: argparse.Namespace) -> int:
    from dlcourse.instructor.authoring.sample import write_sample_batch

    course = load_course()
    [name] = course.resolve([args.assignment])
    paths = write_sample_batch(course, name, args.folder, args.count, broken=not args.no_broken)
    print(f"wrote {len(paths)} submissions of {name} to {args.folder}")
    return EXIT_OK


def _print_published(course, result) -> None:
    from dlcourse.instructor.authoring.publish import push_commands

    where = result.destination
    if result.unchanged:
        print(f"{where}: up to date, nothing changed")
    else:
        for label, paths in (("added", result.added), ("changed", result.changed), ("removed", result.removed)):
            for path in paths:
                print(f"  {label:<8}{path}")
        print(f"{where}: {len(result.added)} added, {len(result.changed)} changed, {len(result.removed)} removed "
              f"(assignments: {', '.join(result.assignments)}; solutions: {', '.join(result.released) or 'none'})")
        print("nothing is committed; to publish it:")
        for line in push_commands(course, result):
            print(f"  {line}")
    for note in result.notes:
        print(f"note: {note}")


def _publish(args: argparse.Namespace) -> int:
    from dlcourse.instructor.authoring.publish import LeakError, publish, resolve_destination

    course = load_course()
    try:
        result = publish(course, resolve_destination(course, args.to), args.assignments)
    except LeakError as error:
        print(f"dlcourse publish: {error}", file=sys.stderr)
        return EXIT_FAILED
    _print_published(course, result)
    return EXIT_OK


def _release(args: argparse.Namespace) -> int:
    from dlcourse.instructor.authoring.publish import LeakError, release, resolve_destination

    course = load_course()
    names = course.resolve(args.assignments)
    destination = resolve_destination(course, args.to)
    for name in names:
        try:
            result = release(course, name, destination, force=args.force)
        except LeakError as error:
            print(f"dlcourse release: {error}", file=sys.stderr)
            return EXIT_FAILED
        print(f"{name}: solution released into the student course")
        _print_published(course, result)
    return EXIT_OK


def _similarity(args: argparse.Namespace) -> int:
    from dlcourse.instructor.similarity import find_similar, format_table, write_report

    course = load_course()
    [name] = course.resolve([args.assignment])
    result = find_similar(course, name, args.submissions, threshold=args.threshold)
    print(format_table(result))
    if args.report:
        print(f"report: {write_report(result, args.report)}")
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from dlcourse.instructor.report import run_report

    course = load_course()
    [name] = course.resolve([args.assignment])
    run_report(course, name, args.output or course.root / "autograder" / "reports" / name, db_url=args.db,
               nbgrader_dir=args.nbgrader_dir)
    return EXIT_OK


def _grade(args: argparse.Namespace) -> int:
    from dlcourse.instructor.grading.cli import run_grade

    return run_grade(args)


def _gradescope(args: argparse.Namespace) -> int:
    from dlcourse.instructor.gradescope.bundle import build_bundle, read_settings

    course = load_course()
    [name] = course.resolve([args.assignment])
    visibility = {k: v for k, v in (("hidden", args.hidden_visibility), ("visible", args.visible_visibility)) if v}
    settings = read_settings(course, name, memory_mb=args.memory, timeout_s=args.timeout,
                             visibility=visibility or None)
    output = build_bundle(course, name, args.output or Path(f"{name}-autograder.zip"), settings)
    limits = settings.limits()
    print(f"{name}: wrote {output} (upload it as the autograder of a Gradescope programming assignment)")
    print(f"  Gradescope settings this bundle assumes: {settings.memory_mb} MB memory, timeout {settings.timeout_s} s; "
          f"a notebook gets {limits['memory_mb']} MB and {limits['timeout_s']:g} s")
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from dlcourse.instructor.export import build_export, gradebook_assignments, summary, write_export
    from dlcourse.instructor.grading.batch import default_db_url

    course = load_course()
    db_url = args.db or default_db_url(course)
    names = course.resolve(args.assignments) if args.assignments else gradebook_assignments(db_url, course.assignments())
    export = build_export(db_url, names, args.roster, args.submissions)
    output = write_export(export, args.to, args.output or Path(f"grades-{args.to}.csv"))
    for line in summary(export, output, args.to):
        print(line)
    return EXIT_OK


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

    build = commands.add_parser("build", parents=[shared["assignments"]],
                                help="build student and solution notebooks from notebooks/")
    build.add_argument("--no-execute", action="store_true",
                       help="do not run the solution (writes it without outputs)")
    build.add_argument("--headers-only", action="store_true",
                       help="keep the committed solutions' outputs, rewrite their badge and setup cells "
                            "(after a [tool.dlcourse] change; refused when other cells changed)")
    build.set_defaults(run=_build)

    check = commands.add_parser("check", parents=[shared["assignments"], shared["workers"]],
                                help="grade solution, blank and mutants; scan for leaks")
    check.set_defaults(run=_check)

    sample = commands.add_parser("sample", help="write a sample batch of submissions (demos, benchmarks)")
    sample.add_argument("assignment", help="e.g. 00_setup")
    sample.add_argument("folder", type=Path)
    sample.add_argument("--count", type=positive_int, default=None, metavar="N",
                        help="number of valid submissions (default: one of each)")
    sample.add_argument("--no-broken", action="store_true", help="leave out the broken and stripped notebooks")
    sample.set_defaults(run=_sample)

    publish = commands.add_parser("publish", parents=[shared["assignments"]],
                                  help="write or update the student course (behind the leak gate)")
    publish.add_argument("--to", metavar="DIR", default=None,
                         help="a checkout of the student repository (default: [tool.dlcourse] student_checkout)")
    publish.set_defaults(run=_publish)

    release = commands.add_parser("release", help="add an executed solution to the student course (TAs)")
    release.add_argument("assignments", nargs="+", metavar="ASSIGNMENT", help="e.g. 01_backprop")
    release.add_argument("--to", metavar="DIR", default=None,
                         help="the student course (default: [tool.dlcourse] student_checkout)")
    release.add_argument("--force", action="store_true",
                         help="release before the date in [tool.dlcourse.release_dates]")
    release.set_defaults(run=_release)

    similarity = commands.add_parser("similarity", help="rank pairs of submissions whose own code is alike")
    similarity.add_argument("assignment", help="e.g. 01_backprop")
    similarity.add_argument("submissions", type=Path,
                            help="a folder of <student>.ipynb, nbgrader's submitted/ tree, or an LMS zip")
    similarity.add_argument("--report", type=Path, default=None, metavar="DIR",
                            help="write index.html and a side-by-side page per pair to DIR")
    similarity.add_argument("--threshold", type=fraction, default=0.5, metavar="T",
                            help="report pairs at least this similar, 0 to 1 (default 0.5)")
    similarity.set_defaults(run=_similarity)

    report = commands.add_parser("report", help="batch statistics from the gradebook: pass rate and failures per "
                                 "test, scores, times, flags (HTML + CSV)")
    report.add_argument("assignment", help="e.g. 01_backprop")
    report.add_argument("-o", "--output", type=Path, default=None, metavar="DIR",
                        help="where to write index.html, its figures and tests.csv (default autograder/reports/NN)")
    report.add_argument("--db", default=None, metavar="URL",
                        help="gradebook URL (default sqlite:///autograder/gradebook.db)")
    report.add_argument("--nbgrader-dir", type=Path, default=None, metavar="DIR",
                        help="nbgrader course folder with autograded/ (default autograder/)")
    report.set_defaults(run=_report)

    grade = commands.add_parser("grade", parents=[shared["workers"]],
                                help="autograde a batch of submissions into nbgrader's gradebook")
    from dlcourse.instructor.grading.cli import add_arguments

    add_arguments(grade)
    grade.set_defaults(run=_grade)

    gradescope = commands.add_parser("gradescope", help="build the Gradescope autograder zip of one assignment")
    gradescope.add_argument("assignment", help="e.g. 00_setup")
    gradescope.add_argument("-o", "--output", type=Path, default=None, metavar="ZIP",
                            help="where to write it (default NN_name-autograder.zip)")
    gradescope.add_argument("--memory", type=positive_int, default=None, metavar="MB",
                            help="the container memory set in Gradescope's Autograder Settings (default 768, or "
                                 "[tool.dlcourse.gradescope] memory_mb)")
    gradescope.add_argument("--timeout", type=positive_int, default=None, metavar="S",
                            help="Gradescope's autograder timeout in seconds (default 600, or timeout_s)")
    for tests, parts, default in (("hidden", "with", "after_published"), ("visible", "without", "visible")):
        gradescope.add_argument(f"--{tests}-visibility", default=None,
                                choices=("hidden", "after_due_date", "after_published", "visible"),
                                help=f"when students see tests {parts} hidden parts (default {default})")
    gradescope.set_defaults(run=_gradescope)

    export = commands.add_parser("export", parents=[shared["assignments"]],
                                 help="write grades from the gradebook as an LMS import file (Canvas, Moodle, CSV)")
    export.add_argument("--to", choices=("canvas", "moodle", "csv"), default="csv", help="file format (default csv)")
    export.add_argument("-o", "--output", type=Path, default=None, metavar="FILE",
                        help="where to write it (default grades-FORMAT.csv)")
    export.add_argument("--roster", type=Path, default=None, metavar="CSV",
                        help="the LMS's own export (Canvas gradebook export, Moodle grade export) or a CSV with a "
                             "'student' column: its students, in its order")
    export.add_argument("--submissions", type=Path, default=None, metavar="ZIP",
                        help="the LMS zip the grades came from: Canvas user ids and Moodle names from its file names")
    export.add_argument("--db", default=None, metavar="URL",
                        help="gradebook URL (default sqlite:///autograder/gradebook.db)")
    export.set_defaults(run=_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except CourseError as error:
        message = str(error)
    except OSError as error:  # a file or folder the command needs: missing, unreadable, not writable
        message = f"{error.filename}: {error.strerror}" if error.filename and error.strerror else str(error)
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
