"""dlcourse.checks: what a student reads when a visible test fails."""

import numpy as np
import pytest
import torch

from dlcourse.checks import (
    CheckError,
    assert_close,
    assert_device,
    assert_dtype,
    assert_finite,
    assert_rel_error,
    assert_shape,
    assert_true,
    default_tolerances,
)


def failure(call, *args, **kwargs) -> str:
    with pytest.raises(CheckError) as error:
        call(*args, **kwargs)
    assert isinstance(error.value, AssertionError)  # pytest and nbgrader treat it as a failed test
    return str(error.value)


def test_equal_values_pass_for_tensors_arrays_and_numbers():
    x = torch.randn(3, 4)
    assert_close(x, x.clone())
    assert_close(x.numpy(), x.numpy().copy())
    assert_close(x, x.numpy())  # torch vs NumPy: values only
    assert_close(3.0, torch.tensor(3.0))
    assert_close(torch.tensor(2), 2)
    assert_close([1.0, 2.0], np.array([1.0, 2.0]))


def test_value_mismatch_message_has_name_errors_index_and_hint():
    expected = torch.zeros(3, 4)
    actual = expected.clone()
    actual[1, 2] = 0.5
    actual[2, 0] = -0.25
    message = failure(assert_close, actual, expected, name="softmax(x)", hint="normalise over dim=-1")
    assert message.startswith("softmax(x) does not match the expected value")
    assert "2 of 12 elements differ" in message
    assert "max abs error: 0.5 at index (1, 2)" in message
    assert "max rel error" in message
    assert "first mismatch at index (1, 2): got 0.5, expected 0" in message
    assert "hint: normalise over dim=-1" in message


def test_shape_mismatch_message():
    message = failure(assert_close, torch.zeros(4, 3), torch.zeros(3, 4), name="logits")
    assert "logits does not have the expected shape" in message
    assert "shape: got (4, 3), expected (3, 4)" in message


def test_no_broadcasting():
    failure(assert_close, torch.zeros(1, 4), torch.zeros(4))


def test_dtype_mismatch_message():
    message = failure(assert_close, torch.zeros(3, dtype=torch.float64), torch.zeros(3), name="out")
    assert "out has the right values but the wrong dtype" in message
    assert "dtype: got float64, expected float32" in message
    assert_close(torch.zeros(3, dtype=torch.float64), torch.zeros(3), check_dtype=False)


def test_integer_results_must_match_exactly():
    message = failure(assert_close, torch.tensor([0, 1, 2]), torch.tensor([0, 1, 3]), name="predictions")
    assert "(rtol=0, atol=0)" in message and "first mismatch at index (2,): got 2, expected 3" in message


def test_dtype_aware_default_tolerances():
    assert default_tolerances(torch.float64) < default_tolerances(torch.float32) < default_tolerances(torch.float16)
    assert default_tolerances(torch.float32, torch.float64) == default_tolerances(torch.float32)  # least precise
    assert default_tolerances(torch.int64) == (0.0, 0.0)
    base = torch.linspace(1, 2, 5, dtype=torch.float64)
    assert_close((base + 1e-6).float(), base.float())  # float32: round-off passes
    failure(assert_close, base + 1e-6, base)  # float64: the same difference is a bug
    assert_close((base + 4e-3).half(), base.half())  # float16: loose
    assert_close((base + 1e-2).bfloat16(), base.bfloat16())
    failure(assert_close, base.float() + 1e-3, base.float())


def test_explicit_tolerances_win():
    assert_close(torch.tensor([1.0]), torch.tensor([1.1]), atol=0.2)
    failure(assert_close, torch.tensor([1.0]), torch.tensor([1.1]), rtol=0.01, atol=0)


def test_nan_where_a_number_is_expected_is_reported():
    actual = torch.ones(2, 3)
    actual[0, 1] = float("nan")
    message = failure(assert_close, actual, torch.ones(2, 3), name="loss per example")
    assert "NaN" in message and "first at index (0, 1)" in message and "log(0)" in message
    assert_close(torch.tensor([float("nan"), 1.0]), torch.tensor([float("nan"), 1.0]))  # NaN where NaN is expected
    failure(assert_close, torch.tensor([float("nan")]), torch.tensor([float("nan")]), equal_nan=False)
    assert "infinite" in failure(assert_close, torch.tensor([float("inf")]), torch.tensor([1.0]))


def test_none_and_wrong_types_say_what_to_fix():
    assert "forget to `return`" in failure(assert_close, None, torch.zeros(2), name="forward(x)")
    assert "wrong type" in failure(assert_close, "abc", torch.zeros(2))


def test_values_are_compared_on_the_cpu():
    x = torch.randn(5, requires_grad=True)
    assert_close(x * 1, x.detach())  # a tensor that requires grad is fine
    if torch.cuda.is_available():
        assert_close(x.detach().cuda(), x.detach())
        message = failure(assert_close, x.detach().cuda(), x.detach(), check_device=True)
        assert "device: got cuda:0, expected cpu" in message


def test_assert_device():
    assert_device(torch.zeros(1), "cpu")
    message = failure(assert_device, torch.zeros(1), "cuda", name="batch")
    assert "batch is on the wrong device" in message and ".to(device)" in message
    assert "not a tensor" in failure(assert_device, np.zeros(1), "cpu")


def test_assert_shape():
    assert_shape(torch.zeros(8, 10), (8, 10))
    assert_shape(torch.zeros(8, 10), (None, 10))
    message = failure(assert_shape, torch.zeros(8, 12), (None, 10), name="logits", hint="one score per class")
    assert "logits has the wrong shape" in message
    assert "shape: got (8, 12), expected (*, 10)" in message
    assert "dimension 1: got 12, expected 10" in message and "hint: one score per class" in message
    assert "number of dimensions" in failure(assert_shape, np.zeros((2, 3, 4)), (2, 12))
    assert "forget to `return`" in failure(assert_shape, None, (2,))


def test_assert_dtype():
    assert_dtype(torch.zeros(1), torch.float32)
    assert_dtype(np.zeros(1, dtype=np.int64), "int64")
    assert_dtype(torch.zeros(1, dtype=torch.long), (torch.int32, torch.int64))
    message = failure(assert_dtype, torch.zeros(1, dtype=torch.float64), torch.float32, name="weights")
    assert "weights has the wrong dtype" in message and "got float64, expected float32" in message


def test_assert_finite():
    assert_finite(torch.ones(3))
    message = failure(assert_finite, torch.tensor([1.0, float("inf"), float("nan")]), name="activations")
    assert "2 of 3 elements are not finite, first at index (1,)" in message


def test_assert_rel_error():
    grad = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert assert_rel_error(grad, grad + 1e-12, 1e-7) < 1e-7
    wrong = grad.copy()
    wrong[1, 0] = -3.0
    message = failure(assert_rel_error, wrong, grad, 1e-7, name="dW", hint="check the sign")
    assert "dW is not close enough" in message and "relative error 1 > tolerance 1e-07" in message
    assert "worst at index (1, 0): got -3, expected 3" in message and "1 of 4 elements are off" in message
    assert "hint: check the sign" in message
    assert "shape" in failure(assert_rel_error, grad.T[:1], grad)
    failure(assert_rel_error, np.array([np.nan]), np.array([1.0]))  # NaN never passes


def test_assert_true():
    assert_true(torch.tensor([True, True]), "all positive")
    message = failure(assert_true, False, "the loss should go down", hint="is the learning rate positive?")
    assert message == "the loss should go down\n  hint: is the learning rate positive?"
