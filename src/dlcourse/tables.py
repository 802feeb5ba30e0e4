"""Plain-text tables for the terminal (dlcourse check, dlcourse grade): one formatter."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def format_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """The table's lines: every column as wide as its widest cell, a dashed line under the header."""
    table = [tuple(header), *(tuple(row) for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines
