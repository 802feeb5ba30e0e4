"""The red-team suite: submissions that try to raise their score without solving
the exercise, each graded by the real grader and held to the score it must get.

The cases live in tests/redteam/cases.py; they are all graded once (in parallel)
and each case is one test.
"""

from __future__ import annotations

import copy
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import nbformat
import pytest

from dlcourse.instructor.grading.engine import grade_notebook
from tests.redteam.cases import CASES, NOTEBOOK_EDITS
from tests.redteam.course import CORRECT, build_course, with_solution


@pytest.fixture(scope="session")
def redteam_results(tmp_path_factory, template):
    root = tmp_path_factory.mktemp("redteam")
    course, source, student = build_course(root)
    other = root / "submissions" / "alice.ipynb"
    other.parent.mkdir()
    nbformat.write(with_solution(student, CORRECT), other)

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.sendall(CORRECT.encode())
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    runs = {}
    for name, (code, _, _) in CASES.items():
        code = code.replace("{course}", str(course.root)).replace("{secret_port}", str(port))
        runs[name] = with_solution(student, code.replace("{other_student}", str(other)))
    for name, (edit, _, _) in NOTEBOOK_EDITS.items():
        nb = copy.deepcopy(student)
        nb.cells = edit(nb.cells, None)
        runs[name] = nb
    # the network case must be reachable from the host, or it proves nothing
    assert socket.create_connection(("127.0.0.1", port)).recv(100).decode() == CORRECT

    def grade(item):
        name, nb = item
        return name, grade_notebook(nb, source, cell_timeout=30, timeout=90, template=template)[0]

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(pool.map(grade, runs.items()))
    server.close()
    return results


EXPECTED = {name: (score, flag) for name, (_, score, flag) in {**CASES, **NOTEBOOK_EDITS}.items()}


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_redteam_case_gets_the_score_it_must(redteam_results, case):
    score, flag = EXPECTED[case]
    result = redteam_results[case]
    details = f"{case}: {result.status} {result.message} {result.flags} {[(c.grade_id, c.points, c.error) for c in result.cells]}"
    assert result.max_score == 3
    assert result.score == score, details
    if flag:
        assert any(flag in f for f in result.flags), details
    if case.startswith("honest_"):  # an honest notebook is never sent to a TA for review
        assert result.flags == [] and result.status == "graded", details


def test_an_assignment_that_allows_native_code_may_load_it(tmp_path, template):
    """`[tool.dlcourse] native_code`: the same cffi cell as the red-team case loads, unflagged."""
    course, source, student = build_course(tmp_path)
    code, _, _ = CASES["cffi_opens_the_c_library"]
    result, _ = grade_notebook(with_solution(student, code), source, cell_timeout=30, timeout=90,
                               template=template, native_code=True)
    assert result.score == 3 and not any("foreign-function" in f for f in result.flags), result.flags


def test_the_course_config_names_the_assignments_that_may_load_native_code(tmp_path):
    from dlcourse.instructor.course import CourseError, load_course
    from tests.conftest import make_course

    course = make_course(tmp_path)
    config = course.root / "pyproject.toml"
    config.write_text(config.read_text().replace("[tool.dlcourse]", "[tool.dlcourse]\nnative_code = ['99_demo']", 1))
    assert load_course(course.root).native_code == ("99_demo",)
    config.write_text(config.read_text().replace("native_code = ['99_demo']", "native_code = '99_demo'"))
    with pytest.raises(CourseError, match="native_code takes a list"):
        load_course(course.root)
