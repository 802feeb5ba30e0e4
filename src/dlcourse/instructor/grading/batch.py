"""Grade a batch: find the submissions, grade them in parallel, and keep every
result safe as soon as it exists. Runs in the grader process (`dlcourse grade`).

For each submission, in this order: grade it (``engine``), save the scores in
the gradebook, write the autograded notebook (atomically; its metadata records
the submission's sha256, status, flags and time), write the feedback page. A
batch killed at any point loses nothing already saved, and the next run grades
exactly what is missing: a submission counts as graded when the
gradebook has it and the autograded notebook records the same sha256 (so a
resubmitted notebook is graded again) and the same version of the assignment's
graded cells (so a change of points or tests grades it again, never leaving a
score under another maximum). ``--force`` grades everything again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from dlcourse.instructor.source import read_source
from dlcourse.instructor.course import Course, CourseError
from dlcourse.instructor.cells import graded_cells, grade_id, score_columns
from dlcourse.instructor.grading.engine import CellScore, GradeResult, Status, grade_notebook
from dlcourse.instructor.grading import settings
from dlcourse.instructor.grading.sanitize import sanitize_notebook
from dlcourse.instructor.grading.settings import default_workers, gpu_count
from dlcourse.instructor.grading.feedback import write_feedback
from dlcourse.instructor.grading.gradebook import GradebookWriter
from dlcourse.instructor.grading.late import LateWork, late_cells, late_header
from dlcourse.instructor.grading.submissions import Submission, SubmissionError, find_submissions, read_submission
from dlcourse.instructor.grading.template import Template, given_or_own, preload_for
from dlcourse.instructor.spreadsheet import SafeWriter
from dlcourse.tables import format_table

RECORD_KEY = "dlcourse_grade"


@dataclass
class Row:
    student: str
    assignment: str
    score: float
    max_score: float
    cells: dict[str, float | None]
    status: str
    flags: list[str] = field(default_factory=list)
    seconds: float = 0.0
    message: str = ""
    kernel_seconds: float = 0.0
    cell_seconds: float = 0.0
    skipped: bool = False
    late_penalty: float | None = None  # points off for late work (grading.late); None: no late policy
    late: str = ""  # why, or what is missing, as the feedback page says


@dataclass
class BatchOptions:
    workers: int | None = None
    timeout: float = settings.TIMEOUT_S
    cell_timeout: float = settings.CELL_TIMEOUT_S
    memory_mb: int | None = settings.MEMORY_MB
    csv_path: Path | None = None
    feedback_dir: Path | None = None
    db_url: str | None = None
    force: bool = False
    progress: bool = True
    isolate: bool = True
    nbgrader_dir: Path | None = None  # default: the course's autograder/
    scheduler: str | None = None  # a Dask scheduler address: grade on that cluster (grading.cluster)
    extensions: Path | None = None  # extensions CSV (default: [tool.dlcourse.late] extensions)
    submission_times: Path | None = None  # a CSV with each student's submission time


@dataclass
class Target:
    """One notebook of one assignment to grade, and where its results go: a dlcourse assignment is one
    notebook (`target_for`); an nbgrader course's assignment may be several (`grading.nbgrader_course`)."""

    assignment: str
    notebook: str  # its name in the gradebook, submitted/ and autograded/ (without .ipynb)
    source: NotebookNode  # the instructor's version: nbgrader metadata, hidden tests
    base: Path  # the nbgrader course folder: autograded/, submitted/, the default gradebook
    files: dict[str, Path] = field(default_factory=dict)  # public files copied next to every submission
    course_files_win: bool = False  # nbgrader course: its files replace the student's copies, as autograde does
    late_root: Path | None = None  # the dlcourse course whose [tool.dlcourse.late] applies; None: no late policy
    native_code: bool = False
    preload: list[str] | None = None  # modules the template imports (None: its defaults)
    write_source: bool = True  # put the source where nbgrader's formgrader looks (a dlcourse course only)
    code_stub: dict | None = None  # what ClearSolutions writes into solution cells (None: dlcourse's)
    db_url: str | None = None  # the gradebook when --db is not given (None: base/gradebook.db)


def target_for(course: Course, assignment: str, options: BatchOptions) -> Target:
    """The one notebook of a dlcourse assignment."""
    course.resolve([assignment])
    text = course.source_path(assignment).read_text(encoding="utf-8")
    return Target(assignment=assignment, notebook=assignment, source=read_source(course.source_path(assignment)),
                  base=Path(options.nbgrader_dir) if options.nbgrader_dir else nbgrader_dir(course),
                  files=public_files(course, assignment), late_root=course.root,
                  native_code=assignment in course.native_code, preload=preload_for(text))


def nbgrader_dir(course: Course) -> Path:
    """The nbgrader course folder (autograder/): gradebook.db, submitted/, autograded/, feedback/."""
    return course.root / "autograder"


def default_db_url(course: Course) -> str:
    return f"sqlite:///{nbgrader_dir(course) / 'gradebook.db'}"


def public_files(course: Course, assignment: str) -> dict[str, Path]:
    """The assignment's public files: everything next to the student notebook, except the notebook."""
    folder = course.student_path(assignment).parent
    if not folder.is_dir():
        return {}
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*"))
            if p.is_file() and p.suffix != ".ipynb" and ".ipynb_checkpoints" not in p.parts}


def _row(student: str, assignment: str, result: GradeResult) -> Row:
    return Row(student=student, assignment=assignment, score=result.score, max_score=result.max_score,
               cells={c.grade_id: c.points for c in result.cells}, status=result.status, flags=list(result.flags),
               seconds=round(result.seconds, 2), message=result.message, kernel_seconds=result.kernel_seconds,
               cell_seconds=result.cell_seconds)


def _invalid(source, reason: str) -> GradeResult:
    cells = [CellScore(*column, points=0.0 if column.kind == "tests" else None, error="not graded: " + reason)
             for column in score_columns(source)]
    return GradeResult(status=Status.INVALID, cells=cells, message=reason)


def _write_atomic(nb, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".part")
    nbformat.write(nb, str(temporary))
    temporary.replace(path)


def write_nbgrader_source(base: Path, assignment: str, source) -> Path:
    """The assignment's source where nbgrader looks for it, `source/<assignment>/<assignment>.ipynb` in the
    nbgrader folder: the formgrader lists only the assignments it finds there (and then their students and
    scores from the gradebook), and nbgrader's own commands work from it."""
    path = base / "source" / assignment / f"{assignment}.ipynb"
    _write_atomic(source, path)
    return path


def _handed_in_at(submission: Submission):
    """The time in nbgrader's timestamp.txt beside the submission (nbgrader's submitted/ tree), else None."""
    from nbgrader.utils import parse_utc

    path = submission.files.get("timestamp.txt")
    try:
        return parse_utc(path.read_text(encoding="utf-8").strip()) if path is not None else None
    except (OSError, ValueError, OverflowError):
        return None


def write_submitted_copy(base: Path, assignment: str, submission: Submission, timestamp,
                         notebook: str | None = None) -> None:
    """The submission as handed in, where nbgrader keeps it (`submitted/<student>/<assignment>/`, with the
    gradebook's submission time in timestamp.txt): nbgrader's formgrader counts and lists a submission
    only when it finds it there with the time the gradebook holds."""
    folder = base / "submitted" / submission.student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    copies = dict(submission.files)
    if submission.notebook is not None:
        copies[f"{notebook or assignment}.ipynb"] = submission.notebook
    for name, path in copies.items():
        target = folder / name
        if target.exists() and target.resolve() == Path(path).resolve():
            continue  # graded from nbgrader's own submitted folder
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    from nbgrader.utils import parse_utc

    stamp = folder / "timestamp.txt"
    try:
        same = parse_utc(stamp.read_text(encoding="utf-8").strip()) == timestamp
    except (OSError, ValueError, OverflowError):
        same = False
    if timestamp is None:
        stamp.unlink(missing_ok=True)
    elif not same:  # (nbgrader's own timestamp.txt, the time the gradebook holds, is left as it is)
        stamp.write_text(str(timestamp), encoding="utf-8")


# What `nbgrader submit` puts beside a notebook and `nbgrader release_feedback` reads beside its feedback page
# (the secret names the page in the exchange, so only the student who submitted fetches it).
EXCHANGE_RECEIPT = ("timestamp.txt", "submission_secret.txt")


def copy_exchange_receipt(submission: Submission, folder: Path) -> None:
    """A submission collected from nbgrader's exchange: its receipt beside the feedback page, so that
    `nbgrader release_feedback` returns the page to the student who submitted it."""
    for name in EXCHANGE_RECEIPT:
        if name in submission.files:
            shutil.copyfile(submission.files[name], folder / name)


def grading_version(source) -> str:
    """What a score depends on in the source: each graded cell's id, role and points, and the text of
    every tests cell (hidden tests included). Markdown and plain cells do not count: the grader runs
    the student's own."""
    graded = [(c.grade_id, c.kind, c.max_points) for c in score_columns(source)]
    tests = [(grade_id(c), c.source) for c in graded_cells(source, "tests")]
    return hashlib.sha256(json.dumps([graded, tests]).encode()).hexdigest()[:16]


def _graded_now(record: dict, version: str, source) -> bool:
    """Whether a recorded grade is one of this version of the assignment (records from before versions
    were kept: the same graded cells with the same points)."""
    if "version" in record:
        return record["version"] == version
    row = record.get("row", {})
    columns = score_columns(source)
    return (sorted(row.get("cells", {})) == sorted(c.grade_id for c in columns)
            and row.get("max_score") == sum(c.max_points for c in columns if c.kind == "tests"))


def _record(path: Path) -> dict | None:
    try:
        return nbformat.read(str(path), as_version=4).metadata.get(RECORD_KEY)
    except Exception:
        return None


def grade_batch(course: Course, assignment: str, submissions: Path, options: BatchOptions,
                log=print, template: Template | None = None) -> list[Row]:
    """Grade every submission of `assignment` under `submissions`; returns one row per student. The
    kernels fork from `template` (``dlcourse grade`` starts one early), else from one of this call's own."""
    return grade_target(target_for(course, assignment, options), submissions, options, log, template)


def db_url_for(target: Target, options: BatchOptions) -> str:
    """--db, else the target's own gradebook, else gradebook.db in its nbgrader folder (created if missing)."""
    db_url = options.db_url or target.db_url or f"sqlite:///{target.base.resolve() / 'gradebook.db'}"
    if db_url.startswith("sqlite:///"):
        Path(db_url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    return db_url


def grade_target(target: Target, submissions: Path, options: BatchOptions, log=print,
                 template: Template | None = None, gradebook: GradebookWriter | None = None) -> list[Row]:
    """Grade every submission of one notebook (`target`) under `submissions`; returns one row per student.
    `gradebook`: the notebook already registered (an assignment of several notebooks registers them all
    before the first grade is saved, or nbgrader's submission would lack the later ones)."""
    assignment, source, base = target.assignment, target.source, target.base
    scratch = Path(tempfile.mkdtemp(prefix="dlcourse-batch-"))
    try:
        found = find_submissions(Path(submissions), assignment, scratch,
                                 notebook=None if target.notebook == assignment else target.notebook)
    except SubmissionError as error:
        raise CourseError(str(error)) from None
    if not found:
        raise CourseError(f"{submissions}: no submissions of {assignment} found (expected <student>.ipynb files, "
                          f"<student>/{assignment}/ folders or a zip)")
    if gradebook is None:
        gradebook = GradebookWriter(db_url_for(target, options), assignment, target.notebook, source,
                                    code_stub=target.code_stub)
    if target.write_source:
        write_nbgrader_source(base, assignment, source)
    late = None if target.late_root is None else \
        LateWork.load(target.late_root, assignment, options.extensions, options.submission_times)
    if late is not None:  # late work (grading.late): the due date into the gradebook, each message once
        late.check_students([s.student for s in found])
        if late.policy.due is not None:
            gradebook.set_duedate(late.policy.due)
        for note in late.notes:
            log(f"{assignment}: {note}")
    feedback_dir = Path(options.feedback_dir) if options.feedback_dir else None
    workers = options.workers or default_workers()
    gpus = gpu_count()
    threads = max(1, (os.cpu_count() or 1) // workers)
    cluster = None
    if options.scheduler:
        from dlcourse.instructor.grading.cluster import ClusterGrader

        cluster = ClusterGrader(options.scheduler, assignment, source, {
            "cell_timeout": options.cell_timeout, "timeout": options.timeout, "memory_mb": options.memory_mb,
            "isolate": options.isolate, "threads": None, "native_code": target.native_code})
        workers = cluster.slots()

    graded = set() if options.force else gradebook.graded_students()
    version = grading_version(source)
    rows: dict[str, Row] = {}
    todo: list[Submission] = []
    outdated: list[str] = []
    for submission in found:
        record = _record(autograded_path(base, submission.student, assignment, target.notebook))
        if submission.student in graded and record and record.get("sha256") == submission.sha256():
            if not _graded_now(record, version, source):
                outdated.append(submission.student)
                todo.append(submission)
                continue
            rows[submission.student] = Row(**{**record["row"], "skipped": True})
            if late is not None:  # a new extension or policy applies without grading again
                late.reapply(rows[submission.student], submission, gradebook)
        else:
            todo.append(submission)
    if rows:
        log(f"{assignment}: {len(rows)} submission(s) already graded (use --force to grade them again)")
    if outdated:
        log(f"{assignment}: {len(outdated)} submission(s) graded against an older version of its tests or points "
            f"({', '.join(outdated[:5])}{', ...' if len(outdated) > 5 else ''}): grading them again")

    def grade_one(slot_submission: tuple[int, Submission]) -> Row:
        slot, submission = slot_submission
        started = time.perf_counter()
        nb, reason = read_submission(submission.notebook)
        if nb is None:
            result, executed = _invalid(source, reason), nbformat.v4.new_notebook(
                cells=[nbformat.v4.new_markdown_cell(f"**Not graded:** {reason}")])
        elif cluster is not None:
            result, executed = cluster.grade(nb, working_files(target, submission))
        else:
            env = {"CUDA_VISIBLE_DEVICES": str(slot % gpus)} if gpus > 1 else None
            result, executed = grade_notebook(
                nb, source, cell_timeout=options.cell_timeout, timeout=options.timeout, env=env,
                memory_mb=options.memory_mb, files=working_files(target, submission), isolate=options.isolate,
                threads=threads, notebook_name=f"{target.notebook}.ipynb", template=template,
                native_code=target.native_code)
        result.seconds = time.perf_counter() - started
        # What the formgrader and the feedback page render must not run the student's markup.
        executed, neutralised = sanitize_notebook(executed)
        if neutralised:
            result.flags.append("markup that could run code shown as text: " + "; ".join(neutralised[:3])
                                + (f" (+{len(neutralised) - 3} more)" if len(neutralised) > 3 else ""))
        decision = None if late is None else late.decide(submission.student, submission.files, submission.notebook,
                                                          result.score, result.max_score)
        if decision is not None:
            result.flags += decision.flags
            result.message = "; ".join(m for m in (result.message, decision.reason) if m)
        row = _row(submission.student, assignment, result)
        if decision is not None:
            row.late_penalty, row.late = decision.penalty, decision.reason or "; ".join(decision.flags)
        executed.metadata[RECORD_KEY] = {"sha256": submission.sha256(), "version": version, "row": row.__dict__}
        # The gradebook first: nbgrader commits a submission in several steps, and only the autograded
        # notebook, written last, marks it as done (a run killed in between grades it again).
        submitted_at = gradebook.save(submission.student, result, timestamp=_handed_in_at(submission), late=decision)
        write_submitted_copy(base, assignment, submission, submitted_at, target.notebook)
        _write_atomic(executed, autograded_path(base, submission.student, assignment, target.notebook))
        if nb is not None and feedback_dir is not None:
            try:
                page = write_feedback(feedback_dir / submission.student / assignment / f"{target.notebook}.html",
                                      executed, source, result, submission.student, assignment)
                copy_exchange_receipt(submission, page.parent)
            except Exception as error:  # feedback is a courtesy; the grade is saved
                row.flags.append(f"feedback not written: {error}")
        return row

    started = time.perf_counter()
    if todo:
        log(f"{assignment}: grading {len(todo)} submission(s) with {workers} worker(s)"
            + (f" on {gpus} GPU(s)" if gpus else ""))
        bar = _progress(len(todo), options.progress)
        with given_or_own(template, target.preload) as template, ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(grade_one, (i, s)): s for i, s in enumerate(todo)}
            for future in as_completed(futures):
                submission = futures[future]
                try:
                    row = future.result()
                except Exception as error:  # one submission never stops the batch
                    if cluster is not None and type(error).__name__ == "ClusterError":  # the cluster stops it
                        raise CourseError(str(error)) from None
                    row = Row(submission.student, assignment, 0.0, 0.0, {}, "grader error", [],
                              message=f"{type(error).__name__}: {error}")
                rows[row.student] = row
                bar.update(1)
                bar.set_postfix_str(f"{row.student}: {row.score:g}/{row.max_score:g} {row.status}", refresh=False)
        bar.close()
    gradebook.close()
    if cluster is not None:
        cluster.close()
    shutil.rmtree(scratch, ignore_errors=True)
    ordered = [rows[k] for k in sorted(rows)]
    if options.csv_path:
        write_csv(Path(options.csv_path), ordered, source)
    log(summary_table(ordered, time.perf_counter() - started))
    return ordered


def autograded_path(base: Path, student: str, assignment: str, notebook: str | None = None) -> Path:
    return base / "autograded" / student / assignment / f"{notebook or assignment}.ipynb"


def working_files(target: Target, submission: Submission) -> dict[str, Path]:
    """The files beside the notebook in its working copy: the student's and the assignment's; where both
    have one, the student's in a dlcourse course, the course's in an nbgrader course (as nbgrader autograde
    overwrites them with the source's)."""
    if target.course_files_win:
        return {**submission.files, **target.files}
    return {**target.files, **submission.files}


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="notebook", disable=not enabled, dynamic_ncols=True, smoothing=0.1)


def cell_columns(source) -> list[tuple[str, float]]:
    return [(column.grade_id, column.max_points) for column in score_columns(source)]


def write_csv(path: Path, rows: list[Row], source) -> None:
    """One row per student: student, assignment, score, max score, points per graded cell, status, flags, seconds."""
    columns = cell_columns(source)
    late_columns = late_header(rows)  # only when a late policy applied
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".part")
    with open(temporary, "w", newline="", encoding="utf-8") as f:
        writer = SafeWriter(f)
        writer.writerow(["student", "assignment", "score", "max score",
                         *[f"{gid} ({points:g})" for gid, points in columns], "status", "flags", "seconds", "message",
                         *late_columns])
        for row in rows:
            writer.writerow([row.student, row.assignment, f"{row.score:g}", f"{row.max_score:g}",
                             *["" if row.cells.get(gid) is None else f"{row.cells[gid]:g}" for gid, _ in columns],
                             row.status, "; ".join(row.flags), f"{row.seconds:.2f}", row.message,
                             *(late_cells(row) if late_columns else [])])
    temporary.replace(path)


def summary_table(rows: list[Row], wall: float) -> str:
    header = ("student", "score", "status", "flags", "seconds")
    lines = format_table(header, [(r.student, f"{r.score:g}/{r.max_score:g}",
                                   r.status + (" (earlier run)" if r.skipped else ""), str(len(r.flags)),
                                   f"{r.seconds:.1f}") for r in rows])
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    graded_now = [r for r in rows if not r.skipped]
    mean = sum(r.score for r in rows) / len(rows) if rows else 0
    lines.append("")
    lines.append(f"{len(rows)} submission(s): " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
                 + f"; mean score {mean:.2f}" + (f"/{rows[0].max_score:g}" if rows else ""))
    if graded_now:
        lines.append(f"graded {len(graded_now)} in {wall:.1f} s ({len(graded_now) / wall:.2f} notebooks/s)")
    flagged = [r for r in rows if r.flags or r.status != "graded"]
    for r in flagged:
        lines.append(f"review {r.student}: {r.status}" + (f": {r.message}" if r.message else "")
                     + (f" [{'; '.join(r.flags[:4])}]" if r.flags else ""))
    return "\n".join(lines)
