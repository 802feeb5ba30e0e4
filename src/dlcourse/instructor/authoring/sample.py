"""A sample batch of submissions of one assignment, for demos and benchmarks:
the solution, the blank student notebook, partly right ones (each mutant in
autograder/NN_name/mutants.toml applied), and, unless asked not to, a broken
file and a notebook whose metadata an editor stripped. Runs in the `dlcourse sample` process
(it grades nothing).

    dlcourse sample 00_setup /tmp/sample && dlcourse grade 00_setup /tmp/sample
"""

from __future__ import annotations

import copy
import itertools
from pathlib import Path

import nbformat

from dlcourse.instructor.authoring.build import student_notebook
from dlcourse.instructor.authoring.check import executed_outputs, find_mutants, solved_notebook
from dlcourse.instructor.source import read_source
from dlcourse.instructor.cells import solution_texts
from dlcourse.instructor.course import Course


def sample_notebooks(course: Course, assignment: str, count: int | None = None, broken: bool = True) -> dict:
    """student id -> notebook (or raw text for a broken file): solutions, blanks and mutants, in turn."""
    source = read_source(course.source_path(assignment))
    student = student_notebook(course, assignment, source)
    outputs = executed_outputs(course, assignment)  # handed in after Run All: a project's record is in them
    solution = solved_notebook(student, source, outputs=outputs)
    solutions = solution_texts(source)
    mutants = [(m.name, solved_notebook(student, source, {m.grade_id: m.apply(solutions[m.grade_id])}, outputs))
               for m in find_mutants(course, assignment, source)]
    kinds = [("solution", solution), ("blank", student)] + [(f"mutant-{n}", nb) for n, nb in mutants]
    out: dict[str, object] = {}
    total = count or len(kinds)
    for index, (kind, nb) in zip(range(total), itertools.cycle(kinds)):
        out[f"s{index:03d}-{kind}"] = nb
    if broken:
        out["zz-broken-json"] = '{"cells": [ {"cell_type": "code", "source": "trunc'
        stripped = copy.deepcopy(solution)
        for cell in stripped.cells:
            cell.metadata = {}
        out["zz-metadata-stripped"] = stripped
    return out


def write_sample_batch(course: Course, assignment: str, folder: Path, count: int | None = None,
                       broken: bool = True) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for student, nb in sample_notebooks(course, assignment, count, broken).items():
        path = folder / f"{student}.ipynb"
        if isinstance(nb, str):
            path.write_text(nb, encoding="utf-8")
        else:
            nbformat.write(nb, str(path))
        paths.append(path)
    return paths

