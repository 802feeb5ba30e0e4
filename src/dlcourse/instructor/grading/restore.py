"""Put the instructor's graded cells back into a submission before it runs. Runs in the grader process.

Students delete, move, duplicate and retype cells; editors (Colab above all) drop cell ids and
nbgrader metadata. Grading must not punish that, nor let a student rewrite a test:

- **Test cells** always come from the source (one the student edited is put back and flagged
  "test cell X edited: restored", which changes no score). A test is found by its grade id, or by its visible text
  when the metadata is gone; a deleted one goes back after the cell that precedes it in the source (a
  test follows the cell it tests, and often imports what later tests use), never at the end; a
  duplicate is kept once; one moved above the solution it tests goes back below it.
- **Written answers** are the student's text. An answer cell whose metadata is gone (deleted and
  retyped: Colab cannot lock cells) is recognised by its place, the markdown cell right after the
  source cell that precedes the answer, and kept as that answer ("written answer q restored"). A
  deleted one gets an empty answer cell in its place, so that the formgrader shows a grade box, scored
  0 with the comment "written answer q missing".

- **Read-only cells** (nbgrader's ``locked`` cells and task cells) are the instructor's, as in nbgrader:
  one the student edited gets the source's text back ("locked cell X edited: restored"), a deleted one
  goes back after its predecessor ("missing locked cell X restored").
- **An unchanged answer** (still the stub the student was handed: ``YOUR ANSWER HERE``, or the code stub in
  a code cell graded by hand) is no answer: `unchanged_answers` names them, and they score 0, as nbgrader
  scores them.

Cells are placed by their neighbours in the source: a neighbour is matched by cell id, by grade id, or
(ids gone) by its text.
"""

from __future__ import annotations

import copy

from nbformat import NotebookNode

from dlcourse.instructor.cells import (CODE_STUB, graded_cells, grade_id, is_generated, is_locked, nbgrader_metadata,
                                      role, strip_markers)

MISSING_ANSWER_KEY = "dlcourse_missing_answer"  # cell metadata: this answer cell was put in by the grader


def _normalized(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def restore(submission: NotebookNode, source: NotebookNode) -> tuple[NotebookNode, list[str]]:
    """The submission with every test cell taken from the source and every written answer in place;
    returns the notebook (a copy) and flags saying what had to be repaired."""
    nb = copy.deepcopy(submission)
    flags = restore_tests(nb, source) + restore_locked(nb, source) + restore_answers(nb, source)
    return nb, flags


def restore_locked(nb: NotebookNode, source: NotebookNode) -> list[str]:
    """Read-only cells and task cells (not tests: `restore_tests`) from the source, by grade id; edits `nb`."""
    flags: list[str] = []
    locked = {grade_id(c): c for c in source.cells if is_locked(c) and role(c) != "tests"}
    present = set()
    for index, cell in enumerate(nb.cells):
        cell_id = grade_id(cell)
        if cell_id not in locked or cell_id in present:
            continue
        present.add(cell_id)
        original = locked[cell_id]
        if cell.get("cell_type") != original.cell_type or _normalized(cell.get("source", "")) != _normalized(
                original.source):
            flags.append(f"locked cell {cell_id} edited: restored")
            nb.cells[index] = copy.deepcopy(original)
    for cell_id, original in locked.items():
        if cell_id in present:
            continue
        text = _normalized(original.source)
        same = next((c for c in nb.cells if grade_id(c) is None and c.get("cell_type") == original.cell_type
                     and _normalized(c.get("source", "")) == text), None)
        if same is not None:  # its metadata stripped by an editor (Colab): the same cell, not a missing one
            same.metadata["nbgrader"] = copy.deepcopy(original.metadata["nbgrader"])
            continue
        flags.append(f"missing locked cell {cell_id} restored")
        nb.cells.insert(_after_predecessor(nb.cells, source, original), copy.deepcopy(original))
    return flags


def unchanged_answers(nb: NotebookNode, source: NotebookNode) -> set[str]:
    """Grade ids of the answers (written, or code graded by hand) still as the student was handed them:
    the release text nbgrader's ``ClearSolutions`` makes of the source cell, with this course's code stub
    or nbgrader's default one."""
    from nbgrader.preprocessors import ClearSolutions

    answers = {grade_id(c): c for c in graded_cells(source, "answer")}
    if not answers:
        return set()
    handed_out: dict[str, set[str]] = {gid: set() for gid in answers}
    for stub in (CODE_STUB, None):
        release = copy.deepcopy(source)
        release.cells = [copy.deepcopy(c) for c in answers.values()]
        clear = ClearSolutions(code_stub=stub) if stub else ClearSolutions()
        release, _ = clear.preprocess(release, {})
        for cell in release.cells:
            handed_out[grade_id(cell)].add(_normalized(cell.source))
    return {grade_id(c) for c in nb.cells if role(c) == "answer" and grade_id(c) in handed_out
            and _normalized(c.get("source", "")) in handed_out[grade_id(c)]}


def restore_tests(nb: NotebookNode, source: NotebookNode) -> list[str]:
    """Test cells from the source, in place (see the module's docstring); edits `nb`, returns flags."""
    flags: list[str] = []
    source_tests = {grade_id(c): c for c in graded_cells(source, "tests")}
    visible = {gid: _normalized(strip_markers(c.source, keep_hidden=False)) for gid, c in source_tests.items()}
    placed: set[str] = set()
    cells: list[NotebookNode] = []
    for cell in nb.cells:
        cell_grade_id = nbgrader_metadata(cell).get("grade_id")
        if cell_grade_id not in source_tests and cell.get("cell_type") == "code":
            # metadata stripped or rewritten: recognise the test by its visible text
            text = _normalized(cell.get("source", ""))
            cell_grade_id = next((gid for gid, v in visible.items() if v and v == text), cell_grade_id)
            if cell_grade_id in source_tests and cell_grade_id not in placed:
                flags.append(f"test cell {cell_grade_id} recognised by content")
        if cell_grade_id in source_tests:
            if cell_grade_id in placed:
                flags.append(f"duplicate of test cell {cell_grade_id} dropped")
                continue
            placed.add(cell_grade_id)
            if cell.get("cell_type") == "code" and _normalized(cell.get("source", "")) != visible[cell_grade_id]:
                flags.append(f"test cell {cell_grade_id} edited: restored")
            cells.append(copy.deepcopy(source_tests[cell_grade_id]))
            continue
        if role(cell) == "tests":
            flags.append(f"unknown test cell {nbgrader_metadata(cell).get('grade_id')!r} ignored")
            cell.metadata.pop("nbgrader", None)
        cells.append(cell)
    for test_id, test in source_tests.items():
        if test_id not in placed:
            flags.append(f"missing test cell {test_id} restored")
            cells.insert(_after_predecessor(cells, source, test), copy.deepcopy(test))
    # A test moved above the solution it tests goes back below it.
    for test_id, test in source_tests.items():
        before = source.cells[:_source_index(source, test)]
        solutions = [grade_id(c) for c in before if nbgrader_metadata(c).get("solution")]
        if not solutions:
            continue
        anchor = solutions[-1]
        where = {grade_id(c): i for i, c in enumerate(cells) if grade_id(c)}
        if anchor in where and where[test_id] < where[anchor]:
            moved = cells.pop(where[test_id])
            cells.insert(where[anchor], moved)  # the anchor shifted up by one
            flags.append(f"test cell {test_id} moved back below {anchor}")
    nb.cells = cells
    return flags


def restore_answers(nb: NotebookNode, source: NotebookNode) -> list[str]:
    """Written-answer cells recognised by place or put back empty (see the module's docstring); edits `nb`."""
    flags: list[str] = []
    present = {grade_id(c) for c in nb.cells}
    for answer in graded_cells(source, "answer"):
        answer_id = grade_id(answer)
        if answer_id in present:
            continue
        position = _after_predecessor(nb.cells, source, answer, default=None)
        candidate = nb.cells[position] if position is not None and position < len(nb.cells) else None
        if candidate is not None and _is_retyped_answer(candidate, source):
            candidate.metadata["nbgrader"] = copy.deepcopy(answer.metadata["nbgrader"])
            flags.append(f"written answer {answer_id} restored")
            continue
        blank = copy.deepcopy(answer)
        blank.source = "*(no answer: this cell was missing from the submission)*" if answer.cell_type == "markdown" \
            else "# (no answer: this cell was missing from the submission)"
        blank.metadata[MISSING_ANSWER_KEY] = True
        nb.cells.insert(len(nb.cells) if position is None else position, blank)
        flags.append(f"written answer {answer_id} missing")
    return flags


def _is_retyped_answer(cell: NotebookNode, source: NotebookNode) -> bool:
    """A markdown cell with no graded role that is not one of the instructor's cells (the source's, or one
    build adds, such as the self-check's heading): the student's text."""
    if cell.get("cell_type") != "markdown" or role(cell) is not None or is_generated(cell):
        return False
    text = _normalized(cell.get("source", ""))
    return bool(text) and all(text != _normalized(c.source) for c in source.cells if role(c) != "answer")


def _source_index(source: NotebookNode, cell: NotebookNode) -> int:
    return next(i for i, c in enumerate(source.cells) if c is cell)


def _after_predecessor(cells: list[NotebookNode], source: NotebookNode, cell: NotebookNode,
                       default: int | None = -1) -> int | None:
    """Where `cell` of the source goes in `cells`: right after the last of the cells that precede it in the
    source found there (by id, grade id or text); `default` when none is (-1: the end)."""
    before = source.cells[:_source_index(source, cell)]
    ids = {c.get("id") for c in before} - {None}
    grade_ids = {grade_id(c) for c in before} - {None}
    texts = {_normalized(c.source) for c in before if role(c) not in ("solution", "answer")} - {""}
    position = None
    for index, candidate in enumerate(cells):
        if (candidate.get("id") in ids or grade_id(candidate) in grade_ids
                or _normalized(candidate.get("source", "")) in texts):
            position = index + 1
    if position is None:
        return len(cells) if default == -1 else default
    return position
