"""Results into nbgrader's gradebook, through nbgrader's own API.

The assignment is registered the way ``nbgrader generate_assignment`` does it
(nbgrader's ``SaveCells`` preprocessor on the release version of the source:
solutions cleared, hidden tests kept, checksums computed), so ``nbgrader
autograde``, ``export``, ``generate_feedback`` and the formgrader all work on
the same gradebook. Scores are written like nbgrader's ``SaveAutoGrades`` does
(nbgrader commits the student and the submission, then the scores); the batch
marks a submission done only after that, so a batch killed midway keeps every
grade it finished and grades the rest again. Writes from the worker threads of
one batch are serialised; writes from several batches at once (two graders on one SQLite file) are retried while the
database is locked. `--db` takes any URL nbgrader does (PostgreSQL for many
graders at once).
"""

from __future__ import annotations

import contextlib
import copy
import os
import threading
import time
import warnings
from datetime import datetime, timezone

from nbformat import NotebookNode
from nbgrader.api import Base, Gradebook, MissingEntry
from nbgrader.preprocessors import ClearSolutions, ComputeChecksums, LockCells, SaveCells
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from dlcourse.instructor.cells import CODE_STUB
from dlcourse.instructor.grading.engine import GradeResult

RETRIES = 30
# PostgreSQL advisory lock keys (fixed numbers no other tool uses): one for creating the tables, one
# every write takes (registering the assignment, saving a submission): nbgrader's registration removes and
# re-adds a notebook that has no submissions yet, which fails if another grader saves one in between.
CREATION_LOCK, WRITE_LOCK = 7346251, 7346253
# nbgrader's own SQLAlchemy usage warns on every new submission; nothing for us to act on.
warnings.filterwarnings("ignore", message=r"Object of type <Submitted", module=r"nbgrader")
warnings.filterwarnings("ignore", message=r"Object of type <Submitted")


def _retry(action):
    """Run `action` again while another process holds the SQLite write lock."""
    for attempt in range(RETRIES):
        try:
            return action()
        except OperationalError as error:
            if "locked" not in str(error) and "busy" not in str(error) or attempt == RETRIES - 1:
                raise
            time.sleep(0.1 + 0.1 * attempt)


def schema_version() -> str:
    """The alembic revision of nbgrader's gradebook schema (what `nbgrader db upgrade` compares with)."""
    import nbgrader
    from alembic.script import ScriptDirectory

    return ScriptDirectory(os.path.join(os.path.dirname(nbgrader.__file__), "alembic")).get_current_head()


def create_gradebook(db_url: str) -> bool:
    """Create an empty gradebook at `db_url`, exactly as nbgrader would; False if it has tables already.

    nbgrader's ``Gradebook`` does this itself on first use, but learns the schema
    version by running the ``alembic`` command, a new Python process that imports
    nbgrader again: 5 s of one core at the start of every first batch, while the
    kernels' template is importing torch on the other. Here alembic's API reads the
    same revision in-process (0.1 s).
    """
    with _creation_lock(db_url):
        engine = create_engine(db_url, future=True)
        try:
            with engine.begin() as connection:
                if connection.dialect.name == "postgresql":  # one creator at a time; the others wait, then see tables
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CREATION_LOCK})
                if inspect(connection).get_table_names():
                    return False
                Base.metadata.create_all(bind=connection)
                connection.execute(text("CREATE TABLE IF NOT EXISTS alembic_version "
                                        "(version_num VARCHAR(32) NOT NULL)"))
                if connection.execute(text("SELECT COUNT(*) FROM alembic_version")).scalar() == 0:
                    connection.execute(text("INSERT INTO alembic_version (version_num) VALUES (:version)"),
                                       {"version": schema_version()})
            return True
        finally:
            engine.dispose()


@contextlib.contextmanager
def _postgres_lock(db_url: str, key: int):
    """On PostgreSQL, hold the advisory lock `key` (on a connection of its own, so that nbgrader's commits
    inside do not release it); elsewhere nothing: SQLite serialises its writers itself."""
    if not db_url.startswith("postgresql"):
        yield
        return
    engine = create_engine(db_url, future=True, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            connection.commit()
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()
    finally:
        engine.dispose()


@contextlib.contextmanager
def _creation_lock(db_url: str):
    """For a SQLite file, an exclusive flock on the file itself while the gradebook is created (graders
    starting together would otherwise both create tables); other databases lock in their transaction."""
    if not db_url.startswith("sqlite:///") or db_url == "sqlite:///:memory:":
        yield
        return
    import fcntl

    with open(db_url[len("sqlite:///"):], "ab") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class GradebookWriter:
    """One assignment's gradebook: registration, skip checks and saved scores.

    One ``Gradebook`` (one database engine) serves the whole batch: opening a new one per
    submission would compile every SQL statement again, 0.1 s each time.
    """

    def __init__(self, db_url: str, assignment: str, notebook: str, source: NotebookNode,
                 code_stub: dict | None = None):
        self.db_url, self.assignment, self.notebook = db_url, assignment, notebook
        self.code_stub = code_stub or CODE_STUB  # an nbgrader course's own ClearSolutions.code_stub
        self._lock = threading.Lock()
        self._gradebook: Gradebook | None = None
        with _postgres_lock(db_url, WRITE_LOCK):
            _retry(lambda: create_gradebook(db_url))
            self._transaction(lambda gb: self._register(gb, source))

    def _transaction(self, action):
        """`action(gradebook)` under the lock, committed, or rolled back and retried while the database is busy."""
        def attempt():
            if self._gradebook is None:
                self._gradebook = Gradebook(self.db_url)
            gb = self._gradebook
            try:
                value = action(gb)
                gb.db.commit()
                return value
            except BaseException:
                gb.db.rollback()
                raise
            finally:
                gb.db.remove()  # this thread's session; the engine and its statement cache stay
        with self._lock:
            return _retry(attempt)

    def close(self) -> None:
        with self._lock:
            if self._gradebook is not None:
                self._gradebook.close()
                self._gradebook = None

    def _register(self, gb: Gradebook, source: NotebookNode) -> None:
        nb = copy.deepcopy(source)
        resources = {"nbgrader": {"notebook": self.notebook, "assignment": self.assignment, "db_url": self.db_url}}
        for preprocessor in (LockCells(), ClearSolutions(code_stub=self.code_stub), ComputeChecksums()):
            nb, resources = preprocessor.preprocess(nb, resources)
        gb.update_or_create_assignment(self.assignment)  # committed by nbgrader: SaveCells must see it
        SaveCells().preprocess(nb, resources)  # opens its own gradebook, as nbgrader does

    def graded_students(self) -> set[str]:
        """Students with a saved autograde of this assignment."""
        def read(gb: Gradebook) -> set[str]:
            try:
                assignment = gb.find_assignment(self.assignment)
            except MissingEntry:
                return set()
            return {s.student.id for s in assignment.submissions}
        return self._transaction(read)

    def set_duedate(self, due: datetime) -> None:
        """The assignment's due date, as nbgrader keeps it (its late-penalty and export code read it)."""
        with _postgres_lock(self.db_url, WRITE_LOCK):
            self._transaction(lambda gb: gb.update_or_create_assignment(self.assignment, duedate=due))

    def save_late(self, student: str, late, flagged: bool) -> None:
        """A new late-work decision (grading.late) for a submission saved before; its scores stay."""
        def write(gb: Gradebook) -> None:
            submission = gb.update_or_create_submission(self.assignment, student, timestamp=late.timestamp)
            submission.extension = late.extension
            submitted = gb.find_submission_notebook(self.notebook, self.assignment, student)
            submitted.late_submission_penalty = late.penalty or None
            submitted.flagged = flagged
        with _postgres_lock(self.db_url, WRITE_LOCK):
            self._transaction(write)

    def save(self, student: str, result: GradeResult, timestamp: datetime | None = None, late=None) -> datetime | None:
        """One submission's scores, flags and comments (the scores in the last commit); returns the submission
        time as the gradebook holds it (nbgrader's tools compare it with the submitted copy's timestamp.txt)."""
        def write(gb: Gradebook) -> datetime | None:
            gb.update_or_create_student(student)
            # late work (grading.late.LateDecision): when it came in (None: not known), the extension
            when = late.timestamp if late is not None else timestamp or datetime.now(timezone.utc)
            submission = gb.update_or_create_submission(self.assignment, student, timestamp=when)
            if late is not None:
                submission.extension = late.extension
            submitted = gb.find_submission_notebook(self.notebook, self.assignment, student)
            for cell in result.cells:
                try:
                    grade = gb.find_grade(cell.grade_id, self.notebook, self.assignment, student)
                except MissingEntry:
                    continue
                # A written answer has no automatic score, but 0 when it was missing (restore.py), with why.
                grade.auto_score = cell.points
                grade.needs_manual_grade = (grade.manual_score is not None or grade.auto_score is None
                                            or cell.kind == "answer")
                if cell.kind == "answer":
                    try:
                        comment = gb.find_comment(cell.grade_id, self.notebook, self.assignment, student)
                        comment.auto_comment = cell.error if cell.points is not None else None
                    except MissingEntry:
                        pass
            submitted.flagged = bool(result.flags) or result.status != "graded"
            if late is not None:  # where nbgrader keeps it: its export and the formgrader subtract it
                submitted.late_submission_penalty = late.penalty or None
            return submission.timestamp
        with _postgres_lock(self.db_url, WRITE_LOCK):
            return self._transaction(write)
