"""The instructor verbs of the `dlcourse` command: build, check, sample, publish, release, similarity,
report, grade, gradescope, export. `dlcourse.cli` (the student side) adds them to its command table
when this package is installed; the student course leaves it out, and there each verb says so in one line.
Runs in the instructor's process.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dlcourse.cli import EXIT_FAILED, EXIT_OK, fraction, positive_int
from dlcourse.instructor.course import CourseError, load_course

# What `dlcourse.cli.main` reports as one line (exit 3) instead of a traceback.
EXPECTED_ERRORS = (CourseError,)


def _build(args: argparse.Namespace) -> int:
    from dlcourse.instructor.authoring.build import build, refuse_to_clear_outputs, write_colab_index

    course = load_course()
    names = course.resolve(args.assignments)
    if args.no_execute and args.keep_outputs:
        raise CourseError("--no-execute and --keep-outputs: give one (--keep-outputs keeps the committed outputs)")
    if args.no_execute:
        for name in names:
            refuse_to_clear_outputs(course, name)
    for name in names:
        result = build(course, name, execute_solution=not args.no_execute, keep_outputs=args.keep_outputs)
        print(f"{name}: wrote {result['student'].relative_to(course.root)} and "
              f"{result['solution'].relative_to(course.root)}")
    for path in write_colab_index(course):
        print(f"wrote {path.relative_to(course.root)}")
    return EXIT_OK


def _new(args: argparse.Namespace) -> int:
    from dlcourse.instructor.authoring.new import new_assignment, next_steps

    course = load_course()
    for path in new_assignment(course, args.assignment):
        print(f"wrote {path.relative_to(course.root)}")
    for line in next_steps(course, args.assignment):
        print(line)
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    from dlcourse.instructor.authoring.build import require_fresh
    from dlcourse.instructor.authoring.check import check_assignment, format_table
    from dlcourse.instructor.grading.template import Template

    course = load_course()
    require_fresh(course, course.resolve(args.assignments), "checking")  # a second, not minutes of grading
    with Template() as template:  # the kernels' template, for every assignment checked; closed at the end
        reports = [check_assignment(course, name, workers=args.workers, template=template)
                   for name in course.resolve(args.assignments)]
    print(format_table(reports))
    for name in [r.assignment for r in reports if r.assignment not in course.release_dates]:
        print(f"note: {name} has no release date: `dlcourse release {name}` will refuse without --force until "
              f"[tool.dlcourse.release_dates] has `{name} = YYYY-MM-DD`")
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
    from dlcourse.instructor.authoring.build import require_fresh
    from dlcourse.instructor.authoring.publish import LeakError, publish, resolve_destination

    course = load_course()
    require_fresh(course, course.resolve(args.assignments or None), "publishing")  # (colab/ publish writes anew)
    try:
        result = publish(course, resolve_destination(course, args.to), args.assignments)
    except LeakError as error:
        print(f"dlcourse publish: {error}", file=sys.stderr)
        return EXIT_FAILED
    _print_published(course, result)
    return EXIT_OK


def _release(args: argparse.Namespace) -> int:
    from dlcourse.instructor.authoring.publish import LeakError, release, resolve_destination

    from dlcourse.instructor.authoring.build import require_fresh

    course = load_course()
    names = course.resolve(args.assignments)
    require_fresh(course, names, "releasing")
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
    from dlcourse.instructor.authoring.build import require_fresh
    from dlcourse.instructor.grading.cli import run_grade, run_grade_nbgrader
    from dlcourse.instructor.grading.nbgrader_course import CONFIG_FILE

    if (Path.cwd() / CONFIG_FILE).is_file() and not _dlcourse_assignment(args.assignment):
        return run_grade_nbgrader(args, Path.cwd())
    course = load_course()
    require_fresh(course, course.resolve([args.assignment]), "grading", built_only=True)
    return run_grade(args)


def _dlcourse_assignment(name: str) -> bool:
    """Is `name` an assignment of a dlcourse course at or above this folder? (Its autograder/ folder is an
    nbgrader course folder too, where dlcourse's own assignment wins.)"""
    try:
        return name in load_course().assignments()
    except CourseError:
        return False


def _gradescope(args: argparse.Namespace) -> int:
    from dlcourse.instructor.gradescope.bundle import build_bundle, read_settings

    from dlcourse.instructor.authoring.build import require_fresh

    course = load_course()
    [name] = course.resolve([args.assignment])
    require_fresh(course, [name], "bundling it for Gradescope", built_only=True)
    if args.try_notebook and not args.try_notebook.is_file():
        raise CourseError(f"{args.try_notebook}: no such notebook to try the bundle on")
    visibility = {k: v for k, v in (("hidden", args.hidden_visibility), ("visible", args.visible_visibility)) if v}
    settings = read_settings(course, name, memory_mb=args.memory, timeout_s=args.timeout,
                             visibility=visibility or None)
    output = build_bundle(course, name, args.output or Path(f"{name}-autograder.zip"), settings)
    limits = settings.limits()
    print(f"{name}: wrote {output} (upload it as the autograder of a Gradescope programming assignment)")
    print(f"  Gradescope settings this bundle assumes: {settings.memory_mb} MB memory, timeout {settings.timeout_s} s; "
          f"a notebook gets {limits['memory_mb']} MB and {limits['timeout_s']:g} s")
    if args.try_notebook:
        from dlcourse.instructor.gradescope.rehearse import format_results, try_bundle

        for line in format_results(try_bundle(output, args.try_notebook), args.try_notebook):
            print(line)
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


def add_commands(commands, shared: dict[str, argparse.ArgumentParser]) -> None:
    """Add the instructor verbs to the `dlcourse` command table (`commands`: argparse's subparsers)."""
    build = commands.add_parser("build", parents=[shared["assignments"]],
                                help="build student and solution notebooks from notebooks/")
    build.add_argument("--no-execute", action="store_true",
                       help="do not run the solution (writes it without outputs; refused when the committed "
                            "solution has outputs)")
    build.add_argument("--keep-outputs", "--headers-only", dest="keep_outputs", action="store_true",
                       help="do not run the solution again: keep the committed outputs after a change of markdown, "
                            "points, a visible test's hint or [tool.dlcourse] (refused, naming the cell, when "
                            "code changed)")
    build.set_defaults(run=_build)

    new = commands.add_parser("new", help="start an assignment: notebooks/NN_name/NN_name.py (one cell of each "
                                          "kind) and its mutants.toml")
    new.add_argument("assignment", help="NN_name, e.g. 07_optim")
    new.set_defaults(run=_new)

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
    gradescope.add_argument("--try", dest="try_notebook", type=Path, default=None, metavar="NOTEBOOK",
                            help="then grade NOTEBOOK with the bundle as Gradescope would (its run_autograder in a "
                                 "scratch /autograder) and print the results")
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
