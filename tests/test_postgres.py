"""The gradebook on a real PostgreSQL server (Debian's postgresql, started here in a temp folder as the
`postgres` user) and on SQLite: safe creation by several graders at once, two graders writing at once,
and nbgrader's export and formgrader reading what they wrote."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not binaries:
        pytest.fail("PostgreSQL is missing: apt-get install postgresql (.ci/setup does it)")
    bindir = Path(binaries[-1]).parent
    folder = Path(tempfile.mkdtemp(prefix="dlcourse-pg-"))  # outside pytest's root-only folder
    data = folder / "data"
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(folder, "postgres")
    initdb = subprocess.run([*as_postgres, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
                            capture_output=True, text=True)
    if initdb.returncode:
        pytest.fail(f"initdb failed: {initdb.stderr.strip()}")
    port = _free_port()
    subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "start",
                    "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"], check=True, capture_output=True)
    yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                   capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)


CREATE = "import sys; from dlcourse.instructor.grading.gradebook import create_gradebook; print(create_gradebook(sys.argv[1]))"


def _create_four_at_once(url: str) -> list[str]:
    processes = [subprocess.Popen([sys.executable, "-c", CREATE, url], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert all(p.returncode == 0 for p in processes), [err.strip().splitlines()[-1:] for _, err in outputs]
    return sorted(out.strip() for out, _ in outputs)


def test_four_graders_create_one_postgresql_gradebook_at_once(postgres_url):
    assert _create_four_at_once(postgres_url) == ["False", "False", "False", "True"]
    from nbgrader.api import Gradebook

    with Gradebook(postgres_url) as gb:
        assert gb.assignments == []


def test_four_graders_create_one_sqlite_gradebook_at_once(tmp_path):
    assert _create_four_at_once(f"sqlite:///{tmp_path / 'gradebook.db'}") == ["False", "False", "False", "True"]


def test_two_grade_batches_at_once_on_one_postgresql_gradebook_lose_and_duplicate_nothing(
        demo_course, tmp_path, postgres_url):
    import threading

    import nbformat
    from nbgrader.api import Gradebook

    from dlcourse.instructor.grading.batch import BatchOptions, grade_batch
    from tests.test_grade_batch import quiet, solved

    url = postgres_url.rsplit("/", 1)[0] + "/two_batches"
    subprocess.run([sys.executable, "-c", "import sys, psycopg; c = psycopg.connect(sys.argv[1], autocommit=True); "
                    "c.execute('CREATE DATABASE two_batches')", url.replace("+psycopg", "").rsplit("/", 1)[0] + "/postgres"],
                   check=True)
    halves = []
    for half, students in enumerate((("ann", "ben"), ("cat", "dan"))):
        folder = tmp_path / f"half{half}"
        folder.mkdir()
        for student in students:
            nbformat.write(solved(demo_course), str(folder / f"{student}.ipynb"))
        halves.append(folder)
    errors = []

    def grade(folder):
        try:
            grade_batch(demo_course, "99_demo", folder, BatchOptions(
                workers=1, progress=False, nbgrader_dir=tmp_path / "nb", db_url=url), log=quiet)
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=grade, args=(folder,)) for folder in halves]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert errors == []
    with Gradebook(url) as gb:
        submissions = gb.assignment_submissions("99_demo")
        assert sorted(s.student.id for s in submissions) == ["ann", "ben", "cat", "dan"]
        assert [round(s.score, 2) for s in submissions] == [2.0] * 4


def _create_database(postgres_url: str, name: str) -> str:
    admin = postgres_url.replace("+psycopg", "")
    subprocess.run([sys.executable, "-c", "import sys, psycopg; c = psycopg.connect(sys.argv[1], autocommit=True); "
                    f"c.execute('CREATE DATABASE {name}')", admin], check=True)
    return postgres_url.rsplit("/", 1)[0] + "/" + name


def test_two_dlcourse_grade_commands_at_once_then_nbgrader_export_reads_every_grade(demo_course, tmp_path, postgres_url):
    import csv

    import nbformat

    from tests.test_grade_batch import solved

    url = _create_database(postgres_url, "two_commands")
    folders = []
    for half, students in enumerate((("ann", "ben", "cat"), ("dan", "eve", "fay"))):
        folder = tmp_path / f"half{half}"
        folder.mkdir()
        for student in students:
            nbformat.write(solved(demo_course), str(folder / f"{student}.ipynb"))
        folders.append(folder)
    dlcourse = str(Path(sys.executable).with_name("dlcourse"))
    commands = [subprocess.Popen([dlcourse, "grade", "99_demo", str(folder), "--db", url, "--workers", "1",
                                  "--no-progress", "--nbgrader-dir", str(tmp_path / "nb")],
                                 cwd=demo_course.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for folder in folders]
    outputs = [c.communicate(timeout=300) for c in commands]
    assert [c.returncode for c in commands] == [0, 0], [err[-1500:] for _, err in outputs]
    nbgrader = str(Path(sys.executable).with_name("nbgrader"))
    exported = tmp_path / "export.csv"
    done = subprocess.run([nbgrader, "export", f"--db={url}", f"--to={exported}"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    with open(exported) as f:
        rows = [r for r in csv.DictReader(f) if r["assignment"] == "99_demo"]
    assert sorted(r["student_id"] for r in rows) == ["ann", "ben", "cat", "dan", "eve", "fay"]
    assert {float(r["raw_score"]) for r in rows} == {2.0}


def test_the_formgrader_on_a_postgresql_gradebook_lists_the_grades_and_saves_a_ta_score(
        demo_course, tmp_path, postgres_url):
    """nbgrader's formgrader (its server extension in a real `jupyter server`, driven through its HTTP API, the
    calls its pages make) reads what `dlcourse grade` wrote on PostgreSQL, and a TA's score lands there."""
    import json
    import time
    import urllib.request

    import nbformat
    from nbgrader.api import Gradebook

    from dlcourse.instructor.grading.batch import BatchOptions, grade_batch
    from tests.test_grade_batch import quiet, solved

    url = _create_database(postgres_url, "formgrader")
    folder = tmp_path / "batch"
    folder.mkdir()
    for student in ("ann", "ben"):
        nbformat.write(solved(demo_course), str(folder / f"{student}.ipynb"))
    course_dir = tmp_path / "nb"
    grade_batch(demo_course, "99_demo", folder, BatchOptions(
        workers=1, progress=False, nbgrader_dir=course_dir, db_url=url), log=quiet)
    (course_dir / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.root = {str(course_dir)!r}\nc.CourseDirectory.db_url = {url!r}\n")
    port, token = _free_port(), "formgrader-test"
    jupyter = str(Path(sys.executable).with_name("jupyter"))
    server = subprocess.Popen([jupyter, "server", "--no-browser", "--allow-root", f"--port={port}",
                               "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
                               f"--ServerApp.root_dir={course_dir}"], cwd=course_dir,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def api(path: str, data: dict | None = None):
        request = urllib.request.Request(f"http://127.0.0.1:{port}/formgrader/api/{path}",
                                         data=None if data is None else json.dumps(data).encode(),
                                         method="GET" if data is None else "PUT",
                                         headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                assert api("status") == {"status": True}
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"jupyter server did not start: {server.stderr.read()[-2000:]}")
                time.sleep(0.5)
        assert [a["name"] for a in api("assignments")] == ["99_demo"]
        submissions = {s["student"]: s for s in api("submissions/99_demo")}
        assert sorted(submissions) == ["ann", "ben"]
        assert all(s["score"] == 2.0 and s["needs_manual_grade"] for s in submissions.values())
        ann = next(n for n in api("submitted_notebooks/99_demo/99_demo") if n["student"] == "ann")
        answer = next(g for g in api(f"grades?submission_id={ann['id']}") if g["name"] == "why_double")
        assert api(f"grade/{answer['id']}", {"manual_score": 1.0})["manual_score"] == 1.0
    finally:
        server.terminate()
        server.wait(30)
    with Gradebook(url) as gb:
        assert gb.find_submission("99_demo", "ann").score == 3.0
        assert gb.find_submission("99_demo", "ben").score == 2.0
