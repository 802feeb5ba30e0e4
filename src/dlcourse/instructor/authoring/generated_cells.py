"""The cells `dlcourse build` adds around a source in both generated notebooks (student and solution):
on top, the badge row (Open in Colab, View on GitHub, which runtime to choose) and the Colab setup
cell, built from [tool.dlcourse]; at the end, the self-check, which tallies the visible tests.
Runs in the instructor's process at build time; the setup cell itself runs in the student's kernel.
"""

from __future__ import annotations

import json
import string

import nbformat
from nbformat import NotebookNode

from dlcourse.instructor.cells import GENERATED_CELLS, graded_cells, grade_id, nbgrader_metadata
from dlcourse.instructor.course import Course
from dlcourse.selfcheck import fingerprint

# How the setup cell knows it runs in Colab: the same test as dlcourse.env.in_colab() (Colab's kernel
# imports google.colab at start and sets COLAB_RELEASE_TAG), which the cell cannot import: it installs it.
COLAB_CHECK = '"google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ'

# The first code cell of every notebook. $url, $ref and $repository come from [tool.dlcourse];
# $mirror is the line that sets the course's data mirror, when it has one.
SETUP_CELL = string.Template('''# Setup: in Google Colab this installs the course package `dlcourse`
# (version $ref of github.com/$repository) and leaves Colab's
# own torch, torchvision, numpy and matplotlib as they are. Anywhere else
# (JupyterLab, a laptop, the grader) it does nothing. Running it again is harmless.
import os
import sys
$mirror
if ''' + COLAB_CHECK + ''':
    import importlib
    import importlib.metadata as metadata
    import json
    import subprocess

    URL, REF = "$url", "$ref"

    def installed(name):
        """(version, pip's record of where it came from), or (None, {}) when not installed."""
        importlib.invalidate_caches()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            return None, {}
        return dist.version, json.loads(dist.read_text("direct_url.json") or "{}")

    before = {name: installed(name) for name in ("dlcourse", "torch", "torchvision", "numpy", "matplotlib")}
    version, origin = installed("dlcourse")
    if (origin.get("url"), origin.get("vcs_info", {}).get("requested_revision")) != (URL, REF):
        # Another version already here: pip would keep it (same name and version), so replace
        # just dlcourse; a first install brings the dependencies Colab lacks, if any.
        again = ["--force-reinstall", "--no-deps"] if version else []
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *again,
             f"dlcourse @ git+{URL}@{REF}"],
            capture_output=True, text=True,
        )
        if done.returncode != 0:
            print("\\n".join((done.stdout + done.stderr).strip().splitlines()[-15:]))
            raise RuntimeError(
                f"pip could not install dlcourse from {URL}@{REF} (its last lines are above). "
                "Check that the runtime has internet, then Runtime > Restart session and run "
                "this cell again; if it fails again, send the lines above to the course staff."
            )
        version, origin = installed("dlcourse")
    commit = origin.get("vcs_info", {}).get("commit_id", "unknown")[:12]
    print(f"dlcourse {version} from {URL}@{REF} (commit {commit})")
    changed = [name for name, old in before.items() if name in sys.modules and installed(name) != old]
    if changed:
        print(f"RESTART NEEDED: {', '.join(changed)} changed after it was imported. "
              "Runtime > Restart session, then run the notebook from the top.")''')

# Above the setup cell: Colab's runtime type is chosen first, since changing it starts a new machine.
# Only the assignments in [tool.dlcourse.gpu] ask for a GPU, each saying why; the others say they need
# none, so that students keep Colab's free GPU time for those.
GPU_NOTE = ("**In Colab:** first **Runtime > Change runtime type > T4 GPU**: {why}. (Changing it later starts a "
            "new machine and loses what has run.) ")
CPU_NOTE = ("**In Colab:** this notebook needs no GPU: keep the default CPU runtime, and save your free GPU "
            "time for the assignments that ask for one. ")
START_NOTE = ("Then **File > Save a copy in Drive**, and run the cells from the top: the first one installs "
              "the course package `dlcourse`.")


def runtime_note(course: Course, name: str) -> str:
    why = course.gpu.get(name)
    return (GPU_NOTE.format(why=why) if why else CPU_NOTE) + START_NOTE


def setup_cell_source(course: Course) -> str:
    mirror = ("\n# Data sets download from the course's mirror first (a student's own setting wins).\n"
              f"os.environ.setdefault(\"DLCOURSE_DATA_MIRROR\", {json.dumps(course.data_mirror)})\n"
              if course.data_mirror else "")
    return SETUP_CELL.substitute(url=course.git_url(), ref=course.ref, repository=course.repository, mirror=mirror)


def header_cells(course: Course, relative_path: str, name: str) -> list[NotebookNode]:
    """The badge row and the setup cell every generated notebook opens with."""
    badges = (
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"({course.colab_url(relative_path)}) "
        f"[![View on GitHub](https://img.shields.io/badge/view%20on-GitHub-181717?logo=github)]"
        f"({course.github_url(relative_path)})\n\n" + runtime_note(course, name)
    )
    badge_cell = nbformat.v4.new_markdown_cell(badges)
    badge_cell.id = "badges"
    setup_cell = nbformat.v4.new_code_cell(setup_cell_source(course))
    setup_cell.id = "colab-setup"
    return [badge_cell, setup_cell]


HEADER_IDS = ("badges", "colab-setup")

SELF_CHECK_NOTE = (
    GENERATED_CELLS["self-check-note"] + "\n\n"
    "Run this last. It lists the visible tests above: passed, failed, or not run in this session "
    "(it is not graded; the grader runs every test again, hidden ones too). Hand in only after a "
    "restart and a run of every cell from the top shows what you expect here."
)


def visible_tests(student: NotebookNode) -> tuple[dict[str, tuple[float, str]], float]:
    """What the self-check is given: test id -> (points, fingerprint of its text), and the written answers' points."""
    tests = {grade_id(c): (nbgrader_metadata(c)["points"], fingerprint(c.source)) for c in graded_cells(student, "tests")}
    return tests, sum(float(nbgrader_metadata(c)["points"]) for c in graded_cells(student, "answer"))


def self_check_cells(name: str, student: NotebookNode) -> list[NotebookNode]:
    """The closing cells of every generated notebook: the tally of the student notebook's visible tests."""
    visible, hand_graded = visible_tests(student)
    tests = "".join(f"\n    {test!r}: ({points:g}, {mark!r})," for test, (points, mark) in visible.items())
    code = (GENERATED_CELLS["self-check"] + "\n\n"
            "# test -> (points, fingerprint of its cell's text)\n"
            f"self_check({name!r}, {{{tests}\n}}, hand_graded_points={hand_graded:g})")
    note = nbformat.v4.new_markdown_cell(SELF_CHECK_NOTE)
    note.id = "self-check-note"
    cell = nbformat.v4.new_code_cell(code)
    cell.id = "self-check"
    return [note, cell]
