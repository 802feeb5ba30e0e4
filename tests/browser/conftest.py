"""The real-browser suite: Debian's Chromium, driven by Python Playwright, against one
`jupyter lab` server (with nbgrader's extensions) that this file starts for the whole
session in a temporary copy of the course.

    pytest tests/browser                                   # about a minute
    DLCOURSE_SCREENSHOTS=docs/images pytest tests/browser  # also rewrites the README's pictures

Every step screenshot and, for a failing test, a screenshot of each open page and its
console log go to the folder of `--junitxml` if given, else test-results/browser/.
Chromium is found as $DLCOURSE_CHROMIUM, else `chromium` on PATH (.ci/setup installs it);
Playwright's own browser download is never used.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VIEWPORT = {"width": 1024, "height": 640}
# what a course copy needs: the config, the sources (for grading), the student notebooks,
# nbgrader's config and the mutants, the offline data
COURSE_PARTS = ["pyproject.toml", "notebooks", "assignments", "autograder", "data"]
NOT_COPIED = shutil.ignore_patterns("gradebook.db", "autograded", "feedback", "submitted", "cache",
                                    "__pycache__", ".ipynb_checkpoints")
# JupyterLab settings for a quiet, test-friendly front end: no news or update pop-up, and
# every cell in the DOM (no windowing), so a locator finds any cell
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        '{"fetchNews": "false", "checkForUpdates": false}',
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": '{"windowingMode": "none"}',
}

# pages open right now, with their console logs: what the failure hook saves
_OPEN_PAGES: list[tuple[object, list[str]]] = []


def artifacts_dir(config) -> Path:
    junit = config.getoption("xmlpath", None)
    folder = Path(junit).resolve().parent if junit else ROOT / "test-results" / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when in ("setup", "call") and _OPEN_PAGES:
        folder = artifacts_dir(item.config)
        name = re.sub(r"[^\w.-]+", "_", item.nodeid.split("::", 1)[-1])
        for index, (page, log) in enumerate(_OPEN_PAGES):
            stem = folder / (f"{name}-{index}" if index else name)
            try:
                page.screenshot(path=str(stem.with_suffix(".png")))
            except Exception as error:  # a crashed page still leaves its log
                log.append(f"[screenshot failed: {error}]")
            stem.with_suffix(".console.log").write_text(
                f"url: {getattr(page, 'url', '?')}\n" + "\n".join(log) + "\n", encoding="utf-8")
        report.sections.append(("browser", f"screenshots and console logs in {folder}/{name}*"))


def chromium_path() -> str:
    found = os.environ.get("DLCOURSE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("Chromium not found: run .ci/setup (apt-get install chromium) or set DLCOURSE_CHROMIUM")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_course(target: Path) -> Path:
    target.mkdir(parents=True)
    for part in COURSE_PARTS:
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, target / part, ignore=NOT_COPIED)
        else:
            shutil.copy2(source, target / part)
    return target


@dataclass
class Lab:
    """A running `jupyter lab`: its root is a course copy, its cwd the copy's autograder/
    (where nbgrader, like an instructor's `cd autograder && jupyter lab`, finds its config)."""

    url: str
    token: str
    course: Path
    env: dict
    log: Path
    batch: subprocess.Popen | None = None  # the sample batch grading meanwhile

    def lab_url(self, path: str = "") -> str:
        return f"{self.url}/lab/tree/{path}?token={self.token}" if path else f"{self.url}/lab?token={self.token}"

    def dlcourse(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run the dlcourse command on the course copy, as an instructor would."""
        done = subprocess.run([str(Path(sys.executable).parent / "dlcourse"), *args], cwd=self.course, env=self.env,
                              capture_output=True, text=True, timeout=300)
        if check and done.returncode not in (0, 1):  # 1: some submission did not grade (the broken ones)
            raise AssertionError(f"dlcourse {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    base = tmp_path_factory.mktemp("browser")
    course = copy_course(base / "course")
    settings = base / "lab-settings"
    for name, text in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(text, encoding="utf-8")
    env = dict(os.environ, DLCOURSE_ROOT=str(course), DLCOURSE_OFFLINE="1",
               JUPYTER_CONFIG_DIR=str(base / "jupyter-config"), JUPYTER_RUNTIME_DIR=str(base / "jupyter-runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(base / "lab-workspaces"),
               IPYTHONDIR=str(base / "ipython"))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    port, token = free_port(), uuid.uuid4().hex
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={course}",
               "--ServerApp.port_retries=0"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = base / "jupyter-lab.log"
    with open(log, "w") as out:
        server = subprocess.Popen(command, cwd=course / "autograder", env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"jupyter lab did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
    lab = Lab(url=url, token=token, course=course, env=env, log=log)
    lab.batch = start_sample_batch(lab)
    yield lab
    stop(lab.batch)
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []  # Chromium's sandbox refuses root
        chromium = playwright.chromium.launch(executable_path=chromium_path(), args=args)
        yield chromium
        chromium.close()


def open_page(browser, lab: Lab | None = None):
    """A new page, logged in to the lab server when given, with its console log kept;
    external hosts are refused (tests never use the network) and logged."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    log: list[str] = []
    page.on("console", lambda m: log.append(f"console.{m.type}: {m.text}"))
    page.on("pageerror", lambda e: log.append(f"pageerror: {e}"))
    page.on("requestfailed", lambda r: log.append(f"requestfailed: {r.url} ({r.failure})"))

    def refuse_the_network(route):
        url = route.request.url
        if url.startswith(("file:", "data:", "blob:")) or (lab and url.startswith(lab.url)):
            route.continue_()
        else:
            route.abort("internetdisconnected")

    page.route("**/*", refuse_the_network)
    page.console_log = log
    _OPEN_PAGES.append((page, log))
    return page


def close_page(page) -> None:
    _OPEN_PAGES[:] = [(p, log) for p, log in _OPEN_PAGES if p is not page]
    page.context.close()


@pytest.fixture
def page(browser, lab):
    page = open_page(browser, lab)
    yield page
    close_page(page)


@pytest.fixture(scope="session")
def shots(request):
    """shots(page, name, clip=None): a step screenshot in the artifacts folder, and in
    $DLCOURSE_SCREENSHOTS too (the README's pictures) when that is set."""
    folder = artifacts_dir(request.config)
    docs = os.environ.get("DLCOURSE_SCREENSHOTS")

    def shoot(page, name: str, clip: dict | None = None) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), clip=clip, animations="disabled", scale="css")
        if docs:  # the README's copy in 64 colours: a third of the bytes, the text as sharp
            from PIL import Image  # Pillow: matplotlib's dependency

            Path(docs).mkdir(parents=True, exist_ok=True)
            with Image.open(path) as image:
                image.convert("RGB").quantize(colors=64).save(Path(docs) / path.name, optimize=True)
        return path

    return shoot


def start_sample_batch(lab: Lab) -> subprocess.Popen:
    """`dlcourse sample` and `dlcourse grade` of 01_backprop (it has written answers) into the
    course copy's gradebook, with feedback pages, in the background while the student tests run."""
    sample, bin_dir = lab.course.parent / "sample", Path(sys.executable).parent
    script = (f'"{bin_dir}/dlcourse" sample 01_backprop "{sample}" --count 3 && '
              f'"{bin_dir}/dlcourse" grade 01_backprop "{sample}" --workers 2 --no-progress '
              f'--csv "{lab.course.parent / "grades.csv"}" --feedback autograder/feedback')
    return subprocess.Popen(["bash", "-c", script], cwd=lab.course, env=lab.env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)  # its own group


def stop(process: subprocess.Popen) -> None:
    """The process and everything it started (the grader's workers)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.communicate()


def pytest_collection_modifyitems(items):
    """The student tests first: the sample batch the others open grades meanwhile."""
    items.sort(key=lambda item: "tests/browser/" in item.nodeid and "test_student" not in item.nodeid)


@pytest.fixture(scope="session")
def graded_batch(lab):
    """student id -> the CSV row `dlcourse grade` wrote for the sample batch (see start_sample_batch)."""
    try:
        out, _ = lab.batch.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        stop(lab.batch)
        pytest.fail("grading the sample batch took over 5 minutes")
    table = lab.course.parent / "grades.csv"
    assert lab.batch.returncode in (0, 1) and table.exists(), out  # 1: the sample's broken notebook
    with open(table) as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    assert rows, out
    return rows
