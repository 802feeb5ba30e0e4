"""Results into nbgrader's gradebook, through nbgrader's own API.

The assignment is registered the way ``nbgrader generate_assignment`` does it
(nbgrader's ``SaveCells`` preprocessor on the release version of the source:
solutions cleared, hidden tests kept, checksums computed), so ``nbgrader
autograde``, ``export``, ``generate_feedback`` and the formgrader all work on
the same gradebook. Scores are written like nbgrader's ``SaveAutoGrades`` does,
one submission per transaction, so a batch killed midway keeps every grade it
wrote. Writes from the worker threads of one batch are serialised; writes from
several batches at once (two graders on one SQLite file) are retried while the
database is locked. `--db` takes any URL nbgrader does (PostgreSQL for many
graders at once).
"""

from __future__ import annotations

import copy
import threading
import time
import warnings
from datetime import datetime, timezone

from nbformat import NotebookNode
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import ClearSolutions, ComputeChecksums, LockCells, SaveCells
from sqlalchemy.exc import OperationalError

from dlcourse.grading.engine import GradeResult

RETRIES = 30
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


class GradebookWriter:
    """One assignment's gradebook: registration, skip checks and saved scores."""

    def __init__(self, db_url: str, assignment: str, notebook: str, source: NotebookNode):
        self.db_url, self.assignment, self.notebook = db_url, assignment, notebook
        self._lock = threading.Lock()
        _retry(lambda: self._register(source))

    def _register(self, source: NotebookNode) -> None:
        nb = copy.deepcopy(source)
        resources = {"nbgrader": {"notebook": self.notebook, "assignment": self.assignment, "db_url": self.db_url}}
        for preprocessor in (LockCells(), ClearSolutions(), ComputeChecksums()):
            nb, resources = preprocessor.preprocess(nb, resources)
        with Gradebook(self.db_url) as gb:
            gb.update_or_create_assignment(self.assignment)
        SaveCells().preprocess(nb, resources)

    def graded_students(self) -> set[str]:
        """Students with a saved autograde of this assignment."""
        def read():
            with Gradebook(self.db_url) as gb:
                try:
                    assignment = gb.find_assignment(self.assignment)
                except MissingEntry:
                    return set()
                return {s.student.id for s in assignment.submissions}
        with self._lock:
            return _retry(read)

    def save(self, student: str, result: GradeResult, timestamp: datetime | None = None) -> None:
        """One submission's scores, flags and comments, in one transaction."""
        def write():
            with Gradebook(self.db_url) as gb:
                gb.update_or_create_student(student)
                gb.update_or_create_submission(self.assignment, student,
                                               timestamp=timestamp or datetime.now(timezone.utc))
                submitted = gb.find_submission_notebook(self.notebook, self.assignment, student)
                for cell in result.cells:
                    try:
                        grade = gb.find_grade(cell.grade_id, self.notebook, self.assignment, student)
                    except MissingEntry:
                        continue
                    grade.auto_score = cell.points if cell.kind == "tests" else None
                    grade.needs_manual_grade = grade.manual_score is not None or grade.auto_score is None
                    if cell.kind == "answer":
                        try:
                            comment = gb.find_comment(cell.grade_id, self.notebook, self.assignment, student)
                            comment.auto_comment = None
                        except MissingEntry:
                            pass
                submitted.flagged = bool(result.flags) or result.status != "graded"
                gb.db.commit()
        with self._lock:
            _retry(write)

    def scores(self, student: str) -> dict[str, float | None]:
        """The saved score per graded cell (manual score where a grader gave one)."""
        def read():
            with Gradebook(self.db_url) as gb:
                out = {}
                submitted = gb.find_submission_notebook(self.notebook, self.assignment, student)
                for grade in submitted.grades:
                    out[grade.name] = grade.score
                return out
        with self._lock:
            return _retry(read)
