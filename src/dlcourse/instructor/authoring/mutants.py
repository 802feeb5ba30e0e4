"""Mutants: known-wrong versions of solution cells, written as exact edits of the current solution.

`autograder/NN_name/mutants.toml` holds every mutant of one assignment, one TOML table each, named
`<solution id>.<what is wrong>`. A mutant of one edit of that cell's solution (markers and hidden tests
removed) says what to find and its replacement:

    [relu.backward-ignores-mask]
    find = "dout * (x > 0)"
    replace = "dout"

A mutant of several edits lists them, applied in order: `edits = [{ find = "...", replace = "..." }, ...]`.
So a header written twice is always a copied mutant whose name was not changed (never a second edit),
and fails in one line instead of TOML merging the two.

`count` (default 1) is how many times `find` must occur; every occurrence is replaced. An edit that
no longer matches the solution is an error naming the mutant and the text it looked for, so a
mutant cannot drift away from the solution it breaks.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from dlcourse.instructor.source import SourceError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

EDIT_KEYS = {"find", "replace", "count"}


class MutantError(SourceError):
    """A mutant that cannot be applied to the current solution; the message names it."""


@dataclass(frozen=True)
class Edit:
    find: str
    replace: str
    count: int = 1


@dataclass(frozen=True)
class Mutant:
    grade_id: str  # the solution cell it breaks
    name: str  # what is wrong
    edits: tuple[Edit, ...]

    @property
    def label(self) -> str:
        return f"{self.grade_id}.{self.name}"

    def apply(self, solution: str) -> str:
        """The solution of the cell with every edit made; MutantError when one does not match."""
        code = solution
        for number, edit in enumerate(self.edits, start=1):
            found = code.count(edit.find)
            if found != edit.count:
                raise MutantError(
                    f"mutant {self.label}: edit {number} looks for {edit.find!r} {edit.count} time(s) "
                    f"in the solution of {self.grade_id}, found {found}; update it in mutants.toml"
                )
            code = code.replace(edit.find, edit.replace)
        if code == solution:
            raise MutantError(f"mutant {self.label}: its edits leave the solution of {self.grade_id} unchanged")
        try:
            compile(code, self.label, "exec")
        except SyntaxError as error:
            raise MutantError(f"mutant {self.label}: the edited cell is not valid Python ({error})") from None
        return code


def read_mutants(path: Path, solution_ids: set[str]) -> list[Mutant]:
    """The mutants in one mutants.toml ([] when there is none); SourceError on a malformed one."""
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    _check_one_header_per_mutant(path, text)
    try:
        spec = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SourceError(f"{path}: not valid TOML ({error})") from None
    mutants = []
    for grade_id, by_name in spec.items():
        if grade_id not in solution_ids:
            raise SourceError(
                f"{path}: [{grade_id}.<what is wrong>] names no solution cell; "
                f"solution ids: {', '.join(sorted(solution_ids))}"
            )
        if not isinstance(by_name, dict):
            raise SourceError(f"{path}: {grade_id} must be tables [{grade_id}.<what is wrong>], not a value")
        for name, table in by_name.items():
            label = f"{grade_id}.{name}"
            if not isinstance(table, dict):
                raise SourceError(f"{path}: mutant {label} must be a table [{label}] with find = \"...\" and "
                                  "replace = \"...\" (or edits = [{ find = \"...\", replace = \"...\" }, ...])")
            edits = _edits(path, label, table)
            if len(set(edits)) < len(edits):
                raise SourceError(f"{path}: mutant {label} has the same edit twice in its edits; remove the copy")
            mutants.append(Mutant(grade_id, name, edits))
    return mutants


HEADER = re.compile(r"^(\[\[?)\s*(.+?)\s*\]\]?\s*(#.*)?$")
MULTILINE_QUOTE = re.compile(r"'''|\"\"\"")


def _check_one_header_per_mutant(path: Path, text: str) -> None:
    """Every mutant has one table header. One written again is a copied mutant whose name was not changed
    (TOML would refuse it, in a message that does not say so); `[[...]]` is the old form, a table per edit,
    in which a header copied right below its original silently made the two mutants one."""
    seen: dict[str, int] = {}
    in_string = None  # the quote of the multi-line string a line is in
    for number, line in enumerate(text.splitlines(), start=1):
        match = HEADER.match(line) if in_string is None else None
        if match:
            label = re.sub(r"""\s*\.\s*""", ".", match.group(2)).replace('"', "").replace("'", "")
            if match.group(1) == "[[":
                raise SourceError(
                    f"{path}, line {number}: [[{label}]] is the old form (a table per edit); write one table per "
                    f"mutant, [{label}] with find = \"...\" and replace = \"...\", or for several edits "
                    f"edits = [{{ find = \"...\", replace = \"...\" }}, ...]")
            if label in seen:
                raise SourceError(
                    f"{path}, line {number}: [{label}] again (first at line {seen[label]}): a copied mutant? "
                    "Give it its own name; the edits of one mutant go in one edits = [...]")
            seen[label] = number
        for quote in MULTILINE_QUOTE.findall(line):
            if in_string is None:
                in_string = quote
            elif in_string == quote:
                in_string = None


def _edits(path: Path, label: str, table: dict) -> tuple[Edit, ...]:
    """A mutant's table: one edit (find, replace, count) or several (edits = [...])."""
    if "edits" not in table:
        return (_edit(path, label, table),)
    edits = table["edits"]
    if set(table) != {"edits"}:
        raise SourceError(f"{path}: mutant {label} has edits = [...] and also "
                          f"{', '.join(sorted(set(table) - {'edits'}))}; put every edit in edits")
    if not isinstance(edits, list) or not edits or not all(isinstance(e, dict) for e in edits):
        raise SourceError(f"{path}: mutant {label}: edits must be a list of edits, "
                          "edits = [{ find = \"...\", replace = \"...\" }, ...]")
    return tuple(_edit(path, label, e) for e in edits)


def _edit(path: Path, label: str, table: dict) -> Edit:
    unknown = set(table) - EDIT_KEYS
    if unknown or "find" not in table or "replace" not in table:
        raise SourceError(
            f"{path}: an edit of mutant {label} has find = \"...\", replace = \"...\" and optionally count = N; "
            f"it has {', '.join(sorted(table)) or 'nothing'}"
        )
    find, replace, count = table["find"], table["replace"], table.get("count", 1)
    if not isinstance(find, str) or not find or not isinstance(replace, str):
        raise SourceError(f"{path}: mutant {label}: find must be non-empty text and replace text")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise SourceError(f"{path}: mutant {label}: count = {count!r} must be a positive whole number")
    return Edit(find, replace, count)
