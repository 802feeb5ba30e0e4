"""Running a solution notebook at build time: top to bottom in a fresh kernel, in a scratch folder,
with progress bars off and a raised error stopping the run; then what the run printed, cell by cell,
for the author to read. Runs in the instructor's process (`dlcourse build`), the kernel beside it.
"""

from __future__ import annotations

import copy
import os
import re
import tempfile

from nbclient import NotebookClient
from nbformat import NotebookNode

from dlcourse.instructor.cells import is_generated
from dlcourse.selfcheck import STOP_ON_ERROR_ENV

# A whole solution run (real training) must fit in this; the issue budget is 5 minutes on a CPU.
SOLUTION_CELL_TIMEOUT_S = 900


def execute(nb: NotebookNode, cell_timeout: int = SOLUTION_CELL_TIMEOUT_S) -> NotebookNode:
    """Run a notebook top to bottom in a fresh kernel, in a scratch folder so it leaves no files behind."""
    metadata = copy.deepcopy(nb.metadata)
    with tempfile.TemporaryDirectory(prefix="dlcourse-build-") as workdir:
        client = NotebookClient(
            nb,
            timeout=cell_timeout,
            kernel_name="python3",
            record_timing=False,  # timestamps would make every build differ
            resources={"metadata": {"path": workdir}},
        )
        # Text progress bars would fill the solution notebook with carriage returns. A cell that
        # raises stops the build (students' Run All goes on past it: dlcourse.selfcheck).
        client.execute(env={**os.environ, "DLCOURSE_PROGRESS": "0", STOP_ON_ERROR_ENV: "1"})
    # The kernel writes its own language_info (Python patch version...): keep ours, so
    # the notebook's cells and metadata do not depend on the machine that built it.
    nb.metadata = metadata
    strip_widgets(nb)
    return nb


WIDGET_MIME = ("application/vnd.jupyter.widget-view+json", "application/vnd.jupyter.widget-state+json")


def strip_widgets(nb: NotebookNode) -> NotebookNode:
    """Drop widget outputs (a tqdm.auto bar's frozen "0/1500") and saved widget state: a reader
    sees the build's widget as a stale snapshot, never the live one."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not any(m in o.get("data", {}) for m in WIDGET_MIME)]
        cell.metadata.pop("widgets", None)
    return nb


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def printed_digest(solution: NotebookNode, skip: set[str] = frozenset(), most: int = 12,
                   labels: dict[str, str] | None = None) -> list[str]:
    """The last printed line of each code cell that printed (training results, accuracies), the last
    `most` of them, but for the generated cells and those in `skip` (the tests, whose lines only confirm):
    what an author reads after a build to see that the run went as the text says."""
    lines = []
    for cell in solution.cells:
        if cell.cell_type != "code" or is_generated(cell) or cell.get("id") in skip:
            continue
        text = "".join(o.get("text", "") for o in cell.get("outputs", [])
                       if o.get("output_type") == "stream" and o.get("name") == "stdout")
        printed = [line.strip() for line in ANSI.sub("", text).replace("\r", "\n").splitlines() if line.strip()]
        if printed:
            lines.append(f"{(labels or {}).get(cell.get('id'), cell.get('id'))}: {printed[-1][:150]}")
    return lines[-most:]
