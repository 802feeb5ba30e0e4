"""What students and TAs open shows no trace of the machine that built it: no absolute path,
no host name, no saved widget state, no kernel version (design: "Nothing a student sees ever
contains ... a trace of the machine that built it")."""

from __future__ import annotations

import platform
import re
import socket
from pathlib import Path

import nbformat
import pytest

from dlcourse import data, doctor
from dlcourse.instructor.authoring.solution_run import strip_widgets

REPO = Path(__file__).resolve().parents[1]
GENERATED = sorted(p for folder in ("assignments", "solutions", "colab") for p in (REPO / folder).rglob("*.ipynb"))

ABSOLUTE_PATH = re.compile(r"(?<![\w.~-])/(?:work|root|home|tmp|Users)/")
WIDGET = re.compile(r"application/vnd\.jupyter\.widget-(?:state|view)\+json")
HOST = socket.gethostname().split(".")[0]
HOST_WORD = re.compile(rf"(?<![\w-]){re.escape(HOST)}(?![\w-])") if HOST and HOST != "localhost" else None
KERNEL = platform.release()  # e.g. 6.18.44-fc-v782-x86_64
PLATFORM = re.compile(r"\b(?:Linux|Darwin|macOS|Windows)-\d+\.\d+")  # platform.platform(): any machine's


def cell_texts(cell) -> list[str]:
    """The cell's source and every text its outputs hold (stream, error, each mime type)."""
    texts = [cell.source]
    for output in cell.get("outputs", []):
        texts.append(output.get("text", ""))
        texts.extend(output.get("traceback", []))
        for mime, value in output.get("data", {}).items():
            if mime.startswith("image/") and not mime.startswith("image/svg"):
                continue  # base64 pixels: any short word (a host name such as "vm") turns up in them by chance
            texts.extend([mime, value if isinstance(value, str) else str(value)])
    return texts


def traces(path: Path) -> list[str]:
    """One line per trace found: the file, the cell (index and id) and what was found."""
    nb = nbformat.read(str(path), as_version=4)
    where = path.relative_to(REPO)
    found = []
    if "widgets" in nb.metadata:
        found.append(f"{where}: notebook metadata.widgets holds saved widget state")
    for index, cell in enumerate(nb.cells):
        cell_name = f"{where} cell {index} ({cell.get('id', 'no id')})"
        if "widgets" in cell.metadata:
            found.append(f"{cell_name}: metadata.widgets holds saved widget state")
        for text in cell_texts(cell):
            checks = [("an absolute path", ABSOLUTE_PATH), ("a widget output", WIDGET)]
            if HOST_WORD is not None:
                checks.append((f"this machine's host name {HOST!r}", HOST_WORD))
            for what, pattern in checks:
                match = pattern.search(text)
                if match:
                    line = text[max(0, match.start() - 40):match.end() + 40].replace("\n", " ")
                    found.append(f"{cell_name}: {what}: ...{line}...")
            if (KERNEL and KERNEL in text) or PLATFORM.search(text):
                found.append(f"{cell_name}: a kernel version")
            if "build machine" in text:
                found.append(f"{cell_name}: text about the build machine")
    return found


def assignment_of(path: Path) -> str:
    return path.parent.name if path.parent.name[:2].isdigit() else ""


@pytest.mark.parametrize("path", GENERATED, ids=lambda p: str(p.relative_to(REPO)))
def test_generated_notebook_shows_no_trace_of_the_build_machine(path):
    found = traces(path)
    assert not found, "remove these traces of the build machine, then rebuild:\n" + "\n".join(found)


def test_every_assignment_is_scanned():
    names = {assignment_of(p) for p in GENERATED if p.parts[-3] in ("assignments", "solutions")}
    assert names == {p.name for p in (REPO / "notebooks").iterdir() if (p / f"{p.name}.py").is_file()}


def test_the_scan_finds_each_kind_of_trace(tmp_path, monkeypatch):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print(1)", id="c0"), nbformat.v4.new_markdown_cell(
        f"Measured on the build machine, {KERNEL}", id="c1")]
    nb.cells[0].outputs = [
        nbformat.v4.new_output("stream", text="the files go to /work/main/data/cache\n"),
        nbformat.v4.new_output("display_data", data={
            "application/vnd.jupyter.widget-view+json": {"model_id": "x"}, "text/plain": "0%| 0/1500"}),
    ]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}
    path = REPO / "solutions" / "_scan_probe.ipynb"
    monkeypatch.setattr(nbformat, "read", lambda *_, **__: nb)
    found = "\n".join(traces(path))
    for expected in ("metadata.widgets", "cell 0 (c0): an absolute path", "cell 0 (c0): a widget output",
                     "cell 1 (c1): text about the build machine", "cell 1 (c1): a kernel version"):
        assert expected in found, found


def test_build_strips_widget_outputs_and_state():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("bar()", id="c0")
    cell.outputs = [nbformat.v4.new_output("display_data", data={
        "application/vnd.jupyter.widget-view+json": {"model_id": "x"}, "text/plain": "training: 0%| 0/1500"}),
        nbformat.v4.new_output("stream", text="trained 1500 steps\n")]
    nb.cells = [cell]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}
    strip_widgets(nb)
    assert "widgets" not in nb.metadata
    assert [o.output_type for o in nb.cells[0].outputs] == ["stream"]


def test_printed_cache_path_is_relative_to_the_course_or_home(monkeypatch):
    monkeypatch.delenv("DLCOURSE_DATA", raising=False)
    assert data.cache_display(REPO / "data" / "cache") == "data/cache in the course folder"
    assert data.cache_display(Path.home() / ".cache" / "dlcourse") == "~/.cache/dlcourse"
    assert data.cache_display(Path("/content/dlcourse-data")) == "/content/dlcourse-data"  # Colab's own
    message = data._how_to_get()
    assert str(REPO) not in message and "data/cache in the course folder" in message


def test_doctor_prints_no_kernel_version_and_no_cache_path(capsys, monkeypatch):
    monkeypatch.delenv("DLCOURSE_DATA", raising=False)
    doctor.print_report()
    out = capsys.readouterr().out
    assert KERNEL not in out and str(REPO) not in out, out
    assert f"({platform.system()} {platform.machine()})" in out
