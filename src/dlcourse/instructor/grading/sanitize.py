"""Make a graded notebook safe to open: nothing a student wrote may run in a TA's or an instructor's
browser. Runs in the grader process, on the executed notebook, before it is written to autograded/
(what nbgrader's formgrader renders inside the instructor's Jupyter session) and before its feedback
page is made.

A student controls markdown cells (written answers included) and every output. Rendered as they are,
`<img src=x onerror=...>`, `<script>`, `<svg onload=...>`, `<iframe srcdoc=...>`, a `javascript:` link
or a widget's HTML would run as the TA, with the TA's Jupyter session. So:

- markdown and HTML outputs are read with the standard library's HTML parser (markdown whole, code spans
  and math included: stricter than any renderer, and no honest cell of the course trips it); markup that can run
  code (a tag outside the allow-list below, an `on...` attribute, a `javascript:`/`vbscript:` or
  non-image `data:` URL, `srcdoc`, `formaction`) makes the whole cell or output be shown as text: a
  markdown cell becomes a note and the student's text in a code block, an HTML output becomes a
  `<pre>` of its source. Honest content (tables, images, headings, LaTeX, pandas' styled tables) is
  left byte for byte as it was;
- an SVG output (an SVG document can hold scripts) is shown through `<img src="data:image/svg+xml...">`,
  where browsers never run its scripts; JavaScript outputs are dropped, and so are widget views and
  the widget state (the page would otherwise load widget code that writes HTML); each keeps its text
  fallback.

The grade does not change: this only decides how the notebook is shown. Markup shown as text is
returned, so the grader can flag the submission; dropping scripts, widgets and inline SVG is silent
(an honest notebook has them: a tqdm bar, a plot saved as SVG).
"""

from __future__ import annotations

import base64
import copy
import html
import re
from html.parser import HTMLParser

from nbformat import NotebookNode

SAFE_TAGS = frozenset("""
a abbr b bdi bdo blockquote br caption center cite code col colgroup dd del details dfn div dl dt em
figcaption figure font h1 h2 h3 h4 h5 h6 hr i img ins kbd li mark ol p pre q s samp small span strike
strong style sub summary sup table tbody td tfoot th thead time tr tt u ul var wbr
""".split())
# Every element name a browser gives a meaning to (HTML's, obsolete ones included, and the roots of SVG
# and MathML). A name outside it with no attribute and no hyphen, such as a tokenizer's `<eos>` or
# `<pad>` in a lesson's text, is an HTMLUnknownElement: inert, so it is left alone. A hyphen could name a
# custom element that a page script defines, so such a name is never let through.
KNOWN_ELEMENTS = frozenset("""
a abbr acronym address applet area article aside audio b base basefont bdi bdo bgsound big blink
blockquote body br button canvas caption center cite code col colgroup data datalist dd del details dfn
dialog dir div dl dt em embed fieldset figcaption figure font footer form frame frameset h1 h2 h3 h4 h5 h6
head header hgroup hr html i iframe image img input ins isindex kbd keygen label legend li link listing
main map mark marquee math menu menuitem meta meter multicol nav nextid nobr noembed noframes noscript
object ol optgroup option output p param picture plaintext portal pre progress q rb rp rt rtc ruby s samp
script search section select slot small source spacer span strike strong style sub summary sup svg table
tbody td template textarea tfoot th thead time title tr track tt u ul var video wbr xmp
""".split())
URL_ATTRIBUTES = frozenset({"href", "src", "xlink:href", "action", "background", "poster", "cite", "longdesc",
                            "dynsrc", "lowsrc", "data", "codebase", "usemap"})
ACTIVE_ATTRIBUTES = frozenset({"srcdoc", "formaction"})
SAFE_IMAGE_DATA = re.compile(r"data:image/(png|jpeg|gif|webp|svg\+xml)[;,]", re.IGNORECASE)
SCRIPT_URL = re.compile(r"^(javascript|vbscript|data|livescript|mocha):", re.IGNORECASE)
DROPPED_OUTPUT_TYPES = ("application/javascript", "text/javascript", "application/vnd.jupyter.widget-view+json",
                        "application/vnd.jupyter.widget-state+json")


class _ActiveMarkup(HTMLParser):
    """Collects why a piece of HTML could run code (empty: it cannot)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        inert = not attrs and tag.isalnum() and tag not in KNOWN_ELEMENTS
        if tag not in SAFE_TAGS and not inert:
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            name = name.lower()
            # browsers ignore whitespace and control characters inside a URL's scheme
            url = re.sub(r"[\x00-\x20]+", "", value or "")
            if name.startswith("on") or name in ACTIVE_ATTRIBUTES:
                self.problems.append(f"{name}= on <{tag}>")
            elif name in URL_ATTRIBUTES and SCRIPT_URL.match(url) and not (
                    tag == "img" and name == "src" and SAFE_IMAGE_DATA.match(url)):
                self.problems.append(f"{name}={url[:20]}... on <{tag}>")
            elif name == "style" and re.search(r"expression\s*\(|javascript:", value or "", re.IGNORECASE):
                self.problems.append(f"script in the style of <{tag}>")

    handle_startendtag = handle_starttag


def active_html(text: str) -> list[str]:
    """Why the HTML `text` could run code in a browser; [] when it cannot."""
    parser = _ActiveMarkup()
    parser.feed(text)
    parser.close()
    return parser.problems


def active_markup(text: str, markdown: bool = True) -> list[str]:
    """Why `text` (markdown with HTML in it; with markdown=False an HTML output, which MathJax also reads)
    could run code in a browser; [] when it cannot."""
    problems = active_html(text)
    # a markdown link or image whose target is a script URL: [x](javascript:...), ![x](vbscript:...), and
    # a reference definition: [x][1] ... [1]: javascript:...
    targets = re.findall(r"\]\(\s*<?([^)\s>]*)", text) + re.findall(r"(?m)^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", text)
    for target in targets if markdown else []:
        url = re.sub(r"[\x00-\x20]+", "", html.unescape(target))
        if SCRIPT_URL.match(url) and not SAFE_IMAGE_DATA.match(url):
            problems.append(f"a markdown link to {url[:20]}...")
    # LaTeX links, which MathJax turns into <a href=...>: $\href{javascript:...}{x}$
    for target in re.findall(r"\\(?:href|url)\s*\{([^}]*)\}", text):
        if SCRIPT_URL.match(re.sub(r"[\x00-\x20]+", "", target)):
            problems.append(f"a LaTeX link to {target.strip()[:20]}...")
    return problems


def _as_text_block(text: str) -> str:
    fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", text)), default=0))
    return f"{fence}text\n{text}\n{fence}"


NOTE = "*(dlcourse: this cell held markup that could run code in a browser; it is shown as text.)* Found: {why}"


def _reasons(problems: list[str]) -> str:
    """The first reasons, each as a code span (a reason quotes a tag: it must not become one)."""
    return ", ".join(f"`{p.replace('`', '')}`" for p in sorted(set(problems))[:3])


def sanitize_notebook(nb: NotebookNode) -> tuple[NotebookNode, list[str]]:
    """A copy of `nb` that shows everything and runs nothing; and what was neutralised, one line each."""
    nb = copy.deepcopy(nb)
    changes: list[str] = []
    nb.metadata.pop("widgets", None)
    for index, cell in enumerate(nb.cells):
        where = f"cell {index + 1}"
        if cell.get("cell_type") in ("markdown", "raw"):
            problems = active_markup(cell.get("source", ""))
            if problems:
                cell.source = NOTE.format(why=_reasons(problems)) + "\n\n" + _as_text_block(cell.source)
                if cell.get("cell_type") == "raw":
                    cell.metadata.pop("format", None)
                    cell.metadata.pop("raw_mimetype", None)
                changes.append(f"{where}: {cell.cell_type} shown as text ({', '.join(sorted(set(problems))[:3])})")
        for output in cell.get("outputs", []):
            data = output.get("data")
            if not data:
                continue
            for key in DROPPED_OUTPUT_TYPES:
                data.pop(key, None)
            if "image/svg+xml" in data:
                svg = data.pop("image/svg+xml")
                svg = "".join(svg) if isinstance(svg, list) else svg
                encoded = base64.b64encode(svg.encode("utf-8")).decode("ascii")
                data.setdefault("text/html", f'<img src="data:image/svg+xml;base64,{encoded}" alt="SVG output">')
            for key in ("text/html", "text/markdown"):
                if key not in data:
                    continue
                text = "".join(data[key]) if isinstance(data[key], list) else data[key]
                problems = active_markup(text, markdown=key == "text/markdown")
                if problems:
                    reasons = ", ".join(sorted(set(problems))[:3])
                    data[key] = (f"<p><em>{html.escape(NOTE.format(why=reasons).replace('*', ''))}</em></p>"
                                 f"<pre>{html.escape(text)}</pre>") if key == "text/html" else (
                        NOTE.format(why=_reasons(problems)) + "\n\n" + _as_text_block(text))
                    changes.append(f"{where}: {key} output shown as text ({', '.join(sorted(set(problems))[:3])})")
    return nb, changes
