"""Student checks: assertions whose failure message says *what* differs.

The visible tests in every notebook call these instead of a bare ``assert``, so a
failing test tells the student the shape, dtype, device, largest error, the first
index that differs (with both values) and a hint, e.g.::

    CheckError: softmax(x) does not match the expected value
      3 of 12 elements differ (rtol=1e-05, atol=1e-05)
      max abs error: 0.25 at index (1, 2)
      max rel error: 0.5
      first mismatch at index (0, 1): got 0.75, expected 0.5
      hint: did you normalise over the right dimension (dim=-1)?

Everything accepts NumPy arrays, torch tensors on any device and Python numbers;
values are compared on the CPU, so a correct result on the GPU passes. Default
tolerances follow the dtype: float64 tight, float32 looser, float16/bfloat16 loose,
integers and booleans exact.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import torch

from dlcourse.arrays import rel_error, relative_errors, to_float64, to_numpy

__all__ = [
    "CheckError",
    "assert_close",
    "assert_shape",
    "assert_dtype",
    "assert_device",
    "assert_finite",
    "assert_rel_error",
    "assert_true",
    "default_tolerances",
    "Score",
]


class CheckError(AssertionError):
    """A student check failed; the message says what differs and what to try."""


# (rtol, atol) per dtype name; a comparison uses the least precise dtype involved.
_TOLERANCES: dict[str, tuple[float, float]] = {
    "float64": (1e-7, 1e-7),
    "complex128": (1e-7, 1e-7),
    "float32": (1e-5, 1e-5),
    "complex64": (1e-5, 1e-5),
    "float16": (1e-2, 1e-3),
    "bfloat16": (2e-2, 1e-2),
}
_PRECISION_ORDER = ["bfloat16", "float16", "float32", "complex64", "float64", "complex128"]


def default_tolerances(*dtypes: Any) -> tuple[float, float]:
    """``(rtol, atol)`` for comparing values of these dtypes (torch, NumPy or names).

    The least precise floating dtype wins; integer/bool only gives (0, 0), i.e. exact.
    """
    names = [_dtype_name(d) for d in dtypes]
    floating = [n for n in names if n in _TOLERANCES]
    if not floating:
        return (0.0, 0.0)
    least = min(floating, key=_PRECISION_ORDER.index)
    return _TOLERANCES[least]


def _dtype_name(dtype: Any) -> str:
    """'float32' for torch.float32, np.float32, np.dtype('float32') or 'float32'."""
    if isinstance(dtype, torch.dtype):
        return str(dtype).replace("torch.", "")
    if dtype is float:
        return "float64"
    if dtype is int:
        return "int64"
    if dtype is bool:
        return "bool"
    try:
        return np.dtype(dtype).name
    except TypeError:
        return str(dtype)


def _describe(x: Any) -> str:
    """Short description of a value's kind for messages: 'torch.Tensor', 'numpy.ndarray', ..."""
    if isinstance(x, torch.Tensor):
        return "torch.Tensor"
    if isinstance(x, np.ndarray):
        return "numpy.ndarray"
    return type(x).__name__


def _info(x: Any) -> tuple[tuple[int, ...], str, str | None]:
    """(shape, dtype name, device or None) of an array, tensor, number or nested list."""
    if isinstance(x, torch.Tensor):
        return tuple(x.shape), _dtype_name(x.dtype), str(x.device)
    if isinstance(x, np.ndarray):
        return tuple(x.shape), x.dtype.name, None
    if isinstance(x, bool):
        return (), "bool", None
    if isinstance(x, int):
        return (), "int64", None
    if isinstance(x, float):
        return (), "float64", None
    array = np.asarray(x)
    return tuple(array.shape), array.dtype.name, None


def _comparable(x: Any) -> bool:
    if isinstance(x, (torch.Tensor, np.ndarray, int, float, bool, complex, np.number, np.bool_)):
        return True
    if isinstance(x, (list, tuple)):
        try:
            array = np.asarray(x)
        except (ValueError, TypeError):
            return False
        return array.dtype != object
    return False


def _fmt(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    return repr(value.item() if hasattr(value, "item") else value)


def _fmt_index(index: Sequence[int]) -> str:
    index = tuple(int(i) for i in index)
    return str(index) if len(index) != 1 else f"({index[0]},)"


def _fail(name: str, headline: str, details: Iterable[str], hint: str | None) -> None:
    lines = [f"{name} {headline}"]
    lines += [f"  {line}" for line in details]
    if hint:
        lines.append(f"  hint: {hint}")
    raise CheckError("\n".join(lines))


def assert_close(
    actual: Any,
    expected: Any,
    *,
    name: str = "value",
    rtol: float | None = None,
    atol: float | None = None,
    hint: str | None = None,
    check_dtype: bool = True,
    check_device: bool = False,
    equal_nan: bool = True,
) -> None:
    """Assert ``|actual - expected| <= atol + rtol * |expected|`` elementwise, with a useful message.

    Args:
        actual: the student's result: tensor (any device), NumPy array, number or list.
        expected: the reference, same shape as ``actual`` (no broadcasting).
        name: what is compared, used in the message ("softmax(x)", "grad of W").
        rtol, atol: tolerances; None picks them from the dtypes (see
            :func:`default_tolerances`): float64 1e-7, float32 1e-5, float16 1e-2/1e-3,
            bfloat16 2e-2/1e-2, integers and bools exact.
        hint: one line the student reads when the check fails (what to look at).
        check_dtype: fail when both are tensors (or both NumPy arrays) with different
            dtypes. Mixed kinds (tensor vs array vs number) compare values only.
        check_device: fail when both are tensors on different devices. Off by default:
            values are compared on the CPU, so a right answer on the GPU passes.
        equal_nan: NaN where ``expected`` is NaN counts as equal. NaN (or inf) where
            ``expected`` is finite is always a mismatch.

    Raises:
        CheckError (an AssertionError) listing everything that differs: the kind of
        object, shape, dtype, device, how many elements differ, max absolute and
        relative error, the first mismatching index with both values, NaNs, the hint.
    """
    if actual is None:
        _fail(name, "is None", [f"expected a {_describe(expected)}; did the function forget to `return` its result?"], hint)
    if not _comparable(actual):
        _fail(name, f"has the wrong type: got {_describe(actual)}, expected {_describe(expected)}", [], hint)

    a_shape, a_dtype, a_device = _info(actual)
    e_shape, e_dtype, e_device = _info(expected)
    problems: list[str] = []
    if a_shape != e_shape:
        problems.append(f"shape: got {a_shape}, expected {e_shape}")
    same_kind = type(actual) is type(expected) and isinstance(actual, (torch.Tensor, np.ndarray))
    if check_dtype and same_kind and a_dtype != e_dtype:
        problems.append(f"dtype: got {a_dtype}, expected {e_dtype}")
    if check_device and a_device is not None and e_device is not None and not _same_device(a_device, e_device):
        problems.append(f"device: got {a_device}, expected {e_device} (move it with .to(device))")
    if a_shape != e_shape:  # values cannot be compared elementwise
        _fail(name, "does not have the expected shape", problems, hint)

    default_rtol, default_atol = default_tolerances(
        *[d for d, x in ((a_dtype, actual), (e_dtype, expected)) if not isinstance(x, (float, int))]
        or [a_dtype, e_dtype]
    )
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol

    got = to_numpy(actual)
    want = to_numpy(expected)
    value_problems = _value_problems(got, want, rtol, atol, equal_nan)
    problems += value_problems
    if problems:
        wrong = " and ".join(p.split(":")[0] for p in problems)
        headline = "does not match the expected value" if value_problems else f"has the right values but the wrong {wrong}"
        _fail(name, headline, problems, hint)


def _value_problems(got: np.ndarray, want: np.ndarray, rtol: float, atol: float, equal_nan: bool) -> list[str]:
    if not (np.issubdtype(got.dtype, np.number) or got.dtype == np.bool_) or not (
        np.issubdtype(want.dtype, np.number) or want.dtype == np.bool_
    ):
        if np.array_equal(got, want):
            return []
        return ["values differ (non-numeric comparison)"]
    if got.size == 0:
        return []
    exact = not (np.issubdtype(got.dtype, np.inexact) or np.issubdtype(want.dtype, np.inexact))
    if exact:
        mismatch = got != want
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    else:
        g = got.astype(np.complex128 if np.iscomplexobj(got) or np.iscomplexobj(want) else np.float64)
        w = want.astype(g.dtype)
        with np.errstate(invalid="ignore", over="ignore"):
            diff = np.abs(g - w)
            mismatch = ~(diff <= atol + rtol * np.abs(w))
            both_nan = np.isnan(g) & np.isnan(w)
            same_inf = np.isinf(g) & np.isinf(w) & (g == w)
        mismatch &= ~same_inf
        if equal_nan:
            mismatch &= ~both_nan
        diff = np.where(same_inf | both_nan, 0.0, diff)
    count = int(np.count_nonzero(mismatch))
    if count == 0:
        return []

    problems = [f"{count} of {got.size} elements differ (rtol={rtol:g}, atol={atol:g})"]
    if not exact:
        nan_in_got = np.isnan(got) & ~np.isnan(want)
        if nan_in_got.any():
            first = np.argwhere(nan_in_got)[0]
            problems.append(
                f"{int(nan_in_got.sum())} NaN value(s) where the expected value is a number, first at index "
                f"{_fmt_index(first)} (look for 0/0, log(0), sqrt of a negative or an overflow)"
            )
        inf_in_got = np.isinf(got) & np.isfinite(want)
        if inf_in_got.any():
            first = np.argwhere(inf_in_got)[0]
            problems.append(f"{int(inf_in_got.sum())} infinite value(s) where the expected value is finite, "
                            f"first at index {_fmt_index(first)}")
    finite = np.isfinite(diff)
    if (mismatch & finite).any():  # skip when every mismatch is a NaN/inf (reported above)
        masked = np.where(finite, diff, -1.0)
        worst = np.unravel_index(int(np.argmax(masked)), got.shape)
        where = f" at index {_fmt_index(worst)}" if got.ndim else ""
        problems.append(f"max abs error: {_fmt(float(masked[worst]))}{where}")
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = diff / np.abs(want.astype(np.float64) if exact else want)
        rel = np.where(finite & ~np.isnan(rel), rel, -1.0)
        problems.append(f"max rel error: {_fmt(float(np.max(rel)))}")
    first = tuple(np.argwhere(mismatch)[0]) if got.ndim else ()
    if got.ndim:
        problems.append(f"first mismatch at index {_fmt_index(first)}: got {_fmt(got[first])}, "
                        f"expected {_fmt(want[first])}")
    else:
        problems.append(f"got {_fmt(got[()])}, expected {_fmt(want[()])}")
    return problems


def _same_device(a: str, b: str) -> bool:
    da, db = torch.device(a), torch.device(b)
    if da.type != db.type:
        return False
    if da.index is None or db.index is None:
        return True
    return da.index == db.index


def assert_shape(x: Any, shape: Sequence[int | None], *, name: str = "value", hint: str | None = None) -> None:
    """Assert ``x.shape == shape``; ``None`` (or -1) in ``shape`` matches any size.

    Example: ``assert_shape(logits, (batch_size, 10), name="logits")``.
    """
    if x is None:
        _fail(name, "is None", ["did the function forget to `return` its result?"], hint)
    if not hasattr(x, "shape"):
        _fail(name, f"has no shape: got {_describe(x)}, expected an array or tensor of shape {tuple(shape)}", [], hint)
    got = tuple(int(n) for n in x.shape)
    want = tuple(shape)
    pattern = "(" + ", ".join("*" if n is None or n == -1 else str(n) for n in want) + ("," if len(want) == 1 else "") + ")"
    if len(got) != len(want):
        _fail(name, "has the wrong number of dimensions",
              [f"shape: got {got} ({len(got)} dims), expected {pattern} ({len(want)} dims)"], hint)
    wrong = [i for i, (g, w) in enumerate(zip(got, want)) if w is not None and w != -1 and g != w]
    if wrong:
        _fail(name, "has the wrong shape",
              [f"shape: got {got}, expected {pattern}", f"dimension {wrong[0]}: got {got[wrong[0]]}, expected {want[wrong[0]]}"],
              hint)


def assert_dtype(x: Any, dtype: Any, *, name: str = "value", hint: str | None = None) -> None:
    """Assert the dtype of a tensor/array; ``dtype`` is a torch or NumPy dtype, a name
    like ``"float32"``, or a tuple of allowed ones."""
    allowed = dtype if isinstance(dtype, (tuple, list)) else (dtype,)
    allowed_names = [_dtype_name(d) for d in allowed]
    if x is None:
        _fail(name, "is None", ["did the function forget to `return` its result?"], hint)
    _, got, _ = _info(x)
    if got not in allowed_names:
        _fail(name, "has the wrong dtype", [f"dtype: got {got}, expected {' or '.join(allowed_names)}"], hint)


def assert_device(x: Any, device: Any, *, name: str = "value", hint: str | None = None) -> None:
    """Assert a tensor lives on ``device`` (``"cpu"``, ``"cuda"``, a torch.device); ``cuda``
    matches any CUDA index."""
    if not isinstance(x, torch.Tensor):
        _fail(name, f"is not a tensor (got {_describe(x)}), so it is on no device", [], hint)
    if not _same_device(str(x.device), str(torch.device(device))):
        _fail(name, "is on the wrong device", [f"device: got {x.device}, expected {device} (use .to(device))"], hint)


def assert_finite(x: Any, *, name: str = "value", hint: str | None = None) -> None:
    """Assert no NaN or inf in ``x``; the message gives how many and the first index."""
    values = to_numpy(x)
    if not np.issubdtype(values.dtype, np.inexact):
        return
    bad = ~np.isfinite(values)
    if bad.any():
        first = np.argwhere(bad)[0] if values.ndim else ()
        _fail(name, "contains NaN or inf", [
            f"{int(bad.sum())} of {values.size} elements are not finite"
            + (f", first at index {_fmt_index(first)}: {_fmt(values[tuple(first)])}" if values.ndim else ""),
        ], hint)


def assert_rel_error(
    actual: Any, expected: Any, tol: float = 1e-7, *, name: str = "gradient", hint: str | None = None
) -> float:
    """Assert :func:`dlcourse.arrays.rel_error` ``(actual, expected) <= tol``; return the error.

    Made for gradient checks (analytic vs numerical, both float64). The message
    gives the relative error, the shape and the index where it is largest.
    """
    if actual is None:
        _fail(name, "is None", ["did the backward pass forget to `return` this gradient?"], hint)
    a_shape, _, _ = _info(actual)
    e_shape, _, _ = _info(expected)
    if a_shape != e_shape:
        _fail(name, "does not have the expected shape", [f"shape: got {a_shape}, expected {e_shape}"], hint)
    error = rel_error(actual, expected)
    if not error <= tol:  # also catches NaN
        got, want = to_float64(actual), to_float64(expected)
        per_element = relative_errors(got, want)
        per_element = np.where(np.isnan(per_element), np.inf, per_element)
        details = [f"relative error {error:.3g} > tolerance {tol:g}"]
        if got.ndim:
            worst = np.unravel_index(int(np.argmax(per_element)), got.shape)
            details.append(f"worst at index {_fmt_index(worst)}: got {_fmt(got[worst])}, expected {_fmt(want[worst])}")
            details.append(f"{int(np.count_nonzero(per_element > tol))} of {got.size} elements are off")
        else:
            details.append(f"got {_fmt(got[()])}, expected {_fmt(want[()])}")
        _fail(name, "is not close enough", details, hint)
    return error


def assert_true(condition: Any, message: str, *, hint: str | None = None) -> None:
    """Assert ``condition`` with a message written for the student (and an optional hint)."""
    if isinstance(condition, torch.Tensor):
        condition = bool(condition.all())
    elif isinstance(condition, np.ndarray):
        condition = bool(condition.all())
    if not condition:
        lines = [message] + ([f"  hint: {hint}"] if hint else [])
        raise CheckError("\n".join(lines))


class Score:
    """Partial credit inside one test cell: each case is worth some of the cell's points, and the cell
    ends with ``score``, whose value is the points its passing cases earned. A number a test cell ends
    with is its score in nbgrader and in ``dlcourse grade`` (capped to the cell's points), so one case
    failing costs only its own points::

        score = Score()
        with score.case("one sequence", points=1):
            assert_close(rnn(x1), reference(x1), name="rnn(x1)")
        with score.case("a batch of three", points=2):
            assert_close(rnn(xs), reference(xs), name="rnn(xs)")
        score

    A case fails when its block raises an ``Exception`` (a failed check, the stub's
    ``NotImplementedError``, any error of the student's code); the message is printed under the cell and
    the next case runs. The cases' points should add up to the cell's (``dlcourse check`` holds the
    solution to full marks).
    """

    def __init__(self) -> None:
        self.cases: list[tuple[str, float, str | None]] = []  # (name, points, error or None: passed)

    def case(self, name: str, points: float = 1) -> "_Case":
        """A ``with`` block worth `points` when it runs to its end."""
        if isinstance(points, bool) or not isinstance(points, (int, float)) or points < 0:
            raise ValueError(f"case {name!r}: points must be a number >= 0, not {points!r}")
        return _Case(self, str(name), float(points))

    @property
    def earned(self) -> float:
        return float(sum(points for _, points, error in self.cases if error is None))

    @property
    def total(self) -> float:
        return float(sum(points for _, points, _ in self.cases))

    def failures(self) -> list[str]:
        """One line per failed case: its name, points and the first line of its error."""
        return [f"{name} ({points:g} points): {error}" for name, points, error in self.cases if error is not None]

    def __repr__(self) -> str:  # what nbgrader reads (text/plain) as the cell's points
        return f"{self.earned:g}"

    def markdown(self) -> str:
        rows = "\n".join(f"| {'passed' if error is None else 'failed'} | {points:g} | `{name}` |"
                         for name, points, error in self.cases)
        return (f"**{self.earned:g} of {self.total:g} points**\n\n| case | points | name |\n| --- | --- | --- |\n"
                + rows)

    def _repr_markdown_(self) -> str:
        return self.markdown()


class _Case:
    def __init__(self, score: Score, name: str, points: float):
        self.score, self.name, self.points = score, name, points

    def __enter__(self) -> "_Case":
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        if kind is None:
            self.score.cases.append((self.name, self.points, None))
            return False
        if not issubclass(kind, Exception):  # KeyboardInterrupt, SystemExit, the grader's own: not a case's
            return False
        first = f"{kind.__name__}: {error}".splitlines()[0][:200]
        self.score.cases.append((self.name, self.points, first))
        print(f"case {self.name!r} failed ({self.points:g} points): {error if str(error) else kind.__name__}")
        return True
