"""nbgrader's scoring semantics in `dlcourse grade`'s engine, on small hand-written nbgrader notebooks.

Each test is one rule an instructor coming from nbgrader relies on: a test cell that ends with a number
scores that number (partial credit), tests that delete, replace or spy on a notebook name and then call
a student function (nbgrader's own `del squares; sum_of_squares(1)` example) work for correct code and
raise no flag, while a student function still cannot reach the test's names.
"""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor

import nbformat
import pytest

from dlcourse.instructor.grading.engine import grade_notebook

SOLUTION = {"solution": True, "grade": False, "locked": False, "schema_version": 3}
TESTS = {"solution": False, "grade": True, "locked": True, "schema_version": 3}

SQUARES = '''def squares(n):
    """The squares of 1..n."""
    ### BEGIN SOLUTION
    return [i ** 2 for i in range(1, n + 1)]
    ### END SOLUTION'''

SUM_OF_SQUARES = '''def sum_of_squares(n):
    """The sum of the squares of 1..n, using squares."""
    ### BEGIN SOLUTION
    return sum(squares(n))
    ### END SOLUTION'''

# nbgrader's user guide, ps1 problem 1: "check that sum_of_squares relies on squares"
USES_SQUARES = '''orig_squares = squares
del squares
try:
    sum_of_squares(1)
except NameError:
    pass
else:
    raise AssertionError("sum_of_squares does not use squares")
finally:
    squares = orig_squares'''

SPIES_ON_SQUARES = '''calls = []
real_squares = squares
def spy(n):
    calls.append(n)
    return real_squares(n)
squares = spy
try:
    assert sum_of_squares(3) == 14
finally:
    squares = real_squares
assert calls == [3], "sum_of_squares should call squares once"'''

MOCKS_SQUARES = '''from unittest import mock
with mock.patch("__main__.squares", wraps=squares) as spy:
    assert sum_of_squares(2) == 5
assert spy.call_count == 1, "sum_of_squares should call squares once"'''

PARTIAL = '''score = 0
if squares(1) == [1]:
    score += 1
if squares(3) == [1, 4, 9]:
    score += 2
score'''


def code(source: str, **nbgrader) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    if nbgrader:
        cell.metadata["nbgrader"] = nbgrader
    return cell


def notebook(*cells) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = list(cells)
    return nb


def source_notebook(*tests: tuple[str, str, float]) -> nbformat.NotebookNode:
    """squares and sum_of_squares, then one test cell per (grade id, text, points)."""
    return notebook(code(SQUARES, grade_id="squares", **SOLUTION),
                    code(SUM_OF_SQUARES, grade_id="sum_of_squares", **SOLUTION),
                    *[code(text, grade_id=gid, points=points, **TESTS) for gid, text, points in tests],
                    code("print(sum_of_squares(2))"))


def submission(source: nbformat.NotebookNode, **answers: str) -> nbformat.NotebookNode:
    """The source with each named solution cell's text replaced by a student's."""
    nb = copy.deepcopy(source)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell.source = answers[gid]
    return nb


CORRECT_SQUARES = "def squares(n):\n    return [i * i for i in range(1, n + 1)]"
CORRECT_SUM = "def sum_of_squares(n):\n    return sum(squares(n))"
BLANK_SQUARES = "def squares(n):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
BLANK_SUM = "def sum_of_squares(n):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
# right numbers, but does not use squares: what nbgrader's example test is there to catch
SUM_BY_ITSELF = "def sum_of_squares(n):\n    return sum(i * i for i in range(1, n + 1))"


def grade_all(template, plan: dict) -> dict:
    def one(item):
        name, (nb, source) = item
        result, executed = grade_notebook(nb, source, template=template, cell_timeout=30, timeout=90)
        return name, (result, executed)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(one, plan.items()))


def points(result) -> dict[str, float | None]:
    return {c.grade_id: c.points for c in result.cells}


# -- requirement 3: tests that delete, replace or spy on a notebook name ------------------------------

IDIOMS = source_notebook(("uses_squares", USES_SQUARES, 1), ("spies_on_squares", SPIES_ON_SQUARES, 1),
                         ("mocks_squares", MOCKS_SQUARES, 1))


@pytest.fixture(scope="module")
def idioms(template):
    reference = "def reference(n):\n    return 0\n"
    steals = source_notebook(("uses_reference", "def reference(n):\n    return n * (n + 1) * (2 * n + 1) // 6\n"
                              "assert sum_of_squares(4) == reference(4)", 1))
    rebinds = source_notebook(("expected_kept", "expected = 30\nassert sum_of_squares(4) == expected", 1))
    return grade_all(template, {
        "correct": (submission(IDIOMS, squares=CORRECT_SQUARES, sum_of_squares=CORRECT_SUM), IDIOMS),
        "walks_from_the_spy": (submission(IDIOMS, squares=CORRECT_SQUARES, sum_of_squares=WALKS_FROM_THE_SPY),
                               IDIOMS),
        "sum_by_itself": (submission(IDIOMS, squares=CORRECT_SQUARES, sum_of_squares=SUM_BY_ITSELF), IDIOMS),
        # a student who binds the name of the test's own helper first, and calls it: gets their own
        "calls_the_tests_helper": (submission(steals, squares=CORRECT_SQUARES,
                                              sum_of_squares=reference + "def sum_of_squares(n):\n"
                                              "    return globals()['reference'](n)"), steals),
        # a student function that rebinds the test's name during the test: the test keeps its own
        "rebinds_the_tests_name": (submission(rebinds, squares=CORRECT_SQUARES,
                                              sum_of_squares="expected = 0\ndef sum_of_squares(n):\n"
                                              "    global expected\n    expected = -1\n    return -1"), rebinds),
    })


def test_deleting_and_spying_on_a_notebook_name_works_for_correct_code_without_a_flag(idioms):
    result, executed = idioms["correct"]
    assert points(result) == {"uses_squares": 1, "spies_on_squares": 1, "mocks_squares": 1}
    assert result.flags == []
    # what the tests put back is the notebook's again: the cell after them still runs
    assert executed.cells[-1].outputs[0]["text"] == "5\n"


# A student function handed a spy (or a mock wrapping a student function) walks every closure and test
# namespace it can reach from it, looking for the grader's guard (whose pristine copies it could rewrite).
WALKS_FROM_THE_SPY = """import types
def sum_of_squares(n):
    seen, todo = set(), [squares]
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        assert type(obj).__name__ not in ("Guard", "Runner", "Watch"), "reached the grader's " + type(obj).__name__
        if isinstance(obj, types.FunctionType):
            todo.extend(c.cell_contents for c in obj.__closure__ or () if c.cell_contents is not None)
            if obj.__globals__.get("__name__") == "__main__":  # a notebook's or a test's namespace
                todo.extend(v for v in obj.__globals__.values() if isinstance(v, (types.FunctionType, list)))
        elif isinstance(obj, list):
            todo.extend(obj)
    return sum(squares(n))"""


def test_nothing_a_test_hands_to_student_code_leads_to_the_guard(idioms):
    result, _ = idioms["walks_from_the_spy"]
    assert points(result)["spies_on_squares"] == 1, [c.error for c in result.cells]


def test_a_function_that_does_not_use_the_deleted_name_fails_that_test_only(idioms):
    result, _ = idioms["sum_by_itself"]
    assert points(result)["uses_squares"] == 0
    assert "does not use squares" in next(c.error for c in result.cells if c.grade_id == "uses_squares")
    # the spy sees no call either: nbgrader's other way of asking the same question
    assert points(result)["spies_on_squares"] == 0 and points(result)["mocks_squares"] == 0
    assert not any("tampering" in f for f in result.flags)


def test_a_name_the_test_binds_without_reading_it_stays_the_tests(idioms):
    result, _ = idioms["calls_the_tests_helper"]
    assert result.score == 0


def test_a_student_function_cannot_rebind_the_tests_names(idioms):
    result, _ = idioms["rebinds_the_tests_name"]
    assert result.score == 0


# -- requirement 2: partial credit from the number a test ends with -----------------------------------

PARTIAL_SOURCE = source_notebook(("partial", PARTIAL, 3), ("capped", "squares(1)[0] * 10", 4),
                                 ("negative", "-2", 1), ("yes", "squares(1) == [1]", 2),
                                 ("raises_after", "score = 1\nassert squares(2) == [1, 4]\nscore", 2))


@pytest.fixture(scope="module")
def partial(template):
    only_small = "def squares(n):\n    return [1] if n == 1 else [0] * n"
    return grade_all(template, {
        "correct": (submission(PARTIAL_SOURCE, squares=CORRECT_SQUARES, sum_of_squares=CORRECT_SUM),
                    PARTIAL_SOURCE),
        "only_small": (submission(PARTIAL_SOURCE, squares=only_small, sum_of_squares=CORRECT_SUM), PARTIAL_SOURCE),
        "blank": (submission(PARTIAL_SOURCE, squares=BLANK_SQUARES, sum_of_squares=BLANK_SUM), PARTIAL_SOURCE),
    })


def test_a_test_that_ends_with_a_number_scores_that_number(partial):
    assert points(partial["correct"][0])["partial"] == 3
    assert points(partial["only_small"][0])["partial"] == 1
    assert points(partial["blank"][0])["partial"] == 0  # the stub raises before the number


def test_the_number_is_shown_as_the_cells_result(partial):
    executed = partial["only_small"][1]
    cell = next(c for c in executed.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "partial")
    assert [o["data"]["text/plain"] for o in cell.outputs if o["output_type"] == "execute_result"] == ["1"]


def test_the_number_is_kept_within_zero_and_the_cells_points(partial):
    scores = points(partial["correct"][0])
    assert scores["capped"] == 4  # 10 from a 4-point cell
    assert scores["negative"] == 0  # nbgrader gives full points here: docs/grading.md lists why we do not


def test_a_value_that_is_not_a_number_gives_all_or_nothing(partial):
    assert points(partial["correct"][0])["yes"] == 2  # True is not a score (nbgrader: float("True") fails)
    assert points(partial["correct"][0])["raises_after"] == 1
    assert points(partial["only_small"][0])["raises_after"] == 0  # raised: no points, whatever it would have said


# -- our own source format: a test's cases (dlcourse.checks.Score) ------------------------------------

SCORED = '''from dlcourse.checks import Score, assert_close
score = Score()
with score.case("n = 1", points=1):
    assert squares(1) == [1]
with score.case("n = 3", points=2):
    assert_close(squares(3), [1, 4, 9], name="squares(3)")
score'''


def test_a_score_of_cases_gives_partial_credit_in_the_grade_and_the_feedback(template, tmp_path):
    from dlcourse.instructor.grading.feedback import feedback_notebook

    source = source_notebook(("cases", SCORED, 3))
    runs = grade_all(template, {
        "correct": (submission(source, squares=CORRECT_SQUARES, sum_of_squares=CORRECT_SUM), source),
        "only_small": (submission(source, squares="def squares(n):\n    return [1] * n",
                                  sum_of_squares=CORRECT_SUM), source),
        "blank": (submission(source, squares=BLANK_SQUARES, sum_of_squares=BLANK_SUM), source),
    })
    assert {name: points(result)["cases"] for name, (result, _) in runs.items()} == \
        {"correct": 3, "only_small": 1, "blank": 0}
    result, executed = runs["only_small"]
    assert not result.flags
    cell = next(c for c in executed.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "cases")
    shown = "".join(o.get("text", "") for o in cell.outputs if o["output_type"] == "stream")
    assert "case 'n = 3' failed (2 points)" in shown and "squares(3)" in shown  # why, under the cell
    page = feedback_notebook(executed, source, result, "bob", "ps1")
    assert "| cases | partly passed | 1 / 3 |" in page.cells[0].source
    assert any("cases: partly passed, 1 / 3 points" in c.source for c in page.cells)
    result, executed = runs["blank"]
    page = feedback_notebook(executed, source, result, "bob", "ps1")
    assert "| cases | failed | 0 / 3 |" in page.cells[0].source


def test_the_self_check_shows_a_tests_partial_credit(tmp_path):
    from nbclient import NotebookClient

    from dlcourse.selfcheck import fingerprint

    nb = notebook(code("import dlcourse"), code("def squares(n):\n    return [1] * n"), code(SCORED),
                  code("6"), code("assert squares(2) == [1, 4]\n3"))
    tests = {"cases": (3, fingerprint(SCORED)), "number": (10, fingerprint("6")),
             "raises": (3, fingerprint(nb.cells[4].source))}
    nb.cells.append(code(f"from dlcourse.selfcheck import self_check\nself_check('ps1', {tests!r})"))
    NotebookClient(nb, allow_errors=True, kernel_name="python3", timeout=120).execute()
    tally = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    rows = {line.split()[0]: line for line in tally.splitlines() if line.startswith(("cases", "number", "raises"))}
    assert "1 of 3" in rows["cases"] and "PARTLY PASSED" in rows["cases"]
    assert "6 of 10" in rows["number"]
    assert "FAILED" in rows["raises"]
    assert "failed case n = 3 (2 points)" in tally
    assert "0 passed, 3 failed, 0 not run: 7 of 16 points" in tally


# -- nbgrader's other cell kinds -----------------------------------------------------------------------

def markdown(source: str, **nbgrader) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_markdown_cell(source)
    if nbgrader:
        cell.metadata["nbgrader"] = nbgrader
    return cell


READ_ONLY = {"solution": False, "grade": False, "locked": True, "schema_version": 3}
KINDS = notebook(
    code(SQUARES, grade_id="squares", **SOLUTION),
    code("def check(n):\n    return squares(n) == [i * i for i in range(1, n + 1)]", grade_id="helpers", **READ_ONLY),
    code("assert check(3)", grade_id="uses_helper", points=1, **TESTS),
    code("assert squares(2) == [1, 4]", grade_id="zero_points", points=0, **TESTS),
    code("### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION", grade_id="by_hand_code", points=2,
         solution=True, grade=True, locked=False, schema_version=3),
    markdown("Why squares?\n\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION", grade_id="why", points=1,
             solution=True, grade=True, locked=False, schema_version=3),
    markdown("Part E: plot the squares and describe them.", grade_id="task_e", points=4, task=True,
             solution=False, grade=False, locked=True, schema_version=3),
)


def released(source: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """What nbgrader generate_assignment hands out: solutions cleared with nbgrader's own stubs."""
    from nbgrader.preprocessors import ClearSolutions

    return ClearSolutions().preprocess(copy.deepcopy(source), {})[0]


@pytest.fixture(scope="module")
def kinds(template):
    blank = released(KINDS)
    answered = submission(blank, squares=CORRECT_SQUARES, by_hand_code="answer = 41 + 1", why="Because it is.")
    # the wrong squares, and the read-only helper the test relies on changed to always agree
    cheats = submission(blank, squares="def squares(n):\n    return []", helpers="def check(n):\n    return True")
    return grade_all(template, {"blank": (blank, KINDS), "answered": (answered, KINDS), "cheats": (cheats, KINDS)})


def test_task_and_hand_graded_code_cells_are_graded_by_hand(kinds):
    result, _ = kinds["answered"]
    by_id = {c.grade_id: c for c in result.cells}
    assert [(c.grade_id, c.kind, c.max_points) for c in result.cells] == [
        ("uses_helper", "tests", 1), ("zero_points", "tests", 0), ("by_hand_code", "answer", 2),
        ("why", "answer", 1), ("task_e", "answer", 4)]
    assert by_id["by_hand_code"].points is None and by_id["why"].points is None and by_id["task_e"].points is None
    assert result.manual_max_score == 7 and (result.score, result.max_score) == (1, 1)


def test_an_unchanged_answer_scores_0_as_in_nbgrader(kinds):
    by_id = {c.grade_id: c for c in kinds["blank"][0].cells}
    assert by_id["by_hand_code"].points == 0 and "No response" in by_id["by_hand_code"].error
    assert by_id["why"].points == 0 and "No response" in by_id["why"].error
    assert by_id["task_e"].points is None  # a task has no text of the student's: a TA grades it


def test_a_0_point_test_is_listed_and_its_failure_shown(kinds):
    from dlcourse.instructor.grading.feedback import outcome

    passed = next(c for c in kinds["answered"][0].cells if c.grade_id == "zero_points")
    failed = next(c for c in kinds["blank"][0].cells if c.grade_id == "zero_points")
    assert (passed.points, passed.error, outcome(passed)) == (0, None, "passed")
    assert failed.points == 0 and failed.error.startswith("NotImplementedError") and outcome(failed) == "failed"


def test_a_read_only_cell_is_put_back_and_flagged(kinds):
    result, executed = kinds["cheats"]
    assert points(result)["uses_helper"] == 0
    assert "locked cell helpers edited: restored" in result.flags
    helper = next(c for c in executed.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "helpers")
    assert "range(1, n + 1)" in helper.source
    assert not any("locked" in f for f in kinds["answered"][0].flags)


def test_the_gradebook_holds_every_kind_for_the_formgrader(kinds, tmp_path):
    from nbgrader.api import Gradebook

    from dlcourse.instructor.grading.gradebook import GradebookWriter

    url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    writer = GradebookWriter(url, "ps1", "problem1", KINDS)
    for student in ("answered", "blank"):
        writer.save(student, kinds[student][0])
    writer.close()
    with Gradebook(url) as gb:
        assert [t.name for t in gb.find_notebook("problem1", "ps1").task_cells] == ["task_e"]
        task = gb.find_grade("task_e", "problem1", "ps1", "answered")
        assert (task.auto_score, task.needs_manual_grade, task.max_score) == (None, True, 4)  # a TA's to grade
        code_answer = gb.find_grade("by_hand_code", "problem1", "ps1", "answered")
        assert (code_answer.auto_score, code_answer.needs_manual_grade) == (None, True)
        unchanged = gb.find_grade("why", "problem1", "ps1", "blank")
        assert unchanged.auto_score == 0
        zero = gb.find_grade("zero_points", "problem1", "ps1", "answered")
        assert (zero.auto_score, zero.max_score) == (0, 0)
        assert gb.find_submission("ps1", "answered").max_score == 8  # 1 + 0 + 2 + 1 + 4 points, as nbgrader counts


# -- ### AUTOTEST and ### HASHED AUTOTEST --------------------------------------------------------------

# A small autotests.yml in nbgrader's format (ours, not nbgrader's file): a type check, then the value.
AUTOTESTS_YML = '''python3:
    setup: "from hashlib import sha1"
    hash: 'sha1({{snippet}}.encode("utf-8")+b"{{salt}}").hexdigest()'
    dispatch: "type({{snippet}})"
    normalize: "str({{snippet}})"
    check: 'assert {{snippet}} == "{{value}}", "{{message}}"'
    success: "print('Success!')"
    templates:
        default:
            - test: "type({{snippet}})"
              fail: "type of {{snippet}} is not correct"
            - test: "{{snippet}}"
              fail: "value of {{snippet}} is not correct"
'''

AUTOTEST_SOURCE = notebook(
    code(SQUARES, grade_id="squares", **SOLUTION),
    code("### AUTOTEST squares(3); len(squares(5))", grade_id="auto", points=1, **TESTS),
    code("### HASHED AUTOTEST squares(4)", grade_id="hashed", points=2, **TESTS),
)


@pytest.fixture(scope="module")
def autotested(template, tmp_path_factory):
    from dlcourse.instructor.grading.autotests import expand_autotests

    folder = tmp_path_factory.mktemp("ps1")
    (folder / "autotests.yml").write_text(AUTOTESTS_YML)
    handed_out = released(expand_autotests(AUTOTEST_SOURCE, folder))

    def grade(nb):
        return grade_notebook(nb, AUTOTEST_SOURCE, template=template, autotests=(folder,), cell_timeout=30,
                              timeout=90)

    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = dict(zip(("correct", "wrong", "blank"), pool.map(grade, [
            submission(handed_out, squares=CORRECT_SQUARES),
            submission(handed_out, squares="def squares(n):\n    return [i * i for i in range(n + 1)]"),
            handed_out])))
    return handed_out, runs


def test_autotest_lines_are_expanded_into_the_tests_nbgrader_hands_out(autotested):
    handed_out, _ = autotested
    auto, hashed = handed_out.cells[1].source, handed_out.cells[2].source
    assert "AUTOTEST" not in auto and 'assert str(squares(3)) == "[1, 4, 9]"' in auto
    assert "[1, 4, 9, 16]" not in hashed and "sha1(" in hashed  # the expected value only as a hash


def test_autotests_score_like_nbgrader_and_a_blank_notebook_gets_nothing(autotested):
    _, runs = autotested
    assert {name: points(result) for name, (result, _) in runs.items()} == {
        "correct": {"auto": 1, "hashed": 2}, "wrong": {"auto": 0, "hashed": 0}, "blank": {"auto": 0, "hashed": 0}}
    # the expanded cells are the ones handed out: nothing to restore, nothing flagged
    assert runs["correct"][0].flags == []


def test_autotest_lines_without_an_autotests_file_stop_with_what_to_do(tmp_path, template):
    from dlcourse.instructor.grading.autotests import AutotestError

    with pytest.raises(AutotestError, match="no .*autotests.yml"):
        grade_notebook(AUTOTEST_SOURCE, AUTOTEST_SOURCE, template=template, autotests=(tmp_path,))


def test_an_nbgrader_course_folder_expands_autotest_lines_into_the_same_tests(autotested, tmp_path):
    """A plain nbgrader course's source gets the tests a dlcourse source gets, from the file its
    InstantiateTests.autotest_filename names (here at the course root); without it, one line saying so."""
    from dlcourse.instructor.course import CourseError
    from dlcourse.instructor.grading.nbgrader_course import graded_version, load_nbgrader_course

    handed_out, _ = autotested
    path = tmp_path / "source" / "ps1" / "squares.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(AUTOTEST_SOURCE, str(path))
    (tmp_path / "nbgrader_config.py").write_text(
        'c = get_config()\nc.InstantiateTests.autotest_filename = "course_autotests.yml"\n')
    with pytest.raises(CourseError, match=r"squares.ipynb: the source has ### AUTOTEST lines but there is no "
                                          r".*course_autotests.yml"):
        graded_version(load_nbgrader_course(tmp_path), path)
    (tmp_path / "course_autotests.yml").write_text(AUTOTESTS_YML)
    graded = graded_version(load_nbgrader_course(tmp_path), path)
    assert [cell.source for cell in graded.cells[1:]] == [cell.source for cell in handed_out.cells[1:]]


def test_a_deleted_read_only_cell_goes_back_and_one_stripped_by_an_editor_is_not_doubled():
    from dlcourse.instructor.grading.restore import restore

    deleted = released(KINDS)
    del deleted.cells[1]
    nb, flags = restore(deleted, KINDS)
    assert "missing locked cell helpers restored" in flags
    assert [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells[:3]] == ["squares", "helpers", "uses_helper"]
    stripped = released(KINDS)
    stripped.cells[1].metadata = {}
    nb, flags = restore(stripped, KINDS)
    assert not [f for f in flags if "locked" in f]
    assert sum("def check" in c.source for c in nb.cells) == 1
