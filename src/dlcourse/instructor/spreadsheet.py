"""CSV files an instructor opens in a spreadsheet: no cell a student controls can be a formula.

Runs in the instructor's process (grade, report, export). Excel, LibreOffice and Google Sheets read a
cell that starts with `=`, `+`, `-` or `@` (or a tab or carriage return before one) as a formula, so a
failure message, a name from an LMS zip or a flag could compute, link or exfiltrate in the grader's
spreadsheet (OWASP "CSV Injection"). Such a text gets a leading apostrophe, which spreadsheets show as
text and LMS importers keep as part of the value; numbers such as `-0.5` stay numbers.
"""

from __future__ import annotations

import csv
from typing import Any, Iterable, TextIO

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """`value` unchanged unless it is text a spreadsheet would read as a formula: then "'" + value."""
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS):
        return value
    try:
        float(value)
        return value  # a plain number such as -1.5
    except ValueError:
        return "'" + value


class SafeWriter:
    """csv.writer with every cell passed through safe_cell."""

    def __init__(self, f: TextIO, **kwargs: Any):
        self._writer = csv.writer(f, **kwargs)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([safe_cell(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)
