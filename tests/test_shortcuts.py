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


def test_bad_names_say_what_to_do():
    with pytest.raises(ValueError, match="does not exist"):
        with by_hand("x", "torch.no_such_function"):
            pass
    with pytest.raises(ValueError, match="namespace"):
        with by_hand("x", "naive"):
            pass


def test_the_guard_is_an_assertion_so_a_test_cell_fails_rather_than_crashes():
    assert issubclass(ShortcutError, AssertionError)
