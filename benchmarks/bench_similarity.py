"""Benchmark of `dlcourse similarity`: a synthetic batch of 01_backprop submissions with planted copies.

    python benchmarks/bench_similarity.py [--count 500] [--copies 10] [--keep DIR]

Honest students: the reference solution, each of their own lines rewritten at random in one of the
ways people write the same thing differently (a temporary, a swapped operand, `x = x + y` for
`x += y`, a check or a print of their own, parentheses): pairs of honest students share the
obvious lines and little else. A planted copy: an honest student's notebook with every variable of
their own renamed, the two functions of each cell swapped, the comments changed and one cell split
in two. Prints the time and the pairs found, and whether each planted copy was found and ranked above
every honest pair. Also imported by tests/test_similarity.py (`synthetic_batch`).
"""

from __future__ import annotations

import argparse
import copy
import random
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "01_backprop"
ASSIGN = re.compile(r"^(?P<indent>\s*)(?P<target>[A-Za-z_][A-Za-z_0-9]*)\s*=\s*(?P<value>[^=].*)$")
AUGMENTED = re.compile(r"^(?P<indent>\s*)(?P<target>[A-Za-z_][A-Za-z_0-9.]*)\s*\+=\s*(?P<value>.+)$")
IDENTIFIER = re.compile(r"\b[A-Za-z_][A-Za-z_0-9]*\b")


def _rewrite(line: str, rng: random.Random, serial: list[int]) -> list[str]:
    """One line of a solution as one student might write it."""
    indent = line[: len(line) - len(line.lstrip())]
    body = line.strip()
    if body.startswith("return ") and rng.randrange(2):
        # students name what they return as often as not (more exercises made two honest ones too alike)
        serial[0] += 1
        return [f"{indent}result_{serial[0]} = {body[len('return '):]}", f"{indent}return result_{serial[0]}"]
    if not body or body.startswith(("#", '"', "def ", "class ", "return", "for ", "if ", "@")):
        return [line]
    serial[0] += 1
    choice = rng.randrange(6)
    assign, augmented = ASSIGN.match(line), AUGMENTED.match(line)
    if choice == 0 and assign:
        temporary = f"t{serial[0]}"
        return [f"{indent}{temporary} = {assign['value']}", f"{indent}{assign['target']} = {temporary}"]
    if choice == 1 and augmented:
        return [f"{indent}{augmented['target']} = {augmented['target']} + ({augmented['value']})"]
    if choice == 2 and assign:
        return [f"{indent}{assign['target']} = ({assign['value']})", f"{indent}assert {assign['target']} is not None"]
    if choice == 3:
        return [line, f"{indent}print('check', {rng.randrange(10**6)}, {rng.randrange(100)})"]
    if choice == 4 and assign:
        return [f"{indent}{assign['target']} = {assign['value']} if True else None"]
    return [line]


def honest_solution(text: str, starter_lines: set[str], rng: random.Random, serial: list[int]) -> str:
    """A solution cell rewritten line by line (the lines the starter already has stay as they are)."""
    out: list[str] = []
    for line in text.splitlines():
        out.extend([line] if line.strip() in starter_lines else _rewrite(line, rng, serial))
    return "\n".join(out)


def _swap_functions(text: str) -> str:
    """The top-level functions of a cell in reverse order (what a copier moving code around does)."""
    blocks = re.split(r"\n(?=def |class )", text)
    head = [b for b in blocks if not b.startswith(("def ", "class "))]
    defs = [b for b in blocks if b.startswith(("def ", "class "))]
    tail = []
    if defs and "\n\n\n" not in defs[-1] and re.search(r"\n[A-Za-z]", defs[-1]):
        last, _, rest = defs[-1].partition("\n\n\n")
        defs[-1], tail = last, [rest] if rest else []
    return "\n".join(head + defs[::-1] + tail)


def planted_copy(nb, starter_lines: set[str], rng: random.Random):
    """A copy of `nb`: own variables renamed, functions of each cell swapped, comments changed, a cell split."""
    from dlcourse.instructor.cells import role

    nb = copy.deepcopy(nb)
    keep = set(dir(__builtins__)) | {"self", "np", "nn", "F", "torch", "config", "cache", "out", "other", "Value",
                                     "as_value", "unbroadcast", "params", "grads", "affine_forward", "relu_forward",
                                     "affine_backward", "relu_backward", "softmax_cross_entropy"}
    cells = []
    split_done = False
    for cell in nb.cells:
        if cell.cell_type != "code" or role(cell) != "solution":
            cells.append(cell)
            continue
        lines = []
        for line in cell.source.splitlines():
            if line.strip() and line.strip() not in starter_lines:
                line = IDENTIFIER.sub(lambda m: m.group(0) if m.group(0) in keep or
                                      m.group(0) in ("if", "else", "for", "in", "not", "is", "None", "True", "and",
                                                     "or", "return", "assert", "print", "range", "len", "float",
                                                     "lambda", "def", "class", "import", "from", "while")
                                      else "my_" + m.group(0), line)
                if "#" in line:
                    line = line.split("#")[0].rstrip() + "  # my own note"
            lines.append(line)
        text = _swap_functions("\n".join(lines))
        if not split_done and text.count("\ndef ") >= 1:
            first, _, second = text.partition("\ndef ")
            cell.source = first
            extra = nbformat.v4.new_code_cell("def " + second)
            cells.extend([cell, extra])
            split_done = True
        else:
            cell.source = text
            cells.append(cell)
    nb.cells = cells
    return nb


def synthetic_batch(count: int, copies: int, seed: int = 0) -> tuple[dict[str, object], list[tuple[str, str]]]:
    """student id -> notebook, and the planted (original, copy) pairs."""
    sys.path.insert(0, str(ROOT / "src"))
    from dlcourse.instructor.authoring.check import solved_notebook
    from dlcourse.instructor.source import read_source
    from dlcourse.instructor.cells import solution_texts
    from dlcourse.instructor.course import load_course

    course = load_course(ROOT)
    source = read_source(course.source_path(ASSIGNMENT))
    starter = nbformat.read(str(course.student_path(ASSIGNMENT)), as_version=4)
    starter_lines = {line.strip() for c in starter.cells for line in c.source.splitlines() if line.strip()}
    solutions = solution_texts(source)
    rng = random.Random(seed)
    batch: dict[str, object] = {}
    honest = count - copies
    for index in range(honest):
        serial = [0]
        replace = {gid: honest_solution(text, starter_lines, rng, serial) for gid, text in solutions.items()}
        batch[f"s{index:04d}"] = solved_notebook(starter, source, replace)
    planted = []
    for index in range(copies):
        original = f"s{rng.randrange(honest):04d}"
        name = f"c{index:04d}"
        batch[name] = planted_copy(batch[original], starter_lines, rng)
        planted.append((original, name))
    return batch, planted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--keep", type=Path, default=None, help="write the batch and the report here")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from dlcourse.instructor.course import load_course
    from dlcourse.instructor.similarity import find_similar, format_table, write_report

    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-similarity-"))
    batch, planted = synthetic_batch(args.count, args.copies)
    (folder / "submissions").mkdir(parents=True, exist_ok=True)
    for student, nb in batch.items():
        nbformat.write(nb, str(folder / "submissions" / f"{student}.ipynb"))
    started = time.perf_counter()
    result = find_similar(load_course(ROOT), ASSIGNMENT, folder / "submissions")
    compared = time.perf_counter() - started
    write_report(result, folder / "report")
    total = time.perf_counter() - started
    print(format_table(result, limit=15))
    found = {frozenset((p.a, p.b)): rank for rank, p in enumerate(result.pairs, 1)}
    honest_ranks = [rank for rank, p in enumerate(result.pairs, 1) if not (p.a.startswith("c") or p.b.startswith("c"))]
    first_honest = min(honest_ranks) if honest_ranks else None
    hits = [found.get(frozenset(pair)) for pair in planted]
    print(f"\n{len(batch)} submissions ({args.copies} planted copies): compared in {compared:.1f} s, "
          f"with the HTML report {total:.1f} s")
    print(f"pairs found: {len(result.pairs)}; planted copies found: {sum(h is not None for h in hits)}/{len(planted)} "
          f"(ranks {sorted(h for h in hits if h)}); first honest pair at rank {first_honest}")
    return 0 if all(hits) and (first_honest is None or max(hits) < first_honest) else 1


if __name__ == "__main__":
    sys.exit(main())
