"""nbgrader's configuration for this course: the same folder and gradebook that
`dlcourse grade` writes, so nbgrader's own commands and its formgrader work on
the grades it saved.

    cd autograder
    nbgrader db student list            # the students dlcourse grade has seen
    nbgrader export                     # grades.csv in nbgrader's format
    jupyter lab                         # Nbgrader > Formgrader: manual grading, flagged submissions

Layout (all git-ignored): gradebook.db, submitted/<student>/<assignment>/,
autograded/<student>/<assignment>/, feedback/<student>/<assignment>/.
"""

from pathlib import Path

c = get_config()  # noqa: F821 (nbgrader injects it)

HERE = Path(__file__).resolve().parent

c.CourseDirectory.root = str(HERE)
c.CourseDirectory.db_url = f"sqlite:///{HERE / 'gradebook.db'}"  # dlcourse grade's default --db
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"

# `nbgrader zip_collect` reads the same LMS downloads as `dlcourse grade file.zip` (Canvas names:
# <student>_<id>_<id>_<file>.ipynb, "late" included).
c.FileNameCollector.named_regexp = r".*/(?P<student_id>[^_/]+)_(?:late_)?\d+_\d+_(?P<file_id>.+)"

# When nbgrader itself executes notebooks (stock `nbgrader autograde`), give a cell the same time as
# dlcourse grade's default --cell-timeout, and keep going after an error so later cells still run.
c.Execute.timeout = 120
c.Execute.allow_errors = True
c.Execute.interrupt_on_timeout = True
