"""Shared fixtures: a tiny course (one assignment, no torch) that builds and grades in seconds."""

from __future__ import annotations

import importlib.util
import textwrap
import types
from pathlib import Path

import pytest

from dlcourse.instructor.course import Course, load_course

DEMO_SOURCE = textwrap.dedent('''\
    # %% [markdown]
    # # Demo assignment
    # Write `double`.

    # %%
    import math

    # %% solution="double"
    def double(x):
        ### BEGIN SOLUTION
        return 2 * x  # the distinctive solution line
        ### END SOLUTION

    # %% tests="test_double" points=2
    assert double(2) == 4, "double(2) should be 4"
    ### BEGIN HIDDEN TESTS
    assert double(-3.5) == -7.0, "the hidden negative-number test"
    ### END HIDDEN TESTS

    # %% [markdown] answer="why_double" points=1
    # Why does doubling commute with addition?
    #
    # ### BEGIN SOLUTION
    # Because multiplication distributes over addition in every ring.
    # ### END SOLUTION
    ''')

DEMO_MUTANTS = textwrap.dedent('''\
    [double.adds-two]
    find = "2 * x"
    replace = "x + 2"

    [double.negatives-wrong]
    find = "return 2 * x"
    replace = "return abs(2 * x)"
    ''')


def load_benchmark(name: str) -> types.ModuleType:
    """A script of benchmarks/ as a module, for tests of what it reads or generates."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_course(root: Path, source: str = DEMO_SOURCE, name: str = "99_demo") -> Course:
    (root / "pyproject.toml").write_text(
        '[tool.dlcourse]\nrepository = "example/course"\nref = "v1"\n', encoding="utf-8"
    )
    folder = root / "notebooks" / name
    folder.mkdir(parents=True)
    (folder / f"{name}.py").write_text(source, encoding="utf-8")
    course = load_course(root)
    course.mutants_path(name).parent.mkdir(parents=True)
    course.mutants_path(name).write_text(DEMO_MUTANTS, encoding="utf-8")
    return course


@pytest.fixture(scope="session")
def template():
    """One kernel template for the session, as `dlcourse grade` and `dlcourse check` hold one per command."""
    from dlcourse.instructor.grading.template import Template

    with Template() as shared:
        yield shared


@pytest.fixture
def demo_course(tmp_path: Path) -> Course:
    return make_course(tmp_path)
