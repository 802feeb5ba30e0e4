"""The Gradescope bundle, rehearsed here: `dlcourse gradescope` builds the zip, it is unpacked into a
folder laid out like Gradescope's /autograder (AUTOGRADER_ROOT), and its own `run_autograder` grades
real submissions of 00_setup and 01_backprop. Every results.json is checked against a JSON schema
written from Gradescope's specification (tests/schemas/), and for what a student relies on: the
solution full, the blank 0, a mutant less, a broken file 0 with a message, never a hidden test's code.
setup.sh passes bash -n and shellcheck, and its pip step installs the wheel into a fresh venv."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import nbformat
import pytest

from dlcourse.instructor.source import read_source
from dlcourse.instructor.cells import BEGIN_HIDDEN, END_HIDDEN, graded_cells
from dlcourse.instructor.course import load_course
from dlcourse.instructor.gradescope.bundle import build_bundle, build_wheel, extract, read_settings
from dlcourse.instructor.authoring.sample import sample_notebooks

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "tests" / "schemas" / "gradescope-results.schema.json").read_text())
ASSIGNMENTS = ["00_setup", "01_backprop"]
BROKEN_JSON = '{"cells": [ {"cell_type": "code", "source": "trunc'

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def course():
    return load_course(ROOT)


@pytest.fixture(scope="module")
def bundles(course, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bundles")
    wheel = build_wheel(course, folder)
    return {name: build_bundle(course, name, folder / f"{name}-autograder.zip", wheel=wheel) for name in ASSIGNMENTS}


@pytest.fixture(scope="module")
def samples(course) -> dict[str, dict]:
    return {name: sample_notebooks(course, name, broken=False) for name in ASSIGNMENTS}


def hidden_lines(source) -> list[str]:
    """Every non-trivial line of every hidden block of the source."""
    lines, inside = [], False
    for cell in graded_cells(source, "tests"):
        for line in cell.source.splitlines():
            if line.strip() == BEGIN_HIDDEN:
                inside = True
            elif line.strip() == END_HIDDEN:
                inside = False
            elif inside and len(line.strip()) > 12:
                lines.append(line.strip())
    return lines


def run_bundle(bundle: Path, root: Path, submission: dict[str, object], env: dict | None = None,
               prepare=None) -> dict:
    """Unpack `bundle` under `root` as Gradescope does, hand in `submission` (name -> notebook or text),
    run the bundle's run_autograder and return its results.json, checked against the schema."""
    extract(bundle, root)
    if prepare:
        prepare(root)
    for name, content in submission.items():
        path = root / "submission" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            nbformat.write(content, str(path))
    done = subprocess.run([str(root / "run_autograder")], cwd=root, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "AUTOGRADER_ROOT": str(root), "DLCOURSE_PYTHON": sys.executable,
                               **(env or {})})
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))
    jsonschema.validate(data, SCHEMA)
    return data


def check_common(data: dict, source, settings: dict) -> None:
    """What every result of a bundle holds: one test per graded cell, written answers without points,
    the autograded total, no hidden test code anywhere a student could see."""
    text = json.dumps({k: v for k, v in data.items() if k != "extra_data"})
    for line in hidden_lines(source):
        assert line not in text, f"a hidden test line reached results.json: {line}"
    scored = [t for t in data["tests"] if "max_score" in t]
    assert sum(t["max_score"] for t in scored) == settings["points"]
    assert data["score"] == sum(t["score"] for t in scored)
    for test in data["tests"]:
        assert test["name"].split(":")[0].split(" ")[0], test
    manual = [t for t in data["tests"] if "graded by hand" in t.get("tags", [])]
    assert all("score" not in t for t in manual)
    assert data["extra_data"]["dlcourse"]


def settings_of(bundle: Path) -> dict:
    with zipfile.ZipFile(bundle) as zf:
        return json.loads(zf.read("settings.json"))


def colab_saved(nb) -> str:
    """The notebook as Colab saves it: nbformat 4.0 without cell ids, Colab's own metadata on the
    notebook and on every cell, sources as lists of lines, outputs of a run on Colab."""
    raw = json.loads(nbformat.writes(nb))
    raw["nbformat_minor"] = 0
    raw["metadata"] = {"colab": {"provenance": [], "gpuType": "T4"}, "accelerator": "GPU",
                       "kernelspec": {"name": "python3", "display_name": "Python 3"}, "language_info": {"name": "python"}}
    for index, cell in enumerate(raw["cells"]):
        cell.pop("id", None)
        cell["metadata"].update({"id": f"Xq{index:04d}colab", "colab": {"base_uri": "https://localhost:8080/"}})
        if isinstance(cell["source"], str):
            cell["source"] = cell["source"].splitlines(True)
        if cell["cell_type"] == "code":
            cell["execution_count"] = index
            cell["metadata"]["outputId"] = f"out-{index}"
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["ran on a Colab T4\n"]}]
    return json.dumps(raw, indent=2)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_bundle_holds_what_gradescope_runs_and_no_other_assignment(assignment, bundles):
    with zipfile.ZipFile(bundles[assignment]) as zf:
        names = set(zf.namelist())
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in zf.infolist()}
        settings = json.loads(zf.read("settings.json"))
    assert {"setup.sh", "run_autograder", "settings.json", "requirements.txt", "torch-requirements.txt",
            f"{assignment}.source.ipynb"} <= names
    assert modes["setup.sh"] & 0o111 and modes["run_autograder"] & 0o111
    assert [n for n in names if n.endswith(".whl")] and all("/" not in n for n in names if n.endswith(".whl"))
    others = [a for a in ASSIGNMENTS + ["02_cnn", "03_rnn"] if a != assignment]
    assert not [n for n in names if any(o in n for o in others)]
    limits = settings["limits"]
    assert limits["memory_mb"] < settings["limits"]["gradescope"]["memory_mb"]
    assert limits["alarm_s"] < settings["limits"]["gradescope"]["timeout_s"]
    assert limits["timeout_s"] < limits["alarm_s"] and limits["threads"] == 1


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_blank_mutant_and_colab_notebook(assignment, bundles, samples, tmp_path):
    bundle, nbs = bundles[assignment], samples[assignment]
    settings = settings_of(bundle)
    source = read_source(ROOT / "notebooks" / assignment / f"{assignment}.py")
    notebook = f"{assignment}.ipynb"

    solution = run_bundle(bundle, tmp_path / "solution", {notebook: nbs["s000-solution"]})
    check_common(solution, source, settings)
    assert solution["score"] == settings["points"] > 0, solution["output"]
    assert all(t["status"] == "passed" for t in solution["tests"] if "max_score" in t)
    assert solution["extra_data"]["status"] == "graded"

    blank = run_bundle(bundle, tmp_path / "blank", {notebook: nbs["s001-blank"]})
    check_common(blank, source, settings)
    assert blank["score"] == 0
    assert all(t["status"] == "failed" and t["output"].startswith(("Failed", "Did not run"))
               for t in blank["tests"] if "max_score" in t)

    mutant = next(k for k in nbs if "mutant" in k)
    wrong = run_bundle(bundle, tmp_path / "mutant", {notebook: nbs[mutant]})
    check_common(wrong, source, settings)
    assert 0 <= wrong["score"] < settings["points"], mutant

    colab = run_bundle(bundle, tmp_path / "colab", {"Copy of " + notebook: colab_saved(nbs["s000-solution"])})
    check_common(colab, source, settings)
    assert colab["score"] == settings["points"], colab["output"]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_broken_json_and_two_notebooks_score_0_with_a_message(assignment, bundles, samples, tmp_path):
    bundle = bundles[assignment]
    settings = settings_of(bundle)
    source = read_source(ROOT / "notebooks" / assignment / f"{assignment}.py")
    notebook = f"{assignment}.ipynb"

    broken = run_bundle(bundle, tmp_path / "broken", {notebook: BROKEN_JSON})
    check_common(broken, source, settings)
    assert broken["score"] == 0
    assert "malformed JSON" in broken["output"] and "not graded" in broken["output"]
    assert broken["extra_data"]["status"] == "invalid notebook"
    assert all(t["output"].startswith("Not graded") for t in broken["tests"] if "max_score" in t)

    solution = samples[assignment]["s000-solution"]
    two = run_bundle(bundle, tmp_path / "two", {notebook: solution, "old/" + notebook: solution,
                                                 f"{assignment} (1).ipynb": solution})
    assert two["score"] == 0 and "2 notebooks were handed in" in two["output"] and "exactly one" in two["output"]

    none = run_bundle(bundle, tmp_path / "none", {"notes.txt": "forgot the notebook"})
    assert none["score"] == 0 and "no .ipynb file" in none["output"]


def prying_notebook(solution, root: Path):
    """The solution with a first cell that kills its own kernel (so the grade drops to 0) if it runs as
    root or can list or read the source, the submission or the results folder under `root`."""
    nb = nbformat.from_dict(json.loads(nbformat.writes(solution)))
    prying = nbformat.v4.new_code_cell(
        "import os\n"
        f"root = {str(root)!r}\n"
        "if os.getuid() == 0 or os.geteuid() == 0:\n    os._exit(3)\n"
        "for path in ('source/settings.json', 'source/00_setup.source.ipynb', 'results/results.json'):\n"
        "    try:\n        open(os.path.join(root, path)).read(1)\n        os._exit(4)\n"
        "    except OSError:\n        pass\n"
        "for folder in ('source', 'results', 'submission'):\n"
        "    try:\n        os.listdir(os.path.join(root, folder))\n        os._exit(5)\n"
        "    except OSError:\n        pass\n")
    nb.cells.insert(1, prying)
    return nb


@pytest.mark.skipif(os.geteuid() != 0, reason="the grader drops to another uid only as root (CI runs as root)")
def test_folders_stay_closed_without_the_namespace_cover(bundles, samples):
    """Where the container refuses new namespaces nothing covers /autograder: the kernel's uid and the
    folders' mode 700 must keep it out on their own. Rehearsed outside every folder the kernel's mount
    namespace hides, with the cover of the root turned off."""
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="dlcourse-gradescope-", dir="/var/lib"))
    try:
        root = base / "autograder"

        def uncover(root):
            path = root / "source" / "settings.json"
            path.write_text(json.dumps({**json.loads(path.read_text()), "cover_root": False}))

        data = run_bundle(bundles["00_setup"], root, {"00_setup.ipynb": prying_notebook(
            samples["00_setup"]["s000-solution"], root)}, prepare=uncover)
        assert data["score"] == settings_of(bundles["00_setup"])["points"], data["output"]
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_kernel_runs_unprivileged_and_cannot_read_source_or_results(bundles, samples, tmp_path):
    """A submission that looks for the hidden tests and the results file: its kernel dies (and the
    grade shows it) if it is root or can read either; it scores full, so it could not."""
    bundle = bundles["00_setup"]
    root = tmp_path / "autograder"
    data = run_bundle(bundle, root, {"00_setup.ipynb": prying_notebook(samples["00_setup"]["s000-solution"], root)})
    assert data["score"] == settings_of(bundle)["points"], data["output"]
    summary = data["extra_data"]["isolation_summary"]
    if os.geteuid() == 0:
        assert summary["kernel_user"].startswith("uid ") and set(summary["root_only_folders"]) == {
            "source", "submission", "results"}
        assert oct((root / "source").stat().st_mode & 0o777) == "0o700"


def test_a_grader_that_fails_still_writes_results(bundles, tmp_path):
    def damage(root):  # a bundle damaged after upload
        (root / "source" / "00_setup.source.ipynb").unlink()

    data = run_bundle(bundles["00_setup"], tmp_path / "autograder", {"00_setup.ipynb": "{}"}, prepare=damage)
    assert data["score"] == 0 and data["extra_data"]["status"] == "grader error"
    assert "not a problem with your work" in data["output"] and "00_setup.source.ipynb" in data["output"]

    # no Python at all: run_autograder itself still leaves a result
    gone = run_bundle(bundles["00_setup"], tmp_path / "nopython", {"00_setup.ipynb": "{}"},
                      env={"DLCOURSE_PYTHON": str(tmp_path / "no-such-python")})
    assert gone["score"] == 0 and gone["extra_data"]["status"] == "grader error"


def test_the_overall_time_limit_still_writes_results(bundles, samples, tmp_path):
    def short(root):  # an alarm before grading can finish: our result, not Gradescope's timeout
        path = root / "source" / "settings.json"
        settings = json.loads(path.read_text())
        settings["limits"]["alarm_s"] = 1
        path.write_text(json.dumps(settings))

    data = run_bundle(bundles["00_setup"], tmp_path / "autograder",
                      {"00_setup.ipynb": samples["00_setup"]["s000-solution"]}, prepare=short)
    assert data["score"] == 0 and "overall time limit (1 s" in data["output"]


def test_visibility_and_limits_come_from_the_course_config(course, tmp_path):
    settings = read_settings(course, "00_setup", memory_mb=2048, visibility={"hidden": "after_due_date"})
    assert settings.visibility == {"visible": "visible", "hidden": "after_due_date"}
    assert settings.limits()["memory_mb"] > read_settings(course, "00_setup").limits()["memory_mb"]
    # 02_cnn does not fit Gradescope's default 768 MB (README: Gradescope): pyproject.toml raises it
    assert read_settings(course, "02_cnn").memory_mb == 2048
    assert read_settings(course, "00_setup").memory_mb == 768


def test_setup_sh_passes_bash_n_and_shellcheck(bundles, tmp_path):
    with zipfile.ZipFile(bundles["00_setup"]) as zf:
        zf.extract("setup.sh", tmp_path)
        zf.extract("run_autograder", tmp_path)
    for script in (tmp_path / "setup.sh", tmp_path / "run_autograder"):
        subprocess.run(["bash", "-n", str(script)], check=True)
        done = subprocess.run([shutil.which("shellcheck") or "shellcheck", "--shell=bash", str(script)],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stdout


def test_setup_sh_pip_step_installs_the_wheel_into_a_fresh_venv(bundles, tmp_path):
    """setup.sh as Gradescope runs it, apt aside, into a new virtual environment. So that torch is not
    downloaded again, the venv sees this environment's packages through a .pth file (torch and the
    other requirements are then already satisfied); the course package must come from the wheel."""
    root = extract(bundles["00_setup"], tmp_path / "autograder")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    ours = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir() and not p.startswith(str(venv))]
    (site / "outer-environment.pth").write_text("\n".join(ours) + "\n")
    empty_index = tmp_path / "index"
    empty_index.mkdir()
    # without PYTHONPATH (a checkout's src/ on it would shadow the wheel this test is about)
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "DLCOURSE_SKIP_APT": "1", "DLCOURSE_VENV": str(venv),
           "DLCOURSE_TORCH_INDEX": empty_index.as_uri(), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(root / "source" / "setup.sh")], capture_output=True, text=True, env=env,
                          timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "bundle for 00_setup ready" in done.stdout
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import dlcourse, sys; print(dlcourse.__file__)"],
                           capture_output=True, text=True, check=True, env=env).stdout.strip()
    assert where.startswith(str(venv)), where
    # the instructor install Gradescope runs: the whole package, grader included
    assert (Path(where).parent / "instructor" / "gradescope" / "run.py").is_file()


def test_written_questions_are_named_by_their_question_never_by_the_model_answer():
    from dlcourse.instructor.course import load_course
    from dlcourse.instructor.gradescope.results import cell_titles
    from dlcourse.instructor.source import read_source
    from dlcourse.instructor.cells import graded_cells, solution_texts

    course = load_course()
    for name in course.assignments():
        source = read_source(course.source_path(name))
        titles = cell_titles(source)
        answers = solution_texts(source, roles=("answer",))
        for cell in graded_cells(source, "answer"):
            gid = cell.metadata["nbgrader"]["grade_id"]
            title = titles[gid]
            assert title and "SOLUTION" not in title, (name, gid, title)
            assert not any(line.strip() and line.strip() in title for line in answers[gid].splitlines()
                           if len(line.strip()) > 20), (name, gid, title)
