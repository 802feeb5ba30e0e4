"""dlcourse.shortcuts.by_hand: the library call a by-hand exercise replaces fails inside the guard,
with a message naming the exercise and the call, and everything is back to normal after it."""

import pytest
import torch
import torch.nn.functional as F

from dlcourse.shortcuts import AUTOGRAD, ShortcutError, by_hand


def test_named_call_raises_with_exercise_and_call_named():
    a, b = torch.randn(3, 2), torch.randn(4, 2)
    with by_hand("pairwise_sq_distances", "torch.cdist"):
        with pytest.raises(ShortcutError, match=r"pairwise_sq_distances called torch\.cdist"):
            torch.cdist(a, b)
    assert torch.cdist(a, b).shape == (3, 4)  # restored after the block


def test_honest_computation_passes_inside_the_guard():
    a, b = torch.randn(3, 2), torch.randn(4, 2)
    with by_hand("pairwise_sq_distances", "torch.cdist"):
        got = (a[:, None, :] - b[None, :, :]).pow(2).sum(-1)
    torch.testing.assert_close(got, torch.cdist(a, b) ** 2)


def test_module_attribute_blocks_the_layer_that_uses_it():
    x = torch.randn(2, 5)
    layer = torch.nn.LayerNorm(5)
    with by_hand("layer_norm", "torch.nn.functional.layer_norm"):
        with pytest.raises(ShortcutError):
            layer(x)
        with pytest.raises(ShortcutError):
            F.layer_norm(x, (5,))


def test_autograd_blocked_through_every_road_even_an_alias_made_before():
    from torch.autograd import grad as early_alias  # bound before the guard: only the engine block stops it
    x = torch.randn(3, requires_grad=True)
    with by_hand("grad_f", AUTOGRAD):
        with pytest.raises(ShortcutError, match="grad_f"):
            (x ** 2).sum().backward()
        with pytest.raises(ShortcutError):
            torch.autograd.grad((x ** 2).sum(), x)
        with pytest.raises(ShortcutError):
            early_alias((x ** 2).sum(), x)
    (g,) = torch.autograd.grad((x ** 2).sum(), x)  # works again outside
    torch.testing.assert_close(g, 2 * x.detach())


def test_a_notebook_name_is_blocked_in_the_namespace_the_student_function_reads():
    namespace = {}
    exec("def naive(x):\n    return x + 1\n\ndef fast(x):\n    return naive(x)\n", namespace)
    with by_hand("fast", "naive", namespace=namespace["fast"].__globals__):
        with pytest.raises(ShortcutError, match="fast called naive"):
            namespace["fast"](1)
        namespace["defined_inside"] = 1
    assert namespace["fast"](1) == 2 and namespace["defined_inside"] == 1


def test_the_student_function_itself_names_the_namespace_through_the_graders_wrapper():
    """Under the grader a test is handed a wrapper of the student's function, whose globals are the
    grader's: the guard unwraps it, so the shortcut is still caught (it once scored full marks)."""
    import functools

    namespace = {}
    exec("def naive(x):\n    return x + 1\n\ndef fast(x):\n    return naive(x)\n", namespace)

    @functools.wraps(namespace["fast"])
    def wrapper(*args):  # what the grader hands the test
        return namespace["fast"](*args)

    with by_hand("fast", "naive", namespace=wrapper):
        with pytest.raises(ShortcutError, match="fast called naive") as error:
            wrapper(1)
    assert "only as its reference" not in str(error.value)
    with pytest.raises(ValueError, match="not defined where the student's function looks it up"):
        with by_hand("fast", "no_such_helper", namespace=wrapper):
            pass


def test_bad_names_say_what_to_do():
    with pytest.raises(ValueError, match="does not exist"):
        with by_hand("x", "torch.no_such_function"):
            pass
    with pytest.raises(ValueError, match="namespace"):
        with by_hand("x", "naive"):
            pass


def test_the_guard_is_an_assertion_so_a_test_cell_fails_rather_than_crashes():
    assert issubclass(ShortcutError, AssertionError)


GUARDED_SOURCE = '''\
# %% [markdown]
# # Guarded

# %% solution="square"
def square(x):
    ### BEGIN SOLUTION
    return x * x
    ### END SOLUTION

# %% tests="test_square" points=1
import torch
from dlcourse.shortcuts import by_hand
with by_hand("square", "torch.square"):
    assert square(torch.tensor(3.0)) == 9

# %% tests="test_square_again" points=1
from dlcourse.shortcuts import by_hand
with by_hand("square", "torch.square"):
    assert square(torch.tensor(-2.0)) == 4
'''


def test_tests_that_import_by_hand_grade_an_honest_notebook_full_and_unflagged(tmp_path, template):
    """The grader once stored what a test imported back unwrapped (by_hand is a @contextmanager), and the
    next test that imported it was flagged 'reverted'."""
    from dlcourse.instructor.authoring.build import student_notebook
    from dlcourse.instructor.authoring.check import solved_notebook
    from dlcourse.instructor.grading.engine import grade_notebook
    from dlcourse.instructor.source import read_source
    from tests.conftest import make_course

    course = make_course(tmp_path, source=GUARDED_SOURCE)
    source = read_source(course.source_path("99_demo"))
    honest = solved_notebook(student_notebook(course, "99_demo", source), source)
    result, _ = grade_notebook(honest, source, template=template)
    assert (result.score, result.flags) == (2.0, []), (result.flags, [c.error for c in result.cells])
    shortcut = solved_notebook(student_notebook(course, "99_demo", source), source,
                               {"square": "import torch\ndef square(x):\n    return torch.square(x)\n"})
    result, _ = grade_notebook(shortcut, source, template=template)
    assert result.score == 0 and "square called torch.square" in (result.cells[0].error or "")
