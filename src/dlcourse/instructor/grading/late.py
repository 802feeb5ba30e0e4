"""Late work: when each submission came in, its due date (extensions included), and the penalty the
assignment's policy gives. Runs in the grader process (`dlcourse grade`), once per submission, after
grading and before the scores are saved.

The course config says it, per assignment, in pyproject.toml::

    [tool.dlcourse.late]
    extensions = "autograder/extensions.csv"   # student,assignment and days, hours or due

    [tool.dlcourse.late."01_backprop"]
    due = 2026-10-01T23:59:00+00:00   # a TOML date-time or a string; no zone: UTC
    policy = "per_day"                # per_day, per_hour, reject or none
    penalty = 10                      # per day (hour) started, in percent of the points (unit = "points": points)
    cap = 50                          # the most it takes, same unit (default: everything)
    grace_minutes = 0                 # minutes after the due date that still count as on time

When a submission came in, first found wins: the submissions CSV (`--submission-times`, columns
``student`` and ``submitted_at``/``timestamp``/``submitted``/``time``), nbgrader's ``timestamp.txt``
in the student's folder, and Canvas's ``late`` mark in an LMS zip's file names (late, no time: one
period's penalty, flagged). The penalty is stored where nbgrader keeps it, the submitted notebook's
``late_submission_penalty`` (points, never more than the score), with the due date on the assignment,
the extension on the submission and the time on the submission, so `nbgrader export`, the formgrader
and `dlcourse export` agree; the reason goes into the grade CSV and the feedback page.

Nothing is ever dropped: a submission without a time is graded without a penalty and flagged "no
submission time"; a time that cannot be read, a due date missing from the config, an extension for a
student who did not submit: each a clear message, and the submission graded without a penalty, flagged.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from dlcourse.instructor.course import CourseError

POLICIES = ("per_day", "per_hour", "reject", "none")
PERIOD = {"per_day": 86400.0, "per_hour": 3600.0}
TIME_COLUMNS = ("submitted_at", "timestamp", "submitted", "submission time", "time")
CANVAS_LATE = re.compile(r"^[^_]+_late_\d+_\d+_")
NO_TIME = "no submission time"


@dataclass(frozen=True)
class LatePolicy:
    assignment: str
    due: dt.datetime | None  # aware, UTC; None: missing from the config
    policy: str = "none"
    penalty: float = 0.0
    cap: float | None = None
    unit: str = "percent"  # of the assignment's points, or "points"
    grace: dt.timedelta = dt.timedelta(0)

    def describe(self) -> str:
        if self.policy == "reject":
            return "no late work accepted"
        if self.policy == "none":
            return "no late penalty"
        per = "day" if self.policy == "per_day" else "hour"
        amount = f"{self.penalty:g}%" if self.unit == "percent" else f"{self.penalty:g} points"
        cap = "" if self.cap is None else (f", at most {self.cap:g}%" if self.unit == "percent"
                                           else f", at most {self.cap:g} points")
        return f"{amount} per {per} started{cap}"


@dataclass
class LateDecision:
    """What late-work policy says about one submission."""

    timestamp: dt.datetime | None  # when it came in (aware, UTC); None: not known
    source: str = ""  # where the time came from
    due: dt.datetime | None = None  # the student's due date, extension included
    extension: dt.timedelta | None = None
    seconds_late: float = 0.0
    penalty: float = 0.0  # points taken off (never more than the score)
    rejected: bool = False
    reason: str = ""  # for the CSV and the feedback page; empty when on time
    flags: list[str] = field(default_factory=list)


def parse_time(value) -> dt.datetime:
    """A date-time from TOML, a CSV or timestamp.txt, as an aware UTC datetime (no zone: UTC).
    Raises ValueError with the text when it cannot be read."""
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime.combine(value, dt.time(23, 59, 59))
    else:
        text = str(value).strip()
        if not text:
            raise ValueError("empty")
        from nbgrader.utils import parse_utc  # how nbgrader reads its own timestamp.txt

        try:
            moment = parse_utc(text).replace(tzinfo=dt.timezone.utc)
        except Exception:
            raise ValueError(text) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc)


def _when(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _duration(seconds: float) -> str:
    minutes = int(math.ceil(seconds / 60))
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{days} day{'s' * (days != 1)}" if days else "", f"{hours} h" if hours else "",
             f"{minutes} min" if minutes and not days else ""]
    return " ".join(p for p in parts if p) or "under a minute"


def read_config(root: Path) -> dict:
    where = root / "pyproject.toml"
    try:
        with open(where, "rb") as f:
            late = tomllib.load(f).get("tool", {}).get("dlcourse", {}).get("late", {})
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as error:
        raise CourseError(f"{where}: not valid TOML ({error})") from None
    if not isinstance(late, dict):
        raise CourseError(f"{where}: [tool.dlcourse.late] must be a table")
    return late


def policy_from_config(config: dict, assignment: str, where: str = "pyproject.toml") -> LatePolicy:
    """The assignment's policy from [tool.dlcourse.late."NN"]; a bad value is a CourseError naming it."""
    table = config.get(assignment)
    if not isinstance(table, dict) or "due" not in table:
        return LatePolicy(assignment, None)
    name = f'{where}: [tool.dlcourse.late."{assignment}"]'
    try:
        due = parse_time(table["due"])
    except ValueError:
        raise CourseError(f"{name} due = {table['due']!r} is not a date-time; write e.g. "
                          "due = 2026-10-01T23:59:00+00:00") from None
    policy = table.get("policy", "per_day")
    if policy not in POLICIES:
        raise CourseError(f"{name} policy = {policy!r}: use one of {', '.join(POLICIES)}")
    unit = table.get("unit", "percent")
    if unit not in ("percent", "points"):
        raise CourseError(f"{name} unit = {unit!r}: use 'percent' (of the assignment's points) or 'points'")
    numbers = {}
    for key in ("penalty", "cap", "grace_minutes"):
        value = table.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise CourseError(f"{name} {key} = {value!r} is not a number of at least 0")
        numbers[key] = value
    if policy in PERIOD and not numbers["penalty"]:
        raise CourseError(f"{name} policy = {policy!r} needs penalty = N (per {policy[4:]} started)")
    return LatePolicy(assignment, due, policy, float(numbers["penalty"] or 0.0),
                      None if numbers["cap"] is None else float(numbers["cap"]), unit,
                      dt.timedelta(minutes=numbers["grace_minutes"] or 0))


def read_extensions(path: Path, assignment: str, due: dt.datetime | None) -> tuple[dict[str, dt.timedelta], list[str]]:
    """student -> extension of `assignment` from a CSV (columns student, assignment, and days, hours or
    due; a row without an assignment applies to every one); and the rows that could not be used."""
    extensions: dict[str, dt.timedelta] = {}
    problems: list[str] = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except OSError as error:
        raise CourseError(f"{path}: cannot read the extensions CSV ({error.strerror or error})") from None
    for number, row in enumerate(rows, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        if not row.get("student"):
            raise CourseError(f"{path}: needs a 'student' column (and assignment, and days, hours or due)")
        if row.get("assignment") not in ("", None, assignment):
            continue
        try:
            if row.get("due"):
                if due is None:
                    problems.append(f"{path} line {number}: an extension to {row['due']} for {row['student']}, "
                                    f"but {assignment} has no due date")
                    continue
                extension = parse_time(row["due"]) - due
            else:
                extension = dt.timedelta(days=float(row.get("days") or 0), hours=float(row.get("hours") or 0))
        except ValueError:
            problems.append(f"{path} line {number}: the extension for {row['student']} cannot be read "
                            "(days, hours: numbers; due: a date-time)")
            continue
        extensions[row["student"]] = max(extension, dt.timedelta(0))
    return extensions, problems


def read_times(path: Path) -> dict[str, str]:
    """student -> the submission time as written in a submissions CSV."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = {(k or "").strip().lower(): k for k in reader.fieldnames or []}
            rows = list(reader)
    except OSError as error:
        raise CourseError(f"{path}: cannot read the submissions CSV ({error.strerror or error})") from None
    student = header.get("student") or header.get("student_id") or header.get("id")
    column = next((header[c] for c in TIME_COLUMNS if c in header), None)
    if student is None or column is None:
        raise CourseError(f"{path}: the submissions CSV needs a 'student' column and a time column "
                          f"({', '.join(TIME_COLUMNS)})")
    return {row[student].strip(): (row[column] or "").strip() for row in rows if (row.get(student) or "").strip()}


class LateWork:
    """One assignment's late-work policy for one batch: config, extensions and the times CSV read once."""

    def __init__(self, policy: LatePolicy, extensions: dict[str, dt.timedelta] | None = None,
                 times: dict[str, str] | None = None, notes: list[str] | None = None):
        self.policy = policy
        self.extensions = extensions or {}
        self.times = times or {}
        self.notes = list(notes or [])  # messages for the instructor, said once per batch

    @classmethod
    def load(cls, root: Path, assignment: str, extensions: Path | None = None,
             times: Path | None = None) -> "LateWork | None":
        """The batch's late work, or None when the course says nothing about late work and no times are given."""
        config = read_config(Path(root))
        if not config and extensions is None and times is None:
            return None
        policy = policy_from_config(config, assignment, str(Path(root) / "pyproject.toml"))
        notes = []
        if policy.due is None:
            notes.append(f'{assignment} has no due date in [tool.dlcourse.late."{assignment}"] of pyproject.toml: '
                         "graded without a late penalty, each submission flagged")
        extensions_path = extensions or (Path(root) / config["extensions"] if config.get("extensions") else None)
        granted, problems = ({}, [])
        if extensions_path is not None:
            granted, problems = read_extensions(Path(extensions_path), assignment, policy.due)
        return cls(policy, granted, read_times(Path(times)) if times else {}, notes + problems)

    def check_students(self, students: list[str]) -> None:
        """A message for each extension or time given to a student who is not in the batch."""
        known = set(students)
        for student in sorted(set(self.extensions) - known):
            self.notes.append(f"an extension of {self.policy.assignment} for {student!r}, who has no submission "
                              "in this batch (a typo in the extensions CSV?)")
        for student in sorted(set(self.times) - known):
            self.notes.append(f"a submission time for {student!r}, who has no submission in this batch")

    def submitted_at(self, student: str, files: dict[str, Path], notebook: Path | None) -> tuple[object, str]:
        """The raw time of a submission and where it came from: (text or datetime, source), or (None, mark)."""
        if student in self.times and self.times[student]:
            return self.times[student], "the submissions CSV"
        stamp = files.get("timestamp.txt")
        if stamp is not None:
            try:
                return stamp.read_text(encoding="utf-8", errors="replace").strip(), "timestamp.txt"
            except OSError:
                return "", "timestamp.txt"
        if notebook is not None and CANVAS_LATE.match(notebook.name):
            return None, "late mark"
        return None, ""

    def reapply(self, row, submission, gradebook) -> bool:
        """Decide again for a submission graded in an earlier run (an extension granted since, a changed
        policy): the row and the gradebook get the new penalty, reason and flags; the scores stay."""
        decision = self.decide(row.student, submission.files, submission.notebook, row.score, row.max_score)
        late = decision.reason or "; ".join(decision.flags)
        if row.late_penalty == decision.penalty and row.late == late:
            return False
        old_reason = row.late if row.late and not is_late_flag(row.late) else ""
        row.flags = [f for f in row.flags if not is_late_flag(f)] + decision.flags
        message = row.message.replace(old_reason, "") if old_reason else row.message
        row.message = "; ".join(m for m in (message.strip("; "), decision.reason) if m)
        row.late_penalty, row.late = decision.penalty, late
        gradebook.save_late(row.student, decision, flagged=bool(row.flags) or row.status != "graded")
        return True

    def decide(self, student: str, files: dict[str, Path], notebook: Path | None, score: float,
               max_score: float) -> LateDecision:
        policy = self.policy
        raw, source = self.submitted_at(student, files, notebook)
        extension = self.extensions.get(student)
        decision = LateDecision(timestamp=None, source=source, extension=extension)
        if raw is not None:
            try:
                decision.timestamp = parse_time(raw)
            except ValueError:
                decision.flags.append(f"submission time {str(raw)[:60]!r} ({source}) cannot be read: no late penalty")
                decision.source = ""
                return decision
        if policy.due is None:
            decision.flags.append(f"no due date for {policy.assignment} in the config: no late penalty")
            return decision
        decision.due = policy.due + (extension or dt.timedelta(0))
        if decision.timestamp is None and source != "late mark":
            decision.flags.append(NO_TIME)
            return decision
        if decision.timestamp is None:  # Canvas says late, not how late: at least one period
            late_by = PERIOD.get(policy.policy, 1.0)
            decision.flags.append("marked late in the LMS zip, no submission time: charged as one period late")
        else:
            late_by = (decision.timestamp - decision.due - policy.grace).total_seconds()
            if late_by <= 0:
                return decision
        decision.seconds_late = late_by
        due_text = f"due {_when(decision.due)}" + (f" with an extension of {_duration(extension.total_seconds())}"
                                                   if extension else "")
        came = (f"submitted {_when(decision.timestamp)}, {_duration(late_by)} late" if decision.timestamp
                else "marked late by the LMS")
        if policy.policy == "none":
            decision.reason = f"late ({came}; {due_text}): no penalty for this assignment"
            return decision
        if policy.policy == "reject":
            decision.rejected = True
            decision.penalty = score
            decision.reason = f"not accepted: {came} ({due_text}; {policy.describe()}): score 0"
            return decision
        periods = math.ceil(late_by / PERIOD[policy.policy])
        amount = periods * policy.penalty
        if policy.cap is not None:
            amount = min(amount, policy.cap)
        points = amount * max_score / 100.0 if policy.unit == "percent" else amount
        decision.penalty = round(min(points, score), 6)
        unit = "%" if policy.unit == "percent" else " points"
        decision.reason = (f"late: {came} ({due_text}); {policy.describe()}: {amount:g}{unit} = "
                           f"-{decision.penalty:g} point{'s' * (decision.penalty != 1)}, "
                           f"{score - decision.penalty:g}/{max_score:g} after the penalty")
        return decision


LATE_COLUMNS = ("late penalty", "score after penalty", "late")


def late_header(rows) -> list[str]:
    """The grade CSV's late-work columns: only when a late policy applied to the batch."""
    return list(LATE_COLUMNS) if any(getattr(r, "late_penalty", None) is not None for r in rows) else []


def late_cells(row) -> list[str]:
    penalty = row.late_penalty or 0.0
    return [f"{penalty:g}", f"{max(0.0, row.score - penalty):g}", row.late]


LATE_FLAGS = (NO_TIME, "submission time ", "no due date for ", "marked late in the LMS zip")


def is_late_flag(flag: str) -> bool:
    """Whether a flag is one that late-work decisions raise (replaced when the decision is made again)."""
    return flag.startswith(LATE_FLAGS)
