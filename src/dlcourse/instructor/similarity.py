"""`dlcourse similarity ASSIGNMENT SUBMISSIONS`: pairs of submissions whose own code is alike.
Runs in the instructor's process; nothing is executed and nothing leaves the machine.

The comparison is copydetect's (https://pypi.org/project/copydetect/): winnowing fingerprints, as
MOSS computes them (Schleimer, Wilkerson, Aiken, SIGMOD 2003), over Python tokens in which every
identifier is one token (V), every function name another (F), strings one (S), and comments and
whitespace are gone. So renamed variables, changed comments, reformatting and cells split or joined
change nothing, and because a document is compared as a *set* of fingerprints, reordered functions
match too. What this module adds is what "the student's own code" means in a notebook:

- only code cells count; the instructor's test cells (by role, or by content) never do;
- every line of the starter notebook (assignments/NN/NN.ipynb) and of the source's test cells
  (hidden tests too) is removed, and what is left is fingerprinted with the starter as copydetect's
  boilerplate: the starter code alone scores nothing;
- a match must be at least `noise` characters of filtered code (about two statements): one-line
  answers never count on their own; a fingerprint that more than `common` of the batch share (the
  obvious way to write something, MOSS's -m) is dropped too;
- a submission with too little code of its own is listed as not compared, with the reason.

A pair's similarity is the mean of the two shares of their own code that matched (both shares are
reported). Pairs are first found through shared fingerprints (a sparse product, one pass), and only
those with any chance of reaching the threshold are compared in full.
"""

from __future__ import annotations

import html
import io
import shutil
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlcourse import tables
from dlcourse.instructor.cells import graded_cells, role, strip_markers
from dlcourse.instructor.course import Course, CourseError

DEFAULT_THRESHOLD = 0.5
NOISE = 25  # k: the shortest match (characters of filtered code) that counts
GUARANTEE = 30  # every match this long is found (winnowing window = GUARANTEE - NOISE + 1)
COMMON = 0.2  # fingerprints in more than this share of the batch (and in more than MIN_COMMON) are dropped
MIN_COMMON = 10
MIN_OWN = 40  # fewer characters of filtered own code than this: not compared


@dataclass
class Document:
    student: str
    code: str  # the student's own code, as shown in the report
    fingerprint: object | None = None  # copydetect.CodeFingerprint


@dataclass
class Pair:
    a: str
    b: str
    similarity: float  # mean of share_a and share_b
    share_a: float  # share of a's own code found in b
    share_b: float
    matched: int  # characters of filtered code in common
    slices_a: np.ndarray = field(repr=False, default=None)
    slices_b: np.ndarray = field(repr=False, default=None)


@dataclass
class SimilarityResult:
    assignment: str
    pairs: list[Pair]  # at or above the threshold, most similar first
    compared: list[str]
    not_compared: dict[str, str]  # student -> reason
    threshold: float
    documents: dict[str, Document] = field(repr=False, default_factory=dict)


def _lines(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines() if line.strip()}


def instructor_text(starter, source) -> tuple[set[str], str]:
    """The lines a submission shares with the course by construction (starter code, visible and hidden
    tests), and the same as one text for copydetect's boilerplate."""
    parts = [c.source for c in starter.cells if c.cell_type == "code"]
    parts += [strip_markers(c.source, keep_hidden=True) for c in graded_cells(source, "tests")]
    text = "\n".join(parts)
    return _lines(text), text


def own_code(nb, instructor_lines: set[str], test_texts: set[str]) -> str:
    """A submission's own code: its code cells but the tests, minus every instructor line, magics
    and shell escapes."""
    kept = []
    for cell in nb.cells:
        if cell.get("cell_type") != "code" or role(cell) == "tests":
            continue
        if cell.source.strip() in test_texts:  # a test cell whose metadata an editor dropped
            continue
        lines = [line for line in cell.source.splitlines()
                 if line.strip() and line.strip() not in instructor_lines and not line.lstrip().startswith(("%", "!"))]
        if lines:
            kept.append("\n".join(lines))
    return "\n\n".join(kept)


def _stable_kgram_hashes(string: str, k: int) -> np.ndarray:
    """copydetect's k-gram hashes with a hash that is the same in every process (it uses Python's
    hash(), salted per process: the same batch would rank a little differently on each run)."""
    data = [string[i:i + k].encode() for i in range(len(string) - k + 1)]
    return np.array([(zlib.crc32(d) << 31) ^ zlib.adler32(d) for d in data], dtype=np.int64)


def _use_stable_hashes() -> None:
    import copydetect.utils

    copydetect.utils.hashed_kgrams = _stable_kgram_hashes


def _fingerprint(code: str, boilerplate: np.ndarray, noise: int, guarantee: int):
    from copydetect import CodeFingerprint

    return CodeFingerprint("own_code.py", noise, guarantee - noise + 1, boilerplate=boilerplate,
                           language="python", fp=io.StringIO(code))


def _drop(fingerprint, hashes: set, noise: int) -> None:
    """Remove `hashes` from a fingerprint (copydetect's documented attributes) and recount its coverage."""
    from copydetect.utils import get_token_coverage

    fingerprint.hashes -= hashes
    for h in hashes:
        fingerprint.hash_idx.pop(h, None)
    fingerprint.token_coverage = get_token_coverage(fingerprint.hash_idx, noise, len(fingerprint.filtered_code))


def compare(students: dict[str, str], boilerplate_text: str = "", threshold: float = DEFAULT_THRESHOLD,
            noise: int = NOISE, guarantee: int = GUARANTEE, common: float = COMMON) -> tuple[list[Pair], dict, dict]:
    """Compare own-code texts pairwise: (pairs at or above `threshold` ranked, documents, not compared)."""
    from copydetect import CodeFingerprint, compare_files

    _use_stable_hashes()
    boilerplate = np.array(sorted(CodeFingerprint("starter.py", noise, 1, language="python",
                                                  fp=io.StringIO(boilerplate_text)).hashes)) \
        if boilerplate_text.strip() else np.array([])
    documents: dict[str, Document] = {}
    not_compared: dict[str, str] = {}
    for student, code in students.items():
        fingerprint = _fingerprint(code, boilerplate, noise, guarantee)
        if fingerprint.token_coverage < MIN_OWN:
            not_compared[student] = "too little code of their own to compare (the starter code alone, or one-liners)"
            continue
        documents[student] = Document(student, code, fingerprint)

    names = sorted(documents)
    index: dict[int, int] = {}
    rows, cols = [], []
    for i, name in enumerate(names):
        for h in documents[name].fingerprint.hashes:
            rows.append(i)
            cols.append(index.setdefault(h, len(index)))
    if len(names) < 2:
        return [], documents, not_compared
    from scipy.sparse import csr_matrix

    matrix = csr_matrix((np.ones(len(rows), dtype=np.int32), (rows, cols)), shape=(len(names), len(index)))
    frequency = np.asarray(matrix.sum(axis=0)).ravel()
    limit = max(MIN_COMMON, common * len(names))
    if (frequency > limit).any():
        by_id = np.empty(len(index), dtype=object)
        for h, j in index.items():
            by_id[j] = h
        frequent = set(by_id[frequency > limit])
        keep = np.flatnonzero(frequency <= limit)
        matrix = matrix[:, keep]
        for name in names:
            _drop(documents[name].fingerprint, frequent, noise)
    sizes = np.asarray(matrix.sum(axis=1)).ravel().astype(float)
    shared = (matrix @ matrix.T).toarray().astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        rough = 0.5 * (shared / sizes[:, None] + shared / sizes[None, :])
    rough = np.nan_to_num(rough)
    # Shared fingerprints estimate the share of matched code; only a pair within reach of the threshold is
    # compared in full (copydetect's compare_files, which also finds the matching regions).
    candidates = np.argwhere(np.triu(rough >= 0.5 * threshold, k=1))
    pairs = []
    for i, j in candidates:
        a, b = documents[names[i]], documents[names[j]]
        if a.fingerprint.token_coverage == 0 or b.fingerprint.token_coverage == 0:
            continue
        matched, (share_a, share_b), (slices_a, slices_b) = compare_files(a.fingerprint, b.fingerprint)
        similarity = 0.5 * (float(share_a) + float(share_b))
        if similarity >= threshold:
            pairs.append(Pair(a.student, b.student, similarity, float(share_a), float(share_b), int(matched),
                              slices_a, slices_b))
    pairs.sort(key=lambda p: (-p.similarity, -p.matched, p.a, p.b))
    return pairs, documents, not_compared


def find_similar(course: Course, assignment: str, submissions: Path, threshold: float = DEFAULT_THRESHOLD,
                 **options) -> SimilarityResult:
    """Read every submission of `assignment`, remove what the course gave them, compare the rest."""
    import nbformat

    from dlcourse.instructor.source import read_source
    from dlcourse.instructor.grading.submissions import SubmissionError, find_submissions, read_submission

    course.resolve([assignment])
    starter_path = course.student_path(assignment)
    if not starter_path.exists():
        raise CourseError(f"{starter_path}: the student notebook is missing; run `dlcourse build {assignment}`")
    starter = nbformat.read(str(starter_path), as_version=4)
    source = read_source(course.source_path(assignment))
    lines, text = instructor_text(starter, source)
    test_texts = {c.source.strip() for c in graded_cells(starter, "tests")}
    scratch = Path(tempfile.mkdtemp(prefix="dlcourse-similarity-"))
    try:
        try:
            found = find_submissions(Path(submissions), assignment, scratch)
        except SubmissionError as error:
            raise CourseError(str(error)) from None
        if not found:
            raise CourseError(f"{submissions}: no submissions of {assignment} found")
        codes: dict[str, str] = {}
        unreadable: dict[str, str] = {}
        for submission in found:
            nb, reason = read_submission(submission.notebook)
            if nb is None:
                unreadable[submission.student] = reason
            else:
                codes[submission.student] = own_code(nb, lines, test_texts)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    pairs, documents, not_compared = compare(codes, text, threshold, **options)
    not_compared.update(unreadable)
    return SimilarityResult(assignment, pairs, sorted(documents), dict(sorted(not_compared.items())), threshold,
                            documents)


def format_table(result: SimilarityResult, limit: int = 50) -> str:
    lines = [f"{result.assignment}: {len(result.compared)} submission(s) compared, "
             f"{len(result.pairs)} pair(s) at or above {result.threshold:.0%} similar"]
    if result.pairs:
        rows = [(str(rank), p.a, p.b, f"{p.similarity:.0%}", f"{p.share_a:.0%} / {p.share_b:.0%}", str(p.matched))
                for rank, p in enumerate(result.pairs[:limit], 1)]
        lines += tables.format_table(("rank", "student", "student", "similar", "shares", "matched"), rows)
        if len(result.pairs) > limit:
            lines.append(f"... and {len(result.pairs) - limit} more (see the report)")
    for student, reason in result.not_compared.items():
        lines.append(f"not compared: {student}: {reason}")
    return "\n".join(lines)


STYLE = """body{font-family:system-ui,sans-serif;margin:1.5em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}.side{display:flex;gap:1em}
.side>div{flex:1;min-width:0}pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:12px}
mark{background:#ffd54f}"""


def _highlighted(code: str, slices) -> str:
    """The code, html-escaped, with every matched region in <mark>."""
    out, position = [], 0
    if slices is not None and len(slices) and np.size(slices):
        for start, end in sorted(zip(np.asarray(slices[0]).tolist(), np.asarray(slices[1]).tolist())):
            start, end = max(int(start), position), min(int(end), len(code))
            if end <= start:
                continue
            out.append(html.escape(code[position:start]))
            out.append("<mark>" + html.escape(code[start:end]) + "</mark>")
            position = end
    out.append(html.escape(code[position:]))
    return "".join(out)


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n")


def pair_filename(rank: int, pair: Pair) -> str:
    return f"pair-{rank:03d}-{pair.a}-{pair.b}.html"


def write_report(result: SimilarityResult, folder: Path) -> Path:
    """index.html (the ranked pairs, what was not compared) and one page per pair, side by side."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for rank, pair in enumerate(result.pairs, 1):
        name = pair_filename(rank, pair)
        a, b = result.documents[pair.a], result.documents[pair.b]
        body = (f"<h1>{html.escape(result.assignment)}: {html.escape(pair.a)} and {html.escape(pair.b)}</h1>"
                f"<p>Similarity {pair.similarity:.0%}: {pair.share_a:.0%} of {html.escape(pair.a)}'s own code and "
                f"{pair.share_b:.0%} of {html.escape(pair.b)}'s match ({pair.matched} characters of normalised "
                "code). Matching regions are highlighted; the starter code and the tests are not shown. "
                "Similar code is a reason to look, not a proof.</p><div class='side'>"
                f"<div><h2>{html.escape(pair.a)}</h2><pre>{_highlighted(a.code, pair.slices_a)}</pre></div>"
                f"<div><h2>{html.escape(pair.b)}</h2><pre>{_highlighted(b.code, pair.slices_b)}</pre></div></div>"
                "<p><a href='index.html'>all pairs</a></p>")
        (folder / name).write_text(_page(f"{pair.a} / {pair.b}", body), encoding="utf-8")
        rows.append(f"<tr><td>{rank}</td><td><a href='{html.escape(name)}'>{html.escape(pair.a)} / "
                    f"{html.escape(pair.b)}</a></td><td>{pair.similarity:.0%}</td>"
                    f"<td>{pair.share_a:.0%} / {pair.share_b:.0%}</td><td>{pair.matched}</td></tr>")
    skipped = "".join(f"<li>{html.escape(s)}: {html.escape(r)}</li>" for s, r in result.not_compared.items())
    body = (f"<h1>Similar submissions: {html.escape(result.assignment)}</h1>"
            f"<p>{len(result.compared)} submissions compared; {len(result.pairs)} pairs at or above "
            f"{result.threshold:.0%}. Only the students' own code is compared (starter code and tests removed).</p>"
            "<table><tr><th>rank</th><th>pair</th><th>similarity</th><th>shares</th><th>matched</th></tr>"
            + "".join(rows) + "</table>"
            + (f"<h2>Not compared</h2><ul>{skipped}</ul>" if skipped else ""))
    index = folder / "index.html"
    index.write_text(_page(f"Similar submissions: {result.assignment}", body), encoding="utf-8")
    return index
