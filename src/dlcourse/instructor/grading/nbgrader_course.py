"""A plain nbgrader course folder, graded by `dlcourse grade`. Runs in the grader process.

    cd course/                       # nbgrader_config.py, source/ps1/*.ipynb, submitted/<student>/ps1/
    dlcourse grade ps1               # every notebook of ps1, every student in submitted/

Nothing dlcourse-specific is needed: the course is read as nbgrader reads it. Its config comes from
nbgrader_config.py (and Jupyter's config folders, as nbgrader loads them) through nbgrader's own
classes, so their defaults and checks apply. Each source notebook goes through the preprocessors
`nbgrader generate_assignment` runs before it records an assignment (header and footer, AUTOTEST
expansion, locked cells, solutions cleared with the course's code stub, checksums), in memory: the
course folder gets no file from it, only what `nbgrader autograde` also writes (autograded/, the
gradebook). That version is what autograde puts test cells back from, so it is what the engine grades
against; `release/<assignment>/`, when there, must agree with it (else it is stale and we say so).

Settings that change grades: the per-cell timeout (`Execute.timeout`), the code stub
(`ClearSolutions.code_stub`, `text_stub`) and the gradebook (`CourseDirectory.db_url`) are honoured;
any other setting of a class that takes part in grading is named, in one line, before grading starts.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from dlcourse.instructor.cells import nbgrader_metadata
from dlcourse.instructor.course import CourseError
from dlcourse.instructor.grading.autotests import AutotestError, expand_autotests
from dlcourse.instructor.grading.batch import BatchOptions, Row, Target, db_url_for, grade_target
from dlcourse.instructor.grading.gradebook import GradebookWriter
from dlcourse.instructor.grading.template import Template, given_or_own, preload_for
from dlcourse.instructor.spreadsheet import SafeWriter

CONFIG_FILE = "nbgrader_config.py"
# Classes of nbgrader whose settings decide what a notebook scores (autograde's and generate_assignment's
# preprocessors, the late-penalty plugin). A setting of any other class (the exchange, the formgrader,
# logging) changes no grade.
GRADING_CLASSES = (
    "Autograde", "Execute", "ExecutePreprocessor", "NotebookClient", "ClearSolutions", "ClearHiddenTests",
    "ClearMarkScheme", "OverwriteCells", "OverwriteKernelspec", "LockCells", "IncludeHeaderFooter",
    "InstantiateTests", "IgnorePattern", "LimitOutput", "SaveAutoGrades", "AssignLatePenalties",
    "LateSubmissionPlugin", "GetGrades", "ComputeChecksums", "DeduplicateIds", "ClearOutput",
    "CheckCellMetadata", "GenerateAssignment", "BaseConverter",
)
# The course folder's settings that decide which of a student's files reach the kernel.
GRADING_COURSE_SETTINGS = ("ignore", "include", "max_file_size")
HONOURED = {
    ("Execute", "timeout"): "the per-cell time limit",
    ("ClearSolutions", "code_stub"): "the code stub",
    ("ClearSolutions", "text_stub"): "the written-answer stub",
    ("IncludeHeaderFooter", "header"): "the header notebook",
    ("IncludeHeaderFooter", "footer"): "the footer notebook",
    ("InstantiateTests", "autotest_filename"): "the AUTOTEST templates",
    ("Autograde", "create_student"): "students are created as they are graded",
}


@dataclass
class NbgraderCourse:
    root: Path
    config: object  # traitlets Config
    coursedir: object  # nbgrader.coursedir.CourseDirectory

    def folder(self, step: str) -> Path:
        """source/, release/, submitted/, autograded/ or feedback/, as the config names them."""
        return self.root / getattr(self.coursedir, f"{step}_directory")

    @property
    def db_url(self) -> str:
        return self.coursedir.db_url

    @property
    def cell_timeout(self) -> float | None:
        from nbgrader.preprocessors import Execute

        timeout = Execute(config=self.config).timeout
        return None if timeout is None or timeout < 0 else float(timeout)

    @property
    def code_stub(self) -> dict:
        from nbgrader.preprocessors import ClearSolutions

        return dict(ClearSolutions(config=self.config).code_stub)

    def notebooks(self, assignment: str) -> list[Path]:
        folder = self.folder("source") / assignment
        return sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith("."))


def load_nbgrader_course(folder: Path) -> NbgraderCourse:
    """The course in `folder`, its config loaded as nbgrader loads it (Jupyter's config folders, then the
    course's own nbgrader_config.py, which wins)."""
    from jupyter_core.paths import jupyter_config_path
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config
    from traitlets.config.loader import ConfigFileNotFound, PyFileConfigLoader

    folder = Path(folder).resolve()
    config = Config()
    for place in [*reversed(jupyter_config_path()), str(folder)]:
        try:
            config.merge(PyFileConfigLoader(CONFIG_FILE, path=place).load_config())
        except ConfigFileNotFound:
            continue
        except Exception as error:  # a config that does not run is the instructor's to fix
            raise CourseError(f"{Path(place) / CONFIG_FILE}: cannot be read ({type(error).__name__}: {error})") from None
    root = Path(config.CourseDirectory.root) if "root" in config.CourseDirectory else folder
    config.CourseDirectory.root = str(root if root.is_absolute() else folder / root)
    try:
        coursedir = CourseDirectory(config=config)
    except Exception as error:
        raise CourseError(f"{folder / CONFIG_FILE}: {error}") from None
    return NbgraderCourse(root=Path(coursedir.root), config=config, coursedir=coursedir)


def unhonoured(config) -> list[str]:
    """Settings in the config that change grades in nbgrader and that dlcourse grade does not apply."""
    out = []
    for section in GRADING_CLASSES:
        if section not in config:
            continue
        for key in sorted(config[section]):
            if (section, key) not in HONOURED:
                out.append(f"{section}.{key}")
    return out + [f"CourseDirectory.{key}" for key in GRADING_COURSE_SETTINGS if key in config.get("CourseDirectory", {})]


def graded_version(course: NbgraderCourse, path: Path) -> NotebookNode:
    """The notebook as `nbgrader generate_assignment` records it in the gradebook (and as autograde puts
    its test and locked cells back): header and footer, AUTOTEST expanded, cells locked, solutions cleared
    with the course's stubs, outputs cleared, checksums. Nothing is written into the course."""
    from nbgrader.preprocessors import (CheckCellMetadata, ClearOutput, ClearSolutions, ComputeChecksums,
                                        IncludeHeaderFooter, InstantiateTests, LockCells)

    nb = nbformat.read(str(path), as_version=nbformat.NO_CONVERT)
    if nb.nbformat < 4:
        nb = nbformat.convert(nb, 4)
    language = (nb.metadata.get("kernelspec", {}).get("language")
                or nb.metadata.get("language_info", {}).get("name") or "python")
    if language.lower() != "python":
        raise CourseError(f"{path}: a {language} notebook; dlcourse grade runs Python notebooks only "
                          "(grade this assignment with nbgrader autograde)")
    resources = {"metadata": {"path": str(path.parent), "name": path.stem},
                 "nbgrader": {"notebook": path.stem, "assignment": path.parent.name, "db_url": course.db_url}}
    header_footer = IncludeHeaderFooter(config=course.config)
    for side in ("header", "footer"):  # nbgrader reads them relative to the course folder, its working folder
        value = getattr(header_footer, side)
        if value and not os.path.isabs(value):
            setattr(header_footer, side, str(course.root / value))
    autotests_file = InstantiateTests(config=course.config).autotest_filename
    later_steps = [LockCells(config=course.config), ClearSolutions(config=course.config),
                   ClearOutput(config=course.config), CheckCellMetadata(config=course.config),
                   ComputeChecksums(config=course.config)]
    try:
        nb, resources = header_footer.preprocess(nb, resources)
        # generate_assignment's next step, InstantiateTests, as the grader expands a dlcourse source's
        nb = expand_autotests(nb, path.parent, course.root, filename=autotests_file)
        for step in later_steps:
            nb, resources = step.preprocess(nb, resources)
    except AutotestError as error:
        raise CourseError(f"{path}: {error}") from None
    except Exception as error:
        raise CourseError(f"{path}: nbgrader cannot generate the assignment from it "
                          f"({type(error).__name__}: {error}); run `nbgrader generate_assignment` to see why") from None
    return nb


def stale_release(course: NbgraderCourse, assignment: str, notebook: str, graded: NotebookNode) -> str | None:
    """Why release/<assignment>/<notebook>.ipynb no longer matches the source (students got an older
    version), or None when it matches or there is no release folder."""
    released = course.folder("release") / assignment / f"{notebook}.ipynb"
    if not released.is_file():
        return None
    try:
        handed_out = nbformat.read(str(released), as_version=4)
    except Exception as error:
        return f"{released} cannot be read ({error})"
    checksums = lambda nb: {m["grade_id"]: m.get("checksum") for m in map(nbgrader_metadata, nb.cells)  # noqa: E731
                            if m.get("grade_id") and (m.get("solution") or m.get("locked")) and not m.get("grade")}
    ours, theirs = checksums(graded), checksums(handed_out)
    changed = sorted(gid for gid in ours.keys() & theirs.keys() if ours[gid] != theirs[gid])
    missing = sorted(ours.keys() - theirs.keys())
    if changed or missing:
        return (f"{released.relative_to(course.root)} differs from the source (cells "
                f"{', '.join((changed + missing)[:5])}): students may have an older version; grading against the "
                "source, as nbgrader autograde does")
    return None


def course_files(course: NbgraderCourse, assignment: str) -> dict[str, Path]:
    """The assignment's other files in source/ (data, images): nbgrader autograde copies them over the
    student's own copies, so a student cannot change the data a test reads."""
    folder = course.folder("source") / assignment
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*"))
            if p.is_file() and p.suffix != ".ipynb" and ".ipynb_checkpoints" not in p.parts
            and not p.name.startswith(".")}


def targets(course: NbgraderCourse, assignment: str, log=print) -> list[Target]:
    """Every notebook of the assignment, ready to grade."""
    paths = course.notebooks(assignment)
    if not paths:
        known = sorted(p.name for p in course.folder("source").glob("*") if p.is_dir() and course.notebooks(p.name))
        raise CourseError(f"no assignment {assignment} in the nbgrader course {course.root}: "
                          f"{course.folder('source').name}/{assignment}/ has no notebooks "
                          f"(its assignments: {', '.join(known) or 'none'})")
    files = course_files(course, assignment)
    out = []
    for path in paths:
        graded = graded_version(course, path)
        warning = stale_release(course, assignment, path.stem, graded)
        if warning:
            log(f"{assignment}: {warning}")
        code = "\n".join(c.source for c in graded.cells if c.cell_type == "code")
        out.append(Target(assignment=assignment, notebook=path.stem, source=graded, base=course.root, files=files,
                          course_files_win=True, late_root=None, preload=preload_for(code), write_source=False,
                          code_stub=course.code_stub, db_url=course.db_url))
    return out


def grade_assignment(course: NbgraderCourse, assignment: str, submissions: Path | None, options: BatchOptions,
                     log=print, template: Template | None = None) -> list[Row]:
    """Grade every notebook of `assignment` for every student; one row per student, scores added up over
    the notebooks (cells keyed notebook/grade_id). Writes the CSV when options ask for one."""
    cannot = unhonoured(course.config)
    if cannot:
        log(f"{CONFIG_FILE}: dlcourse grade cannot honour {', '.join(cannot)}; grading as if unset")
    jobs = targets(course, assignment, log)
    submissions = Path(submissions) if submissions else course.folder("submitted")
    csv_path, options = options.csv_path, copy.copy(options)
    options.csv_path = None
    # Every notebook registered before the first grade is saved: nbgrader gives a submission a
    # notebook entry only for the notebooks the assignment has when the submission is created.
    gradebooks = [GradebookWriter(db_url_for(job, options), assignment, job.notebook, job.source,
                                  code_stub=job.code_stub) for job in jobs]
    preload = sorted({name for job in jobs for name in job.preload or []})
    rows: dict[str, Row] = {}
    try:
        with given_or_own(template, preload) as template:
            for job, gradebook in zip(jobs, gradebooks):
                log(f"{assignment}/{job.notebook}:")
                for row in grade_target(job, submissions, options, log, template, gradebook=gradebook):
                    total = rows.setdefault(row.student, Row(row.student, assignment, 0.0, 0.0, {}, "graded"))
                    _add(total, row, job.notebook)
    finally:
        for gradebook in gradebooks:
            gradebook.close()
    ordered = [rows[k] for k in sorted(rows)]
    if csv_path:
        write_csv(Path(csv_path), ordered)
    return ordered


def _add(total: Row, row: Row, notebook: str) -> None:
    total.score += row.score
    total.max_score += row.max_score
    total.cells.update({f"{notebook}/{gid}": points for gid, points in row.cells.items()})
    if row.status != "graded":
        total.status = row.status if total.status == "graded" else total.status
    total.flags += [f"{notebook}: {flag}" for flag in row.flags]
    total.seconds += row.seconds
    total.message = "; ".join(m for m in (total.message, f"{notebook}: {row.message}" if row.message else "") if m)


def write_csv(path: Path, rows: list[Row]) -> None:
    """One row per student: score and max score over all notebooks, then points per graded cell."""
    columns = sorted({gid for row in rows for gid in row.cells})
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".part")
    with open(temporary, "w", newline="", encoding="utf-8") as f:
        writer = SafeWriter(f)
        writer.writerow(["student", "assignment", "score", "max score", *columns, "status", "flags", "seconds",
                         "message"])
        for row in rows:
            writer.writerow([row.student, row.assignment, f"{row.score:g}", f"{row.max_score:g}",
                             *["" if row.cells.get(c) is None else f"{row.cells[c]:g}" for c in columns],
                             row.status, "; ".join(row.flags), f"{row.seconds:.2f}", row.message])
    temporary.replace(path)
