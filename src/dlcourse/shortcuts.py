"""The course-wide guard for by-hand exercises: inside `by_hand(...)`, the library calls an exercise
replaces raise, with a message saying which call and why.

Runs wherever a test cell runs (the student's kernel, the grader's kernel). A test wraps the call to
the student's function, never its own reference:

    with by_hand("pairwise_sq_distances", "torch.cdist"):
        got = pairwise_sq_distances(a, b)
    want = torch.cdist(a, b) ** 2          # the oracle, outside the guard

What can be named:
- a dotted name, "torch.cdist", "torch.nn.functional.layer_norm", "torch.Tensor.backward": the
  attribute is replaced for the duration of the block (aliases made before the block, such as
  `from torch import cdist`, still point at the original: list the library's lower-level function
  too where one exists, as the presets below do);
- a bare name, "conv_forward_naive": the student's own earlier exercise that this one must not
  call. Pass the student's function itself, `namespace=conv_forward_im2col`: the guard unwraps it
  (under the grader a test is handed a wrapper) and blocks the name where the function reads its
  globals (a test cell's own `globals()` is a copy there, so patching that would not reach it).
  A name that is not there is an error, never a silent pass;
- a preset tuple such as AUTOGRAD, whose every entry is one of the above. AUTOGRAD also blocks
  PyTorch's autograd engine itself, so no alias of `backward` or `grad` gets through.
"""

from __future__ import annotations

import importlib
import inspect
from contextlib import ExitStack, contextmanager
from typing import Any, Iterator, MutableMapping, Sequence
from unittest import mock

# Every public road into PyTorch's backward pass, and the engine all of them end in.
AUTOGRAD_ENGINE = "autograd engine"
AUTOGRAD = ("torch.Tensor.backward", "torch.autograd.backward", "torch.autograd.grad",
            "torch.autograd.functional.jacobian", "torch.autograd.functional.vjp",
            "torch.func.grad", "torch.func.vjp", "torch.func.jacrev", AUTOGRAD_ENGINE)


class ShortcutError(AssertionError):
    """A by-hand exercise called the library function it is meant to replace."""


def _forbidden(call: str, exercise: str, reference: bool = True):
    why = f" (the test uses {call} only as its reference)" if reference else ""
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise ShortcutError(
            f"{exercise} called {call}, which this exercise replaces: it is graded on computing the result "
            f"yourself{why}. Remove the call and write the computation.")
    return fail


class _BlockedEngine:
    """Stands in for torch's C++ autograd engine: any backward pass raises."""

    def __init__(self, exercise: str):
        self.run_backward = _forbidden("PyTorch's autograd (backward / torch.autograd.grad)", exercise)


def _resolve(dotted: str) -> tuple[Any, str]:
    """'torch.nn.functional.layer_norm' -> (the object that holds it, 'layer_norm')."""
    parts = dotted.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            owner: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for part in parts[split:-1]:
            owner = getattr(owner, part)
        if not hasattr(owner, parts[-1]):
            raise ValueError(f"by_hand: {dotted} does not exist in this torch version; check the name")
        return owner, parts[-1]
    raise ValueError(f"by_hand: cannot import anything of {dotted}; give a full dotted name such as torch.cdist")


def _flatten(calls: Sequence[Any]) -> list[str]:
    flat: list[str] = []
    for call in calls:
        if isinstance(call, (tuple, list)):
            flat.extend(_flatten(call))
        else:
            flat.append(call)
    return flat


def _namespace_of(namespace: Any) -> MutableMapping[str, Any]:
    """A function's globals (through any wrappers: the grader hands tests a wrapper), or a mapping."""
    if callable(namespace):
        return inspect.unwrap(namespace).__globals__
    return namespace


@contextmanager
def by_hand(exercise: str, *calls: str | Sequence[str],
            namespace: Any = None) -> Iterator[None]:
    """Within the block, each of `calls` raises ShortcutError naming `exercise` and the call.
    `namespace`: the student's function (or a globals mapping) whose notebook names to block."""
    namespace = None if namespace is None else _namespace_of(namespace)
    with ExitStack() as stack:
        for call in _flatten(calls):
            if call == AUTOGRAD_ENGINE:
                from torch.autograd.variable import Variable
                stack.enter_context(mock.patch.object(Variable, "_execution_engine", _BlockedEngine(exercise)))
            elif "." in call:
                owner, attribute = _resolve(call)
                stack.enter_context(mock.patch.object(owner, attribute, _forbidden(call, exercise)))
            else:
                if namespace is None:
                    raise ValueError(f"by_hand: {call!r} is a notebook name: pass namespace=<the student's function>")
                if call not in namespace:
                    raise ValueError(f"by_hand: {call!r} is not defined where the student's function looks it up; "
                                     "pass namespace=<the student's function>, and run the cell that defines it")
                stack.enter_context(_replaced(namespace, call, _forbidden(call, exercise, reference=False)))
        yield


@contextmanager
def _replaced(namespace: MutableMapping[str, Any], name: str, value: Any) -> Iterator[None]:
    """Rebind one name for the block and put the original back (mock.patch.dict would restore the
    whole namespace, dropping anything the block defined)."""
    original = namespace[name]
    namespace[name] = value
    try:
        yield
    finally:
        namespace[name] = original
