"""`dlcourse new NN_name`: the files of a new assignment, each kind of cell once, ready to build and
check. Runs in the instructor's process; writes only files that do not exist yet."""

from __future__ import annotations

from pathlib import Path

from dlcourse.instructor.course import ASSIGNMENT_NAME, Course, CourseError

SOURCE = '''# %% [markdown]
# # {number} · {title}
#
# **Expected work:** about N hours. **GPU:** not needed (say why, or which part a GPU helps).
#
# One paragraph: what the student learns and builds here.

# %%
import numpy as np

# %% [markdown]
# ### Exercise 1 · `mean_square`
#
# State every requirement the tests check here (the hidden tests add cases, not requirements):
# `mean_square(x)` returns the mean of the squares of the numbers in the list `x`.

# %% solution="mean_square"
def mean_square(x):
    """The mean of the squares of the numbers in x."""
    ### BEGIN SOLUTION
    return float(np.mean(np.square(x)))
    ### END SOLUTION

# %% tests="test_mean_square" points=2
assert mean_square([3.0]) == 9.0, "one number: its square"
assert mean_square([1.0, 3.0]) == 5.0, "two numbers: (1 + 9) / 2"
print("test_mean_square passed")
### BEGIN HIDDEN TESTS
assert mean_square([-2.0, 2.0]) == 4.0, "negative numbers square to positive"
### END HIDDEN TESTS

# %% [markdown]
# **Question 1 (written, 1 point).** Why is the mean square never negative?

# %% [markdown] answer="q_never_negative" points=1
# ### BEGIN SOLUTION
# Each square is at least zero, and a mean of numbers that are at least zero is at least zero.
# ### END SOLUTION
'''

MUTANTS = '''# Known-wrong versions of each solution cell; `dlcourse check {name}` fails unless the tests catch every
# one. Each table [<solution id>.<what is wrong>] is one mutant that edits the solution: find the text,
# replace it; a mutant of several edits lists them instead: edits = [{{ find = "...", replace = "..." }}, ...]

[mean_square.sum_not_mean]
find = "np.mean("
replace = "np.sum("

[mean_square.forgets_the_square]
find = "np.square(x)"
replace = "np.abs(x)"
'''


def naming_problem(name: str) -> str | None:
    """Why `name` is not an assignment name, or None."""
    if ASSIGNMENT_NAME.match(name):
        return None
    return (f"{name!r} breaks the naming rule NN_name: two digits (the course order), an underscore, then "
            "lowercase letters, digits and underscores (e.g. 07_optim); the folder and its .py file share it")


def new_assignment(course: Course, name: str) -> list[Path]:
    """Write notebooks/NN_name/NN_name.py and autograder/NN_name/mutants.toml; returns them."""
    problem = naming_problem(name)
    if problem:
        raise CourseError(problem)
    source, mutants = course.source_path(name), course.mutants_path(name)
    for path in (source, mutants):
        if path.exists():
            raise CourseError(f"{path.relative_to(course.root)} exists already: `dlcourse new` writes only new files")
    title = name[3:].replace("_", " ").capitalize()
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(SOURCE.format(number=name[:2], title=title), encoding="utf-8")
    mutants.parent.mkdir(parents=True, exist_ok=True)
    mutants.write_text(MUTANTS.format(name=name), encoding="utf-8")
    return [source, mutants]


def next_steps(course: Course, name: str) -> list[str]:
    return [
        f"next: edit {course.source_path(name).relative_to(course.root)} (notebooks/README.md: the cell format)",
        f"      add `{name} = YYYY-MM-DD` (after the deadline) under [tool.dlcourse.release_dates] in pyproject.toml:",
        "      `dlcourse release` refuses an assignment without one (unless --force)",
        f"      if it needs a GPU in Colab: `{name} = \"why\"` under [tool.dlcourse.gpu]; for Gradescope, "
        f"[tool.dlcourse.gradescope.\"{name}\"] memory_mb/timeout_s when it needs more than the defaults",
        f"      then: dlcourse build {name} && dlcourse check {name}",
    ]
