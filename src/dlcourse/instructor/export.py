"""`dlcourse export`: grades from nbgrader's gradebook as a file an LMS imports as it is. Runs on the
instructor's machine; reads the gradebook through nbgrader's API, never changes it.

- ``canvas``: Canvas's gradebook import CSV: Student, ID, SIS User ID, SIS Login ID, Section, one
  column per assignment, and a "Points Possible" row under the header. With a Canvas roster (the
  gradebook export, Grades > Export) the identity columns are copied from it, and an assignment
  column the export already has (``00_setup (12345)``) keeps its name, so Canvas updates that
  assignment instead of creating one.
- ``moodle``: Moodle's grade import CSV (Grades > Import > CSV file): First name, Last name, ID
  number, Email address, one column per assignment; map "Email address" or "ID number" to the user
  and each column to its grade item on the import page.
- ``csv``: student, names, email, one column per assignment (its points in the header), total.

Students are the roster's (`--roster`, the LMS's own export, or a CSV with a ``student`` column), in
its order; without one, the gradebook's, whose ids came from the LMS zip names (``--submissions``
reads those names again: Canvas's user ids, Moodle's full names). A student without a submission is
blank, never 0; a student in the gradebook but not in the roster is reported, not dropped silently.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from dlcourse.instructor.course import CourseError
from dlcourse.instructor.spreadsheet import SafeWriter

FORMATS = ("canvas", "moodle", "csv")
CANVAS_IDENTITY = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
MOODLE_IDENTITY = ("First name", "Last name", "ID number", "Email address")
POINTS_POSSIBLE = "    Points Possible"  # as Canvas writes it (leading spaces included)
CANVAS_ZIP_NAME = re.compile(r"^(?P<name>[^_/]+)_(?:late_)?(?P<user>\d+)_\d+_.+$")
MOODLE_ZIP_FOLDER = re.compile(r"^(?P<name>[^/]+?)_\d+_assignsubmission_file_?(?:/|$)")


@dataclass
class Grade:
    score: float | None  # None: no submission
    max_score: float
    needs_manual: bool = False


@dataclass
class Student:
    """One row: the fields an LMS identifies a student by, and the keys the gradebook id may match."""

    fields: dict[str, str]
    keys: set[str] = field(default_factory=set)
    gradebook_id: str | None = None


@dataclass
class Export:
    assignments: list[str]
    max_scores: dict[str, float]
    students: list[Student]
    grades: dict[str, dict[str, Grade]]  # gradebook id -> assignment -> grade
    not_in_roster: list[str] = field(default_factory=list)
    roster_kind: str | None = None
    roster_columns: list[str] = field(default_factory=list)

    def grade(self, student: Student, assignment: str) -> Grade:
        empty = Grade(None, self.max_scores[assignment])
        return self.grades.get(student.gradebook_id or "", {}).get(assignment, empty)

    def missing(self) -> dict[str, list[str]]:
        """assignment -> roster students without a submission (blank in the file)."""
        return {a: [_label(s) for s in self.students if self.grade(s, a).score is None] for a in self.assignments}

    def needs_manual(self) -> dict[str, list[str]]:
        return {a: [_label(s) for s in self.students if self.grade(s, a).needs_manual] for a in self.assignments}


def _label(student: Student) -> str:
    f = student.fields
    return (student.gradebook_id or f.get("Student") or " ".join(x for x in (f.get("First name"), f.get("Last name")) if x)
            or f.get("student") or "?")


def _norm(text: str) -> set[str]:
    text = (text or "").strip().lower()
    if not text:
        return set()
    return {text, re.sub(r"[^a-z0-9]", "", text), re.sub(r"[^a-z0-9._@-]+", "_", text).strip("_.")} - {""}


def read_gradebook(db_url: str, assignments: list[str]) -> tuple[dict[str, dict[str, Grade]], dict[str, float], dict]:
    """(grades by student and assignment, points possible, the gradebook's student records)."""
    import warnings

    from nbgrader.api import Gradebook, MissingEntry

    # nbgrader's own reads warn about its SQLAlchemy session; nothing for us to act on
    warnings.filterwarnings("ignore", message=r"Object of type <Submitted")
    grades: dict[str, dict[str, Grade]] = {}
    max_scores: dict[str, float] = {}
    people: dict[str, dict[str, str]] = {}
    with Gradebook(db_url) as gb:
        for name in assignments:
            try:
                assignment = gb.find_assignment(name)
            except MissingEntry:
                raise CourseError(f"{name} is not in the gradebook ({db_url}): grade it first (dlcourse grade {name} ...)")
            max_scores[name] = float(assignment.max_score)
            for submission in assignment.submissions:
                # the late penalty (grading.late) comes off, as nbgrader export does it
                score = max(0.0, float(submission.score) - float(submission.late_submission_penalty or 0.0))
                grades.setdefault(submission.student.id, {})[name] = Grade(
                    score, float(submission.max_score), bool(submission.needs_manual_grade))
        for student in gb.students:
            people[student.id] = {"first": student.first_name or "", "last": student.last_name or "",
                                  "email": student.email or "", "lms_user_id": student.lms_user_id or ""}
    return grades, max_scores, people


def gradebook_assignments(db_url: str, order: list[str]) -> list[str]:
    """The assignments the gradebook has, in course order (`order`), then any others."""
    from nbgrader.api import Gradebook

    if db_url.startswith("sqlite:///") and not Path(db_url[len("sqlite:///"):]).exists():
        raise CourseError(f"no gradebook at {db_url[len('sqlite:///'):]}: grade first (dlcourse grade NN_name ...) "
                          "or pass --db")
    with Gradebook(db_url) as gb:
        names = [a.name for a in gb.assignments]
    if not names:
        raise CourseError(f"the gradebook ({db_url}) has no assignment yet: grade first (dlcourse grade NN_name ...)")
    return [a for a in order if a in names] + sorted(set(names) - set(order))


def read_roster(path: Path) -> tuple[str, list[str], list[Student]]:
    """(kind, columns, students) of an LMS export: Canvas's gradebook export, Moodle's grade export,
    or a CSV with a `student` column."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as error:
        raise CourseError(f"{path}: cannot read the roster ({error.strerror})") from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise CourseError(f"{path}: the roster is empty")
    header = [h.strip() for h in rows[0]]
    if {"Student", "ID"} <= set(header) or "SIS Login ID" in header:
        kind, keys = "canvas", ("ID", "SIS User ID", "SIS Login ID", "Integration ID")
    elif {"First name", "Last name"} <= set(header):
        kind, keys = "moodle", ("ID number", "Email address", "Username")
    elif "student" in [h.lower() for h in header]:
        kind, keys = "csv", ("student", "email", "id")
    else:
        raise CourseError(f"{path}: not a roster dlcourse knows: expected Canvas's gradebook export (Student, ID, "
                          "SIS User ID, ...), Moodle's grade export (First name, Last name, ...) or a CSV with a "
                          "'student' column")
    students = []
    for row in rows[1:]:
        record = {h: (row[i].strip() if i < len(row) else "") for i, h in enumerate(header)}
        first = next(iter(record.values()), "")
        if not any(record.values()) or first.strip() in ("Points Possible", "Manual Posting", "Read Only") \
                or first.startswith("Student, Test"):
            continue  # Canvas's header rows and its test student
        student = Student(fields=record)
        lowered = {k.lower(): v for k, v in record.items()}
        for key in keys:
            student.keys |= _norm(record.get(key, "") or lowered.get(key.lower(), ""))
        for key in ("SIS Login ID", "Email address", "email"):
            value = record.get(key, "")
            if "@" in value:
                student.keys |= _norm(value.split("@")[0])
        if kind == "canvas" and record.get("Student"):
            last, _, first_name = record["Student"].partition(",")
            student.keys |= _norm(last + first_name)  # Canvas's download names: lastfirst
            student.keys |= _norm(f"{first_name} {last}")
        if kind == "moodle":
            student.keys |= _norm(f"{record.get('First name', '')} {record.get('Last name', '')}")
        students.append(student)
    return kind, header, students


def names_from_zip(path: Path) -> dict[str, dict[str, str]]:
    """What an LMS zip's file names tell about each student (keyed by the gradebook id the grader gave
    them): Canvas's user id (``doejane_12345_67890_hw.ipynb``), Moodle's full name."""
    from dlcourse.instructor.grading.submissions import student_id

    found: dict[str, dict[str, str]] = {}
    try:
        names = zipfile.ZipFile(path).namelist()
    except (OSError, zipfile.BadZipFile) as error:
        raise CourseError(f"{path}: not a zip of submissions ({error})") from None
    for name in names:
        canvas = CANVAS_ZIP_NAME.match(Path(name).name)
        if canvas:
            found.setdefault(student_id(canvas["name"]), {})["ID"] = canvas["user"]
            continue
        moodle = MOODLE_ZIP_FOLDER.match(name)
        if moodle:
            found.setdefault(student_id(moodle["name"]), {})["name"] = moodle["name"]
    return found


def build_export(db_url: str, assignments: list[str], roster: Path | None = None,
                 submissions: Path | None = None) -> Export:
    grades, max_scores, people = read_gradebook(db_url, assignments)
    zip_names = names_from_zip(submissions) if submissions else {}
    export = Export(assignments=assignments, max_scores=max_scores, students=[], grades=grades)
    graded = sorted(grades)
    if roster is None:
        for gid in sorted(set(graded)):
            person, extra = people.get(gid, {}), zip_names.get(gid, {})
            first, last = person.get("first", ""), person.get("last", "")
            if not (first or last) and extra.get("name"):
                first, _, last = extra["name"].partition(" ")
            export.students.append(Student(
                fields={"first": first, "last": last, "email": person.get("email", ""),
                        "lms_user_id": person.get("lms_user_id") or extra.get("ID", "")},
                gradebook_id=gid))
        return export
    export.roster_kind, export.roster_columns, export.students = read_roster(roster)
    claimed: dict[int, str] = {}
    for gid in graded:
        keys = _norm(gid)
        if zip_names.get(gid, {}).get("ID"):
            keys |= _norm(zip_names[gid]["ID"])
        if zip_names.get(gid, {}).get("name"):
            keys |= _norm(zip_names[gid]["name"])
        if people.get(gid, {}).get("email"):
            keys |= _norm(people[gid]["email"])
        matches = [i for i, s in enumerate(export.students) if s.keys & keys and i not in claimed]
        if len(matches) == 1:
            claimed[matches[0]] = gid
            export.students[matches[0]].gradebook_id = gid
        else:
            export.not_in_roster.append(gid + (" (matches several roster rows)" if matches else ""))
    return export


def _points(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _column(export: Export, assignment: str, fallback: str) -> str:
    """The roster's own column for `assignment` when it has one (Canvas: 'NAME (id)'; Moodle: 'Assignment: NAME (Real)')."""
    for column in export.roster_columns:
        if column == assignment or column.startswith(assignment + " (") or column.startswith(f"Assignment: {assignment} ("):
            return column
    return fallback


def write_export(export: Export, kind: str, path: Path) -> Path:
    if kind not in FORMATS:
        raise CourseError(f"unknown export format {kind!r}: use one of {', '.join(FORMATS)}")
    rows: list[list[str]] = []
    a = export.assignments
    if kind == "canvas":
        columns = [_column(export, name, name) for name in a]
        rows.append([*CANVAS_IDENTITY, *columns])
        rows.append([POINTS_POSSIBLE, "", "", "", "", *[_points(export.max_scores[n]) for n in a]])
        for s in export.students:
            f = s.fields
            if export.roster_kind == "canvas":
                identity = [f.get(c, "") for c in CANVAS_IDENTITY]
            else:
                name = (f"{f.get('last', '')}, {f.get('first', '')}" if f.get("last") else
                        f.get("Student") or " ".join(x for x in (f.get("First name"), f.get("Last name")) if x)
                        or s.gradebook_id or "")
                login = f.get("Email address") or f.get("email") or s.gradebook_id or ""
                identity = [name, f.get("lms_user_id", ""), f.get("ID number", ""), login, ""]
            rows.append([*identity, *[_points(export.grade(s, n).score) for n in a]])
    elif kind == "moodle":
        columns = [_column(export, name, name) for name in a]
        rows.append([*MOODLE_IDENTITY, *columns])
        for s in export.students:
            f = s.fields
            if export.roster_kind == "moodle":
                identity = [f.get(c, "") for c in MOODLE_IDENTITY]
            elif export.roster_kind == "canvas":
                last, _, first = f.get("Student", "").partition(",")
                identity = [first.strip(), last.strip(), f.get("SIS User ID", ""), f.get("SIS Login ID", "")]
            else:
                identity = [f.get("first", "") or f.get("First name", ""), f.get("last", ""),
                            s.gradebook_id or f.get("student", ""), f.get("email", "")]
            rows.append([*identity, *[_points(export.grade(s, n).score) for n in a]])
    else:
        rows.append(["student", "first name", "last name", "email",
                     *[f"{n} ({export.max_scores[n]:g})" for n in a], f"total ({sum(export.max_scores.values()):g})"])
        for s in export.students:
            f = s.fields
            scores = [export.grade(s, n).score for n in a]
            total = sum(x for x in scores if x is not None) if any(x is not None for x in scores) else None
            first = f.get("first") or f.get("First name") or f.get("Student", "").partition(",")[2].strip()
            last = f.get("last") or f.get("Last name") or f.get("Student", "").partition(",")[0].strip()
            email = f.get("email") or f.get("Email address") or f.get("SIS Login ID", "")
            rows.append([s.gradebook_id or f.get("student", ""), first, last, email, *map(_points, scores), _points(total)])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".part")
    with open(temporary, "w", newline="", encoding="utf-8") as f:
        SafeWriter(f).writerows(rows)
    temporary.replace(path)
    return path


def summary(export: Export, path: Path, kind: str) -> list[str]:
    """What an instructor must know before importing: blanks, grades still waiting for a human, and
    gradebook students the roster lacks."""
    lines = [f"wrote {path} ({kind}): {len(export.students)} student(s), {len(export.assignments)} assignment(s)"]
    for assignment, names in export.missing().items():
        if names:
            lines.append(f"{assignment}: no submission from {len(names)} student(s), left blank: {', '.join(names[:10])}"
                         + (" ..." if len(names) > 10 else ""))
    for assignment, names in export.needs_manual().items():
        if names:
            lines.append(f"{assignment}: {len(names)} submission(s) still need grading by hand (the file has the "
                         f"autograded part): {', '.join(names[:10])}")
    if export.not_in_roster:
        lines.append(f"not in the roster, so not in the file: {len(export.not_in_roster)} student(s) of the gradebook: "
                     + ", ".join(export.not_in_roster))
    if export.roster_kind is None and kind == "canvas":
        lines.append("no --roster: Canvas matches rows by ID or SIS Login ID; pass Canvas's gradebook export as "
                     "--roster (or --submissions with the Canvas zip) so every row carries the student's ID")
    return lines
