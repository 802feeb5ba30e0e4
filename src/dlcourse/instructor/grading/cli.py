"""`dlcourse grade ASSIGNMENT SUBMISSIONS`: autograde a batch into nbgrader's gradebook. Runs in the
grader process; it creates the batch's template process and closes it at the end.

    dlcourse grade 00_setup autograder/submitted --csv grades.csv
    dlcourse grade 00_setup canvas_download.zip --workers 4 --timeout 300
    cd nbgrader-course && dlcourse grade ps1      # a plain nbgrader course folder (grading.nbgrader_course)
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from dlcourse.instructor.grading import settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Grade every submission of ASSIGNMENT in parallel, each in its own confined kernel; "
        "scores go into nbgrader's gradebook (formgrader, export and generate_feedback keep working), "
        "autograded notebooks into autograder/autograded/, feedback pages (--feedback) into DIR."
    )
    parser.add_argument("assignment", help="e.g. 00_setup (in an nbgrader course folder: an assignment in source/)")
    parser.add_argument("submissions", type=Path, nargs="?", default=None,
                        help="a folder of <student>.ipynb, nbgrader's submitted/<student>/<assignment>/ tree, "
                             "or an LMS zip (in an nbgrader course folder, default its submitted/)")
    parser.add_argument("--timeout", type=float, default=settings.TIMEOUT_S,
                        help=f"seconds per notebook (default {settings.TIMEOUT_S:g})")
    parser.add_argument("--cell-timeout", type=float, default=None,
                        help=f"seconds per cell (default {settings.CELL_TIMEOUT_S:g}; in an nbgrader course, "
                             "its Execute.timeout)")
    parser.add_argument("--memory", type=int, default=settings.MEMORY_MB, metavar="MB",
                        help="memory per submission in MiB, on top of the preloaded libraries "
                             f"(default {settings.MEMORY_MB}; 0: none)")
    parser.add_argument("--csv", type=Path, default=None, metavar="FILE", help="write one row per student here")
    parser.add_argument("--feedback", type=Path, default=None, metavar="DIR",
                        help="write a feedback page per student to DIR/<student>/<assignment>/<assignment>.html "
                             "(e.g. autograder/feedback, nbgrader's layout)")
    parser.add_argument("--db", default=None, metavar="URL",
                        help="gradebook URL, any that nbgrader accepts (default sqlite:///autograder/gradebook.db)")
    parser.add_argument("--force", action="store_true", help="grade again submissions already in the gradebook")
    parser.add_argument("--nbgrader-dir", type=Path, default=None, metavar="DIR",
                        help="nbgrader course folder for autograded/ and the default gradebook (default autograder/)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="grade on this Dask cluster, e.g. tcp://HOST:8786 (default $DLCOURSE_SCHEDULER; "
                             "none: the local pool); needs the cluster extra")
    parser.add_argument("--report", type=Path, default=None, metavar="DIR",
                        help="after grading, write the batch report to DIR (index.html with figures, tests.csv: "
                             "pass rate and most frequent failures per test; as `dlcourse report`)")
    parser.add_argument("--extensions", type=Path, default=None, metavar="CSV",
                        help="extensions: student, assignment, and days, hours or due (default: [tool.dlcourse.late] "
                             "extensions); late policy and due dates: [tool.dlcourse.late.\"NN\"] in pyproject.toml")
    parser.add_argument("--submission-times", type=Path, default=None, metavar="CSV",
                        help="when each submission came in: columns student and submitted_at (or timestamp); "
                             "else nbgrader's timestamp.txt, else the LMS zip's late marks")


def _options(args: argparse.Namespace, cell_timeout: float | None = settings.CELL_TIMEOUT_S):
    from dlcourse.instructor.grading.batch import BatchOptions

    return BatchOptions(
        workers=args.workers, timeout=args.timeout,
        cell_timeout=args.cell_timeout if args.cell_timeout is not None else cell_timeout or args.timeout,
        memory_mb=args.memory or None, csv_path=args.csv, feedback_dir=args.feedback, db_url=args.db,
        force=args.force, progress=not getattr(args, "no_progress", False),
        nbgrader_dir=getattr(args, "nbgrader_dir", None),
        scheduler=getattr(args, "scheduler", None) or os.environ.get("DLCOURSE_SCHEDULER") or None,
        extensions=getattr(args, "extensions", None), submission_times=getattr(args, "submission_times", None),
    )


def run_grade_nbgrader(args: argparse.Namespace, folder: Path) -> int:
    """`dlcourse grade ASSIGNMENT [SUBMISSIONS]` in a plain nbgrader course folder."""
    from dlcourse.instructor.course import CourseError
    from dlcourse.instructor.grading.nbgrader_course import grade_assignment, load_nbgrader_course

    for option in ("extensions", "submission_times", "report", "nbgrader_dir"):
        if getattr(args, option, None):
            raise CourseError(f"--{option.replace('_', '-')} needs a dlcourse course; in an nbgrader course folder "
                              "leave it out (the folder itself is the nbgrader folder)")
    course = load_nbgrader_course(folder)
    # nbgrader's Execute.timeout is per cell; None there means no limit but the notebook's own.
    rows = grade_assignment(course, args.assignment, args.submissions, _options(args, course.cell_timeout))
    if args.csv:
        print(f"grades written to {args.csv}")
    return 0 if all(r.status != "grader error" for r in rows) else 1


def run_grade(args: argparse.Namespace) -> int:
    from dlcourse.instructor.course import CourseError, load_course
    from dlcourse.instructor.grading.template import Template, preload_for

    if args.submissions is None:
        raise CourseError("say where the submissions are: dlcourse grade ASSIGNMENT SUBMISSIONS (a folder, "
                          "nbgrader's submitted/ tree or an LMS zip)")
    course = load_course()
    course.resolve([args.assignment])
    # Start the kernel template now: its imports run while this process loads nbgrader and reads the batch.
    template = Template(preload_for(course.source_path(args.assignment).read_text(encoding="utf-8")))
    template.start()
    from dlcourse.instructor.grading.batch import grade_batch

    options = _options(args)
    try:
        rows = grade_batch(course, args.assignment, args.submissions, options, template=template)
    finally:
        template.close()
    if args.csv:
        print(f"grades written to {args.csv}")
    if getattr(args, "report", None):
        from dlcourse.instructor.report import run_report

        run_report(course, args.assignment, args.report, db_url=args.db, nbgrader_dir=getattr(args, "nbgrader_dir", None))
    return 0 if all(r.status != "grader error" for r in rows) else 1
