"""What a graded batch says: `dlcourse report ASSIGNMENT` (from the gradebook, any time later) and
`dlcourse grade ... --report DIR` (right after grading). Runs in the instructor's process; reads the
gradebook through nbgrader's API and the autograded notebooks, never changes either.

- each test's pass rate (a test passes with full points, as in the grade CSV), the tests most
  students failed first, with their most frequent failure messages (numbers and addresses folded,
  so "relative error 3.1e-05" and "relative error 0.2" are one message);
- the score distribution, time per submission, statuses and flags, late penalties;
- the project (02 on): the distribution of each figure the students reported and a leaderboard by
  the validation figure, from the record each project's tests cell printed in the autograded
  notebook (the figures of the run the student handed in, `dlcourse.projects`); only records whose
  automatic checks passed are ranked;
- written as DIR/index.html with PNG figures (matplotlib, no display needed) and DIR/tests.csv,
  DIR/submissions.csv; a short table in the terminal.

Students appear only under the ids the gradebook already uses; nothing leaves the machine.
"""

from __future__ import annotations

import csv
import html
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from dlcourse import tables
from dlcourse.instructor.cells import grade_id, role, score_columns
from dlcourse.instructor.course import Course, CourseError
from dlcourse.instructor.spreadsheet import SafeWriter
from dlcourse.projects import record_checked

RECORD_KEY = "dlcourse_grade"  # what grading.batch records in each autograded notebook
NUMBER = re.compile(r"0x[0-9a-fA-F]+|[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
MESSAGES_SHOWN = 3


@dataclass
class TestStats:
    grade_id: str
    max_points: float
    graded: int = 0
    passed: int = 0
    messages: Counter = field(default_factory=Counter)  # folded message -> count
    examples: dict[str, str] = field(default_factory=dict)  # folded message -> one message as it was

    @property
    def failed(self) -> int:
        return self.graded - self.passed

    @property
    def pass_rate(self) -> float:
        return self.passed / self.graded if self.graded else 0.0

    def top_messages(self, n: int = MESSAGES_SHOWN) -> list[tuple[str, int]]:
        return [(self.examples[m], count) for m, count in self.messages.most_common(n)]


@dataclass
class SubmissionStats:
    student: str
    score: float  # autograded points (the grade CSV's score)
    max_score: float
    status: str
    flags: list[str]
    seconds: float | None
    late_penalty: float = 0.0
    message: str = ""


@dataclass
class ProjectEntry:
    """One student's project as its tests cell read it from the notebook handed in."""

    student: str
    record: dict  # dlcourse.projects' record: figures, metric, steps, budget, test uses ...
    passed: bool  # the project's automatic checks passed (full points on its tests cell)

    @property
    def figures(self) -> dict:
        figures = self.record.get("figures")
        return {k: v for k, v in figures.items() if isinstance(v, (int, float))} if isinstance(figures, dict) else {}


@dataclass
class BatchReport:
    assignment: str
    tests: list[TestStats]
    submissions: list[SubmissionStats]
    projects: list[ProjectEntry] = field(default_factory=list)

    @property
    def project_metric(self) -> tuple[str, bool] | None:
        """(the validation figure the leaderboard ranks by, higher is better), from the records; None without."""
        for entry in self.projects:
            metric = entry.record.get("metric")
            if isinstance(metric, str):
                return metric, bool(entry.record.get("higher_is_better", True))
        return None

    def leaderboard(self) -> list[ProjectEntry]:
        """The projects whose automatic checks passed, best validation figure first (ties by student id)."""
        if self.project_metric is None:
            return []
        metric, higher = self.project_metric
        ranked = [e for e in self.projects if e.passed and metric in e.figures]
        return sorted(ranked, key=lambda e: (-e.figures[metric] if higher else e.figures[metric], e.student))

    def project_figures(self) -> dict[str, list[float]]:
        """figure name -> the values the ranked projects reported, the validation figure first."""
        names = dict.fromkeys([self.project_metric[0]] if self.project_metric else [])
        for entry in self.leaderboard():
            names.update(dict.fromkeys(entry.figures))
        return {name: [e.figures[name] for e in self.leaderboard() if name in e.figures] for name in names}

    @property
    def max_score(self) -> float:
        return sum(t.max_points for t in self.tests)


def fold(message: str) -> str:
    """A failure message with its numbers and addresses replaced, whitespace collapsed: the group key."""
    text = " ".join(str(message).split())
    return NUMBER.sub("#", text)[:300]


def failure_messages(executed) -> dict[str, str]:
    """grade id -> the failure message of each test cell of an autograded notebook that raised
    ("ename: evalue" of its last error output, as the grader scored it)."""
    out = {}
    for cell in executed.cells:
        if role(cell) != "tests":
            continue
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if errors:
            out[grade_id(cell)] = f"{errors[-1].get('ename')}: {errors[-1].get('evalue')}"
    return out


def project_records(executed) -> dict[str, dict]:
    """grade id -> the project record a tests cell of an autograded notebook printed (dlcourse.projects)."""
    out = {}
    for cell in executed.cells:
        if role(cell) != "tests":
            continue
        for output in cell.get("outputs", []):
            record = record_checked(output.get("text", "")) if output.get("output_type") == "stream" else None
            if record is not None:
                out[grade_id(cell)] = record
    return out


def gradebook_location(course: Course, db_url: str | None = None, nbgrader_dir: Path | None = None) -> tuple[str, Path]:
    """The gradebook URL and nbgrader folder `dlcourse grade` used with the same options."""
    base = Path(nbgrader_dir) if nbgrader_dir else course.root / "autograder"
    return db_url or f"sqlite:///{base.resolve() / 'gradebook.db'}", base


def collect(course: Course, assignment: str, db_url: str | None = None, nbgrader_dir: Path | None = None) -> BatchReport:
    """The batch statistics of `assignment`: scores from the gradebook, messages, times, statuses
    and flags from the autograded notebooks next to it."""
    from nbgrader.api import Gradebook, MissingEntry

    from dlcourse.instructor.source import read_source

    course.resolve([assignment])
    db_url, base = gradebook_location(course, db_url, nbgrader_dir)
    if db_url.startswith("sqlite:///") and not Path(db_url[len("sqlite:///"):]).exists():
        raise CourseError(f"no gradebook at {db_url[len('sqlite:///'):]}: run `dlcourse grade {assignment} ...` "
                          "first, or pass --db / --nbgrader-dir")
    columns = [c for c in score_columns(read_source(course.source_path(assignment))) if c.kind == "tests"]
    tests = {c.grade_id: TestStats(c.grade_id, c.max_points) for c in columns}
    submissions, projects = [], []
    with Gradebook(db_url) as gb:
        try:
            graded = gb.find_assignment(assignment).submissions
        except MissingEntry:
            raise CourseError(f"{assignment}: no grades in the gradebook ({db_url}); "
                              f"run `dlcourse grade {assignment} ...` first") from None
        for submitted in sorted(graded, key=lambda s: s.student.id):
            student = submitted.student.id
            autos = {g.name: g.auto_score for nb in submitted.notebooks for g in nb.grades}
            flagged = any(nb.flagged for nb in submitted.notebooks)
            penalty = float(submitted.late_submission_penalty or 0.0)
            path = base / "autograded" / student / assignment / f"{assignment}.ipynb"
            record, messages, found = {}, {}, {}
            try:
                executed = nbformat.read(str(path), as_version=4)
                record = executed.metadata.get(RECORD_KEY, {}).get("row", {}) or {}
                messages = failure_messages(executed)
                found = project_records(executed)
            except Exception:  # an autograded notebook removed or unreadable: scores still count
                pass
            for gid, project in found.items():
                points = autos.get(gid)
                passed = points is not None and gid in tests and points >= tests[gid].max_points
                projects.append(ProjectEntry(student, project, passed))
            status = record.get("status") or ("flagged" if flagged else "graded")
            score = 0.0
            for gid, stats in tests.items():
                points = autos.get(gid)
                if points is None:
                    continue
                stats.graded += 1
                score += points
                if points >= stats.max_points:
                    stats.passed += 1
                else:
                    message = messages.get(gid) or (f"not graded: {record.get('message')}" if status != "graded"
                                                    and record.get("message") else "failed (no error message)")
                    key = fold(message)
                    stats.messages[key] += 1
                    stats.examples.setdefault(key, message[:300])
            submissions.append(SubmissionStats(
                student=student, score=score, max_score=sum(t.max_points for t in tests.values()), status=status,
                flags=list(record.get("flags", [])), seconds=record.get("seconds"), late_penalty=penalty,
                message=record.get("message", "")))
    return BatchReport(assignment, list(tests.values()), submissions, projects)


def format_table(report: BatchReport) -> str:
    """The terminal summary: the tests most students failed first, then statuses and flags."""
    n = len(report.submissions)
    scores = [s.score for s in report.submissions]
    lines = [f"{report.assignment}: {n} submission(s), mean {statistics.fmean(scores) if scores else 0:.2f}"
             f"/{report.max_score:g}, median {statistics.median(scores) if scores else 0:g}"]
    rows = []
    for t in sorted(report.tests, key=lambda t: (t.pass_rate, t.grade_id)):
        top = t.top_messages(1)
        rows.append((t.grade_id, f"{t.passed}/{t.graded}", f"{t.pass_rate:.0%}",
                     (f"{top[0][1]}x {top[0][0][:70]}" if top else "")))
    lines += tables.format_table(("test", "passed", "rate", "most frequent failure"), rows)
    statuses = Counter(s.status for s in report.submissions)
    lines.append("statuses: " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))
    flags = flag_counts(report)
    if flags:
        lines.append("flags: " + "; ".join(f"{k} ({v})" for k, v in flags.most_common(5)))
    late = [s for s in report.submissions if s.late_penalty]
    if late:
        lines.append(f"late penalties: {len(late)} submission(s), {sum(s.late_penalty for s in late):g} points in all")
    lines += project_lines(report)
    return "\n".join(lines)


LEADERBOARD_SHOWN = 10


def _value(value: float) -> str:
    return f"{value:g}" if float(value).is_integer() else f"{value:.4f}"


def project_lines(report: BatchReport, shown: int = LEADERBOARD_SHOWN) -> list[str]:
    """The terminal's project summary: how many records, each figure's spread, the top of the leaderboard."""
    if not report.projects or report.project_metric is None:  # no record names its metric: nothing to rank by
        return [f"project: {len(report.projects)} record(s), none naming its validation figure"] if report.projects else []
    board = report.leaderboard()
    metric, higher = report.project_metric
    lines = [f"project: {len(report.projects)} record(s), {len(board)} passed the automatic checks and are ranked "
             f"by {metric} ({'higher' if higher else 'lower'} is better)"]
    figures = report.project_figures()
    if board:
        lines += tables.format_table(("figure", "n", "min", "median", "max"), [
            (name, str(len(values)), _value(min(values)), _value(statistics.median(values)), _value(max(values)))
            for name, values in figures.items()])
        lines += tables.format_table(("rank", "student", *figures), [
            (str(rank), e.student, *(_value(e.figures[n]) if n in e.figures else "" for n in figures))
            for rank, e in enumerate(board[:shown], start=1)])
    return lines


def flag_counts(report: BatchReport) -> Counter:
    return Counter(fold(flag) for s in report.submissions for flag in s.flags)


def _figures(report: BatchReport, folder: Path) -> dict[str, str]:
    """PNG figures (matplotlib's Agg canvas: no display, no global pyplot state): file name -> caption."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figures = {}

    def save(fig, name, caption):
        FigureCanvasAgg(fig)
        fig.tight_layout()
        fig.savefig(folder / name, dpi=110)
        figures[name] = caption

    scores = [s.score for s in report.submissions]
    fig = Figure(figsize=(6.4, 3.4))
    ax = fig.add_subplot()
    top = max(report.max_score, max(scores, default=0), 1)
    whole = top <= 40 and all(float(s).is_integer() for s in scores)
    # one bar per whole score, centred on it; else 20 bars over the range
    bins = [b - 0.5 for b in range(int(top) + 2)] if whole else 20
    ax.hist(scores, bins=bins, range=None if whole else (0, top), color="#4c72b0", edgecolor="white")
    ax.yaxis.get_major_locator().set_params(integer=True)
    if whole:
        ax.set_xticks(range(int(top) + 1) if top <= 20 else range(0, int(top) + 1, 5))
    ax.set_xlabel(f"autograded score (of {report.max_score:g})")
    ax.set_ylabel("submissions")
    ax.set_title(f"{report.assignment}: score distribution ({len(scores)} submissions)")
    save(fig, "scores.png", "Score distribution")

    ordered = sorted(report.tests, key=lambda t: (-t.pass_rate, t.grade_id))
    fig = Figure(figsize=(6.4, 1.6 + 0.3 * len(ordered)))
    ax = fig.add_subplot()
    rates = [100 * t.pass_rate for t in ordered]
    bars = ax.barh([t.grade_id for t in ordered], rates, color=["#c44e52" if r < 50 else "#55a868" for r in rates])
    for bar, t in zip(bars, ordered):
        ax.text(min(bar.get_width() + 1, 92), bar.get_y() + bar.get_height() / 2, f"{t.passed}/{t.graded}",
                va="center", fontsize=8)
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of submissions passing")
    ax.set_title("Pass rate per test (least passed at the top)")
    save(fig, "pass_rates.png", "Pass rate per test")

    seconds = [s.seconds for s in report.submissions if s.seconds is not None]
    if seconds:
        fig = Figure(figsize=(6.4, 3.0))
        ax = fig.add_subplot()
        ax.hist(seconds, bins=min(30, max(5, len(seconds) // 3)), color="#8172b2", edgecolor="white")
        ax.set_xlabel("seconds per submission (wall clock, grader included)")
        ax.set_ylabel("submissions")
        ax.set_title("Time per submission")
        save(fig, "seconds.png", "Time per submission")

    project_figures = report.project_figures()
    if project_figures and any(project_figures.values()):
        shown = list(project_figures.items())[:4]
        fig = Figure(figsize=(3.2 * len(shown), 3.0))
        for index, (name, values) in enumerate(shown, start=1):
            ax = fig.add_subplot(1, len(shown), index)
            ax.hist(values, bins=min(20, max(5, len(values) // 2)), color="#dd8452", edgecolor="white")
            ax.yaxis.get_major_locator().set_params(integer=True)
            ax.set_xlabel(name)
            ax.set_ylabel("projects" if index == 1 else "")
        fig.suptitle(f"Reported project figures ({len(report.leaderboard())} projects that passed the automatic checks)")
        save(fig, "project_figures.png", "Project figures as the students reported them")
    return figures


def write_csv(report: BatchReport, folder: Path) -> list[Path]:
    tests_csv, submissions_csv = folder / "tests.csv", folder / "submissions.csv"
    written = [tests_csv, submissions_csv]
    if report.projects:
        projects_csv = folder / "projects.csv"
        written.append(projects_csv)
        ranks = {id(e): rank for rank, e in enumerate(report.leaderboard(), start=1)}
        names = list(dict.fromkeys(n for e in report.projects for n in e.figures))
        with open(projects_csv, "w", newline="", encoding="utf-8") as f:
            writer = SafeWriter(f)
            writer.writerow(["rank", "student", "checks passed", *names, "steps", "budget steps", "test uses"])
            for e in sorted(report.projects, key=lambda e: (ranks.get(id(e), len(ranks) + 1), e.student)):
                writer.writerow([ranks.get(id(e), ""), e.student, "yes" if e.passed else "no",
                                 *(_value(e.figures[n]) if n in e.figures else "" for n in names),
                                 e.record.get("steps", ""), e.record.get("budget_steps", ""), e.record.get("test_uses", "")])
    with open(tests_csv, "w", newline="", encoding="utf-8") as f:
        writer = SafeWriter(f)
        writer.writerow(["test", "points", "graded", "passed", "failed", "pass rate",
                         *[f"failure {i} ({kind})" for i in range(1, MESSAGES_SHOWN + 1) for kind in ("count", "message")]])
        for t in report.tests:
            messages = [x for count_message in t.top_messages() for x in (count_message[1], count_message[0])]
            writer.writerow([t.grade_id, f"{t.max_points:g}", t.graded, t.passed, t.failed, f"{t.pass_rate:.4f}",
                             *messages])
    with open(submissions_csv, "w", newline="", encoding="utf-8") as f:
        writer = SafeWriter(f)
        writer.writerow(["student", "score", "max score", "late penalty", "score after penalty", "status", "flags",
                         "seconds"])
        for s in report.submissions:
            writer.writerow([s.student, f"{s.score:g}", f"{s.max_score:g}", f"{s.late_penalty:g}",
                             f"{max(0.0, s.score - s.late_penalty):g}", s.status,
                             "; ".join(s.flags), "" if s.seconds is None else f"{s.seconds:.2f}"])
    return written


STYLE = """body{font-family:system-ui,sans-serif;margin:1.5em;max-width:70em}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left;vertical-align:top}.low{color:#b00}
img{max-width:100%;border:1px solid #eee}code{font-size:90%}"""


def write_report(report: BatchReport, folder: Path) -> Path:
    """DIR/index.html, its PNG figures, tests.csv and submissions.csv."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    e = html.escape
    figures = _figures(report, folder)
    write_csv(report, folder)
    n = len(report.submissions)
    scores = [s.score for s in report.submissions]
    rows = []
    for t in sorted(report.tests, key=lambda t: (t.pass_rate, t.grade_id)):
        messages = "".join(f"<li>{count} &times; <code>{e(message)}</code></li>" for message, count in t.top_messages())
        rows.append(f"<tr><td>{e(t.grade_id)}</td><td>{t.max_points:g}</td><td>{t.passed}/{t.graded}</td>"
                    f"<td class='{'low' if t.pass_rate < 0.5 else ''}'>{t.pass_rate:.0%}</td>"
                    f"<td><ul>{messages}</ul></td></tr>")
    statuses = Counter(s.status for s in report.submissions)
    flags = flag_counts(report)
    review = [s for s in report.submissions if s.status != "graded" or s.flags or s.late_penalty]
    seconds = sorted(s.seconds for s in report.submissions if s.seconds is not None)
    timing = (f"<p>Time per submission: median {statistics.median(seconds):.1f} s, slowest {seconds[-1]:.1f} s, "
              f"{sum(seconds):.0f} s in all.</p>" if seconds else "")
    body = (
        f"<h1>Batch report: {e(report.assignment)}</h1>"
        f"<p>{n} submissions; autograded score mean {statistics.fmean(scores) if scores else 0:.2f}, median "
        f"{statistics.median(scores) if scores else 0:g} of {report.max_score:g}. "
        "A test passes with its full points, as in the grade CSV. Data: <a href='tests.csv'>tests.csv</a>, "
        "<a href='submissions.csv'>submissions.csv</a>.</p>"
        + "".join(f"<h2>{e(caption)}</h2><img src='{e(name)}' alt='{e(caption)}'>" for name, caption in figures.items())
        + timing
        + "<h2>Tests, least passed first</h2><table><tr><th>test</th><th>points</th><th>passed</th><th>rate</th>"
          "<th>most frequent failures</th></tr>" + "".join(rows) + "</table>"
        + "<h2>Statuses</h2><table>" + "".join(f"<tr><td>{e(k)}</td><td>{v}</td></tr>"
                                               for k, v in sorted(statuses.items())) + "</table>"
        + ("<h2>Flags</h2><table>" + "".join(f"<tr><td>{e(k)}</td><td>{v}</td></tr>" for k, v in flags.most_common())
           + "</table>" if flags else "")
        + project_html(report)
        + ("<h2>To review</h2><table><tr><th>student</th><th>status</th><th>late penalty</th><th>flags</th></tr>"
           + "".join(f"<tr><td>{e(s.student)}</td><td>{e(s.status)}</td><td>{s.late_penalty:g}</td>"
                     f"<td>{e('; '.join(s.flags))}</td></tr>" for s in review) + "</table>" if review else "")
    )
    page = folder / "index.html"
    page.write_text(f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{e(report.assignment)}: batch report"
                    f"</title><style>{STYLE}</style></head><body>\n{body}\n</body></html>\n", encoding="utf-8")
    return page


def project_html(report: BatchReport) -> str:
    """The leaderboard section of the page (students by gradebook id only)."""
    e = html.escape
    if not report.projects or report.project_metric is None:
        return (f"<h2>Project</h2><p>{len(report.projects)} record(s), none naming its validation figure.</p>"
                if report.projects else "")
    board = report.leaderboard()
    metric, higher = report.project_metric
    figures = list(report.project_figures())
    rows = "".join(f"<tr><td>{rank}</td><td>{e(entry.student)}</td>"
                   + "".join(f"<td>{_value(entry.figures[n]) if n in entry.figures else ''}</td>" for n in figures)
                   + "</tr>" for rank, entry in enumerate(board, start=1))
    unranked = len(report.projects) - len(board)
    return (f"<h2>Project leaderboard by {e(metric)}</h2><p>{len(board)} project(s) ranked by {e(metric)} "
            f"({'higher' if higher else 'lower'} is better), as reported from each student's own run; "
            f"{unranked} record(s) failed the automatic checks and are not ranked. All records: "
            "<a href='projects.csv'>projects.csv</a>.</p><table><tr><th>rank</th><th>student</th>"
            + "".join(f"<th>{e(n)}</th>" for n in figures) + "</tr>" + rows + "</table>")


def run_report(course: Course, assignment: str, folder: Path, db_url: str | None = None,
               nbgrader_dir: Path | None = None, log=print) -> BatchReport:
    """Collect, write the page and the CSVs, print the table: what both commands do."""
    report = collect(course, assignment, db_url, nbgrader_dir)
    page = write_report(report, folder)
    log(format_table(report))
    log(f"report: {page}")
    return report
