"""The kernel process: runs one submission's cells in an IPython shell and answers each `RunCell`
with the cell's outputs and verdict (`protocol`). Runs in a kernel, forked from the template
(`template_main`), which built the shell (`Runner`) before the fork, so a submission starts in
milliseconds; `serve` confines the kernel first (`sandbox`). Student cells run through IPython
(magics, display, matplotlib inline all work). Test cells do not: they are compiled and run by a
guard that first puts back what student code may have changed to raise its score:

- input and AST transformers, custom exception handlers, ``sys.excepthook``,
  trace and profile functions and warning filters are ignored or reset (a test is
  compiled from the instructor's text with the pristine ``compile`` and run
  with the pristine ``exec``, so IPython's hooks never see it);
- attributes of ``builtins``, torch, numpy, ``dlcourse`` and their main classes
  that differ from the copy taken before any student code ran are put back, and
  so are their ``sys.modules`` entries and module names the notebook rebinds;
- torch function and dispatch modes are popped; tensor subclasses that student
  functions return are turned into plain tensors;
- the test runs in a copy of the notebook's namespace, so a student function
  that rebinds a global (``assert_close = ...``) during the test cannot reach it;
  only the test's own ``del`` of a notebook name, or a rebinding of one it read first
  (nbgrader's ``orig = squares; del squares`` and spies), passes into the notebook
  (`TestNamespace`); a number the test ends with is its score (partial credit);
- a patch made while the test ran (by student code the test called) fails that
  test and is flagged.

- an audit hook (PEP 578, `Watch`; installed in the template, so it is in place before any
  student code and cannot be removed) denies notebook code frames (``sys._getframe``,
  ``sys._current_frames``, a traceback's or generator's frame, also through ``inspect`` and
  ``traceback`` helpers), ``gc.get_objects``/``get_referrers``/``get_referents``, ``ctypes``, code
  compiled or renamed under a library's file name, and writing the ``__code__`` of grader or
  ``dlcourse`` functions; what it denied fails the running test and flags the submission. Libraries
  calling these for themselves (logging, pdb, traceback printing, torch.compile) are let through:
  the caller is told apart by its code's file name, which notebook code cannot fake unseen;
- the grader's own classes and modules (this one, `protocol`, ``json``, the pipe's ``Connection``)
  are sealed (`make_seal`): put back around every cell by functions ``serve`` bound before student
  code ran, and a change fails the test and flags the submission.

The verdict is sent with the request's one-time nonce; the grader counts a test
as passed only on an "ok" carrying the right nonce. What is still not prevented,
and why, is in docs/grading.md ("Not prevented").
"""

from __future__ import annotations

import ast
import builtins
import json
import os
import re
import signal
import sys
import threading
import time
import traceback
import types
import warnings

from dlcourse.instructor.grading.protocol import MAX_MESSAGE, CellReply, Hello, KernelConfig, decode_request
from dlcourse.instructor.grading.settings import OUTPUT_LIMIT

# Modules (and their classes) whose attributes tests rely on.
PROTECTED_MODULES = (
    "builtins", "math", "operator", "functools", "inspect", "warnings",
    "numpy", "numpy.testing", "numpy.linalg", "numpy.random",
    "torch", "torch.nn", "torch.nn.functional", "torch.linalg", "torch.testing", "torch.autograd",
    "torch.nn.init", "torch.optim", "torch.overrides",
    "dlcourse", "dlcourse.arrays", "dlcourse.checks", "dlcourse.gradcheck", "dlcourse.env",
)
PROTECTED_CLASSES = (
    ("torch", "Tensor"), ("torch._C", "TensorBase"), ("torch.nn", "Module"), ("torch.nn", "Linear"),
    ("torch.nn", "Parameter"), ("torch.optim", "Optimizer"), ("builtins", "object"), ("dlcourse.checks", "Score"),
)
# A class that overrides these can make any `assert x == y` or `assert x` pass.
FAKING_METHODS = ("__eq__", "__ne__", "__bool__", "__torch_function__", "__torch_dispatch__", "__array__",
                  "__array_ufunc__", "__instancecheck__", "__subclasscheck__", "__ge__", "__le__", "__lt__", "__gt__")
IGNORED_NAMES = frozenset({"_", "__", "___", "_dh", "_oh", "_ih", "In", "Out", "exit", "quit"})


class FakedValueError(BaseException):
    """Raised into a test when a student function returns a value built to fake comparisons."""


class Capture:
    """Outputs of the running cell, as nbformat output dicts, with a size budget."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0
        self.outputs: list[dict] = []
        self.truncated = False

    def reset(self) -> None:
        self.outputs = []

    def _room(self, size: int) -> bool:
        if self.used + size > self.limit:
            if not self.truncated:
                self.truncated = True
                self.outputs.append({"output_type": "stream", "name": "stderr",
                                     "text": f"\n[output truncated by the grader: over {self.limit} bytes]\n"})
            return False
        self.used += size
        return True

    def stream(self, name: str, text: str) -> None:
        if not text or not self._room(len(text)):
            return
        last = self.outputs[-1] if self.outputs else None
        if last and last.get("output_type") == "stream" and last.get("name") == name:
            last["text"] += text
        else:
            self.outputs.append({"output_type": "stream", "name": name, "text": text})

    def add(self, output: dict) -> None:
        try:
            size = len(json.dumps(output, default=str))
        except Exception:
            return
        if self._room(size):
            self.outputs.append(output)


class Stream:
    """sys.stdout / sys.stderr for the kernel: text goes into the cell's outputs."""

    encoding = "utf-8"
    errors = "replace"

    def __init__(self, capture: Capture, name: str):
        self._capture, self.name = capture, name

    def write(self, text) -> int:
        if not isinstance(text, str):
            text = str(text)
        self._capture.stream(self.name, text)
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        import io

        raise io.UnsupportedOperation("fileno")


def _jsonable(data: dict) -> dict:
    return {str(k): (v if isinstance(v, (str, list, dict, int, float, bool)) or v is None else str(v))
            for k, v in (data or {}).items()}


def make_shell(capture: Capture):
    """An IPython shell whose display, results and tracebacks land in `capture`."""
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    class Publisher(DisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
            capture.add({"output_type": "display_data", "data": _jsonable(data), "metadata": _jsonable(metadata)})

        def clear_output(self, wait=False):
            capture.reset()

    class Hook(DisplayHook):
        def start_displayhook(self):
            self._result = None

        def write_output_prompt(self):
            pass

        def write_format_data(self, format_dict, md_dict=None):
            self._result = (format_dict, md_dict)

        def finish_displayhook(self):
            if self._result:
                data, meta = self._result
                capture.add({"output_type": "execute_result", "data": _jsonable(data),
                             "metadata": _jsonable(meta), "execution_count": self.shell.execution_count})

    class Shell(InteractiveShell):
        def _showtraceback(self, etype, evalue, stb):
            capture.add({"output_type": "error", "ename": getattr(etype, "__name__", str(etype)),
                         "evalue": _safe_str(evalue), "traceback": [str(line) for line in stb]})

    config = Config()
    config.HistoryManager.enabled = False
    shell = Shell.instance(config=config, displayhook_class=Hook, display_pub_class=Publisher)
    try:
        shell.colors = "nocolor"
    except Exception:
        pass
    return shell


def _safe_str(value) -> str:
    try:
        return str(value)[:2000]
    except Exception:
        return f"<{type(value).__name__}>"


class Guard:
    """Pristine copies of what tests rely on, taken before any student code runs."""

    def __init__(self, shell):
        self.shell = shell
        self.compile, self.exec, self.eval = builtins.compile, builtins.exec, builtins.eval
        self.isinstance, self.type, self.getattr = builtins.isinstance, builtins.type, builtins.getattr
        import dlcourse

        dlcourse.load_all()  # its attributes load lazily: bind them all before the snapshot, or a student's would stick
        self.modules = {name: sys.modules[name] for name in PROTECTED_MODULES if name in sys.modules}
        self.module_dicts = {name: dict(vars(mod)) for name, mod in self.modules.items()}
        self.classes = {}
        for module, name in PROTECTED_CLASSES:
            cls = getattr(sys.modules.get(module), name, None)
            if isinstance(cls, type):
                self.classes[f"{module}.{name}"] = (cls, dict(vars(cls)))
        self.warning_filters = list(warnings.filters)
        self.sigint = signal.getsignal(signal.SIGINT)
        self.excepthook = sys.__excepthook__
        from IPython.core.inputtransformer2 import TransformerManager

        self.transformer = TransformerManager()
        self.test_bindings: dict[str, object] = {}
        self.left_by_tests: dict[str, object] = {}  # name -> the value a test left in the notebook
        roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.dirname(dlcourse.__file__))}
        self.library_roots = tuple(os.path.realpath(r).rstrip("/") + "/" for r in roots) + \
            tuple(r.rstrip("/") + "/" for r in roots)
        self.current_frames, self.get_ident = sys._current_frames, threading.get_ident
        self.thread_registry = threading._active  # ident -> Thread, for the names
        self.own_threads: set[int] = set()  # the kernel's threads before any student code (``start``)
        numpy = sys.modules.get("numpy")
        self.number_types = tuple(t for t in vars(numpy).values() if isinstance(t, type) and issubclass(
            t, (numpy.integer, numpy.floating)) and t is not numpy.bool_) if numpy else ()
        self.score_type = getattr(sys.modules.get("dlcourse.checks"), "Score", None)
        torch = sys.modules.get("torch")
        self.as_subclass = torch.Tensor.as_subclass if torch else None
        self.tensor_type = torch.Tensor if torch else None
        self.parameter_type = torch.nn.Parameter if torch else None
        self.no_torch_function = torch._C.DisableTorchFunctionSubclass if torch else None
        self.plain = _make_plain(self.type, self.getattr, self.tensor_type, self.as_subclass, self.no_torch_function)
        self.watch = Watch(self)

    # -- restoring ---------------------------------------------------------
    def restore(self, hooks: bool = True) -> list[str]:
        """Put back everything tests rely on; returns what had been changed."""
        changed: list[str] = []
        for name, mod in self.modules.items():
            if sys.modules.get(name) is not mod:
                sys.modules[name] = mod
                changed.append(f"sys.modules[{name!r}]")
            current = vars(mod)
            for key, value in self.module_dicts[name].items():
                if key in IGNORED_NAMES or not _guarded(value):
                    continue
                now = current.get(key, _MISSING)
                if now is not value:
                    if self.library_replacement(now, value):
                        self.module_dicts[name][key] = now  # torch wrapping its own function (lazy imports)
                        continue
                    current[key] = value
                    changed.append(f"{name}.{key}")
        for qualified, (cls, saved) in self.classes.items():
            current = vars(cls)
            for key, value in saved.items():
                now = current.get(key, _MISSING)
                if _guarded(value) and now is not value:
                    if self.library_replacement(now, value):
                        saved[key] = now
                        continue
                    try:
                        type.__setattr__(cls, key, value)
                        changed.append(f"{qualified}.{key}")
                    except (TypeError, AttributeError):
                        pass
            for key in set(current) - set(saved):
                # an added name that shadows a base class's (Tensor.all over TensorBase.all) is a patch;
                # a brand-new name cannot change what tests call
                if any(key in vars(base) for base in cls.__mro__[1:]):
                    try:
                        type.__delattr__(cls, key)
                        changed.append(f"{qualified}.{key} (added)")
                    except (TypeError, AttributeError):
                        pass
        shell = self.shell
        if hooks and shell.input_transformers_post or shell.ast_transformers or shell.input_transformers_cleanup != \
                self.transformer.cleanup_transforms:
            changed.append("IPython input/AST transformers")
        if hooks and shell.custom_exceptions:
            changed.append("IPython custom exception handler")
        if sys.excepthook is not self.excepthook and sys.excepthook is not sys.__excepthook__:
            changed.append("sys.excepthook")
            sys.excepthook = sys.__excepthook__
        if sys.gettrace() is not None or sys.getprofile() is not None:
            changed.append("trace/profile function")
        sys.settrace(None)
        sys.setprofile(None)
        threading.settrace(None)
        threading.setprofile(None)
        warnings.filters[:] = self.warning_filters
        warnings._filters_mutated() if hasattr(warnings, "_filters_mutated") else None
        if signal.getsignal(signal.SIGINT) is not self.sigint:
            signal.signal(signal.SIGINT, self.sigint)
        torch = self.modules.get("torch")
        if torch is not None:
            c = torch._C
            while getattr(c, "_len_torch_function_stack", lambda: 0)() > 0:
                c._pop_torch_function_stack()
                changed.append("torch function mode")
            while getattr(c, "_len_torch_dispatch_stack", lambda: 0)() > 0:
                c._pop_torch_dispatch_stack()
                changed.append("torch dispatch mode")
        return changed

    def notebook_threads(self) -> list[str]:
        """Python threads, besides the kernel's own, with notebook code on their stack right now.

        A thread can only have stopped inside Python code it was running, or in a call that waits;
        so a thread that patches in a loop shows its loop, while library threads that wait (tqdm's
        monitor, an idle torch.compile or ThreadPoolExecutor worker) show library code only.
        """
        found = []
        for ident, frame in list(self.current_frames().items()):
            if ident == self.get_ident() or ident in self.own_threads:
                continue
            if self.runs_notebook_code(frame):
                thread = self.thread_registry.get(ident)
                found.append(str(getattr(thread, "name", None) or f"thread {ident}"))
        return sorted(found)

    def runs_notebook_code(self, frame) -> bool:
        for _ in range(500):
            if frame is None:
                return False
            filename = frame.f_code.co_filename
            if not self.isinstance(filename, str) or not (filename.startswith(self.library_roots)
                                                          or filename.startswith("<frozen ")):
                return True
            frame = frame.f_back
        return True

    def library_replacement(self, new, old) -> bool:
        """A function the libraries themselves put in place of one of theirs (torch._dynamo wraps
        torch.manual_seed when it is imported): same name, and every function it wraps is library code."""
        if new is _MISSING or getattr(new, "__name__", None) != getattr(old, "__name__", None):
            return False
        pending, seen = [new], 0
        while pending and seen < 20:
            value = pending.pop()
            seen += 1
            function = getattr(value, "__func__", value)
            code = getattr(function, "__code__", None)
            if code is None or not self.isinstance(code.co_filename, str) or \
                    not code.co_filename.startswith(self.library_roots):
                return False
            wrapped = getattr(function, "__wrapped__", None)
            if wrapped is not None:
                pending.append(wrapped)
            for cell in getattr(function, "__closure__", None) or ():
                try:
                    content = cell.cell_contents
                except ValueError:
                    continue
                if self.isinstance(content, (types.FunctionType, types.MethodType)):
                    pending.append(content)
        return not pending

    def notebook_names(self, ns: dict) -> frozenset[str]:
        """The names the notebook's own cells bound (not a test's leftovers, not IPython's)."""
        return frozenset(name for name, value in ns.items() if not name.startswith("__") and name not in IGNORED_NAMES
                         and self.left_by_tests.get(name, _MISSING) is not value)

    def points(self, value) -> float | None:
        """The points a test's last value gives: a real number (not a bool; numpy's too) or a
        `dlcourse.checks.Score`'s earned points; None for anything else (the test scores all or nothing)."""
        kind = self.type(value)
        if kind is self.score_type:
            value, kind = value.earned, self.type(value.earned)
        if kind in (int, float) or kind in self.number_types:
            number = float(value)
            return number if number == number else 0.0  # NaN: no points
        return None

    def rebound_names(self, ns: dict) -> list[str]:
        """Names that held a protected module or an object a test bound, now bound to something else."""
        changed = []
        for name, value in self.test_bindings.items():
            if ns.get(name, _MISSING) is not value:
                ns[name] = value
                changed.append(f"name {name!r}")
        return changed

    def remember(self, ns: dict, instructor: bool) -> None:
        """After a cell: names bound to protected modules; after an instructor cell (not a solution),
        also names bound to protected functions (``from dlcourse.checks import assert_close``)."""
        protected = set(self.modules.values())
        for name, value in ns.items():
            if name.startswith("_") or name in IGNORED_NAMES:
                continue
            if self.isinstance(value, types.ModuleType) and value in protected:
                self.test_bindings[name] = value
            elif instructor and name not in self.test_bindings and _protected_origin(value):
                self.test_bindings[name] = value

    def remember_test(self, ns: dict, before: dict) -> None:
        for name, value in ns.items():
            if name.startswith("_") or before.get(name, _MISSING) is value:
                continue
            value = _unwrapped(value)  # a student function the test kept (``orig = squares``) is not protected
            if _protected_origin(value) or isinstance(value, types.ModuleType):
                self.test_bindings[name] = value



def _make_plain(type_, getattr_, tensor, as_subclass, no_torch_function):
    """`plain(value, flags)`: a value a student function returns, made safe to test.

    A tensor subclass defined in the notebook becomes a plain tensor (its real data). An object of a
    class from the notebook that overrides comparison or truth (``__eq__``, ``__bool__``, ...) can fake
    any assert: it fails the test and is flagged. A closure over the pristine functions it needs, not a
    method of the `Guard`: a wrapper a test hands to student code (a spy, a callback, a mock that wraps a
    student function) must not lead student code to the guard's pristine copies.
    """
    def plain(value, flags: list[str]):
        kind = type_(value)
        notebook_classes = [c for c in kind.__mro__ if getattr_(c, "__module__", None) == "__main__"]
        if not notebook_classes:
            return value
        faking = sorted({name for c in notebook_classes for name in FAKING_METHODS if name in vars(c)})
        if tensor is not None and issubclass(kind, tensor):
            flags.append(f"a tensor subclass ({kind.__name__}) was returned; its plain data was tested")
            with no_torch_function():  # the subclass's own __torch_function__ must not answer
                return as_subclass(value, tensor)
        if faking:
            flags.append(f"tampering suspected: a function returned a {kind.__name__}, which overrides "
                         + ", ".join(faking))
            raise FakedValueError(f"{kind.__name__} overrides {', '.join(faking)}: it could fake any comparison")
        return value

    return plain


def _stored_names(tree) -> set[str]:
    """Every name a test cell's own statements bind (assignments, imports, defs, loops, ``with``);
    `tree` is the cell's syntax tree (`_parse`), None when it does not parse."""
    if tree is None:
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            names.update(node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.MatchAs) and node.name or isinstance(node, ast.MatchStar) and node.name:
            names.add(node.name)
    return names


def _parse(source: str):
    """A test's syntax tree; None when it does not parse."""
    try:
        return ast.parse(source)
    except SyntaxError:
        return None


def _passed_on_names(tree) -> frozenset[str]:
    """The names a test deletes, or rebinds after reading them (``orig = squares; del squares``,
    ``real = helper; helper = spy``, ``squares = orig``): nbgrader's idioms for checking that one student
    function calls another. A name the test binds without having read it first (a helper of its own, an
    expected value) is not among them, so a student who binds that name beforehand does not get it."""
    if tree is None:
        return frozenset()
    first_read: dict[str, int] = {}
    bound: list[tuple[str, int]] = []
    passed = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                first_read[node.id] = min(first_read.get(node.id, node.lineno), node.lineno)
            elif isinstance(node.ctx, ast.Del):
                passed.add(node.id)
            else:
                bound.append((node.id, node.lineno))
    passed.update(name for name, line in bound if first_read.get(name, line + 1) <= line)
    return frozenset(passed)


def _unwrapped(value):
    """A student function as the notebook holds it, not the wrapper a test saw."""
    return value.__wrapped__ if type(value) is types.FunctionType and value.__code__ is _STUDENT_WRAPPER_CODE \
        else value


class TestNamespace(dict):
    """The namespace a test runs in: a copy of the notebook's, which student code cannot write (student
    functions keep the notebook's as their globals). A test statement that deletes or rebinds one of
    `passed_on`, the notebook's own names the test handles as nbgrader's idioms do (`_passed_on_names`),
    also deletes or rebinds it in the notebook at once, so the student functions it then calls see the
    change, as they would in nbgrader, where tests and notebook share one namespace."""

    notebook: dict = {}
    passed_on: frozenset = frozenset()

    def __setitem__(self, name, value):
        dict.__setitem__(self, name, value)
        if name in self.passed_on:
            self.notebook[name] = _unwrapped(value)

    def __delitem__(self, name):
        dict.__delitem__(self, name)
        if name in self.passed_on:
            self.notebook.pop(name, None)


def _protected_origin(value) -> bool:
    """A function or class from torch, numpy, math or dlcourse (what tests import)."""
    if not isinstance(value, (types.FunctionType, types.BuiltinFunctionType, type)):
        return False
    module = getattr(value, "__module__", None)
    return isinstance(module, str) and module.split(".")[0] in ("torch", "numpy", "dlcourse", "math")


class _Missing:
    pass


def _guarded(value) -> bool:
    """Functions, classes and modules are guarded; data (caches, flags) may change legitimately."""
    return callable(value) or isinstance(value, types.ModuleType)


_MISSING = _Missing()

# Audit events (PEP 578) that hand out frames, the guard's objects or raw memory, or make code look
# like a library's. Denied when notebook code asks; libraries (logging, pdb, traceback, torch.compile)
# use them for themselves and are let through.
_FRAME_EVENTS = frozenset({"sys._getframe", "sys._current_frames", "gc.get_objects", "gc.get_referrers",
                           "gc.get_referents", "sys.settrace", "sys.setprofile"})  # a tracer is handed frames
_FRAME_ATTRIBUTES = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back"})
_CODE_EVENTS = frozenset({"compile", "code.__new__"})
_WATCHED = _FRAME_EVENTS | _CODE_EVENTS | {"object.__getattr__", "object.__setattr__", "object.__delattr__"}
# Native code reads and writes the kernel's memory, the forged verdict included: a foreign-function
# interface other than ctypes (cffi's backend), or a shared object from anywhere a kernel can write (its
# working copy, /tmp), loaded as an extension module or through a library's dlopen (torch.ops.load_library).
# Denied whoever asks, unless the assignment allows native code (KernelConfig.native_code).
_NATIVE_EVENTS = frozenset({"import", "ctypes.dlopen"})
_FFI_MODULES = frozenset({"_cffi_backend"})
# A process may always read and write its own memory through /proc: the sandbox covers the file (a
# mount), and this denies opening it where a mount was not possible.
_OWN_MEMORY = re.compile(r"^/proc/(?:self|thread-self|\d+)(?:/task/\d+)?/mem$")
# The names a library's own code uses when it asks for these itself (``sys._getframe(1)``).
_ASKED_BY = {"sys._getframe": {"_getframe", "currentframe"}, "sys._current_frames": {"_current_frames"},
             "gc.get_objects": {"get_objects"}, "gc.get_referrers": {"get_referrers"},
             "gc.get_referents": {"get_referents"},
             # a tracer set through a callback traces the thread it runs in (a pool's worker), not the test
             "sys.settrace": None, "sys.setprofile": None}
# Library functions that only pass a frame on to whoever called them: the caller is the one asking.
_PASS_THROUGH = frozenset({"currentframe", "stack", "trace", "getinnerframes", "getouterframes", "walk_stack",
                           "walk_tb", "_getframe"})


class Watch:
    """The kernel's audit hook. Installed in the template (a hook cannot be removed), armed in each
    kernel before student code runs. What it denies raises `TamperingDenied` in the student's code
    and is recorded in `seen`, which nothing outside this object refers to."""

    def __init__(self, guard: "Guard"):
        self.roots = guard.library_roots
        self.ctypes_dir = os.path.dirname(os.path.realpath(os.__file__)) + "/ctypes/"
        self.grading_dir = os.path.dirname(os.path.realpath(__file__)) + "/"
        self.armed = False
        self.native_code = False  # the assignment allows native extensions (set when armed)
        self.seen: list[str] = []
        getframe, isinstance_, str_ = sys._getframe, builtins.isinstance, str
        busy = threading.local()
        watched, frame_events, frame_attributes = _WATCHED, _FRAME_EVENTS, _FRAME_ATTRIBUTES
        pass_through, code_events, names = _PASS_THROUGH, _CODE_EVENTS, _ASKED_BY
        notebook, roots, seen = self.notebook, self.roots, self.seen
        ctypes_dir, grading_dir = self.ctypes_dir, self.grading_dir
        watch = self

        native_events, ffi_modules, own_memory = _NATIVE_EVENTS, _FFI_MODULES, _OWN_MEMORY
        realpath, fspath, system_libraries = os.path.realpath, os.fspath, ("/usr/", "/lib/", "/lib64/", "/opt/")

        def library_file(path) -> bool:
            resolved = realpath(path)
            return resolved.startswith(roots) or resolved.startswith(system_libraries)

        def hook(event, args):
            if not watch.armed:
                return
            if event == "open":
                path = args[0]
                if isinstance_(path, (str_, bytes)) and "mem" in str_(path) and own_memory.match(
                        realpath(path if isinstance_(path, str_) else path.decode(errors="replace"))):
                    seen.append(f"opening {path!r} (the kernel's own memory)")
                    raise TamperingDenied(f"the grader does not allow reading or writing {path!r}")
                return
            if event in native_events and not watch.native_code:
                what = None
                if event == "import" and args[1] is not None:  # an extension module, by its file
                    filename = args[1] if isinstance_(args[1], str_) else fspath(args[1])
                    if args[0] in ffi_modules:
                        what = f"the foreign-function interface {args[0]}"
                    elif not library_file(filename):
                        what = f"native code from {filename}"
                elif event == "ctypes.dlopen" and isinstance_(args[0], (str_, bytes)):
                    name = args[0] if isinstance_(args[0], str_) else args[0].decode(errors="replace")
                    if "/" in name and not library_file(name):
                        what = f"native code from {name}"
                if what:
                    seen.append(what)
                    raise TamperingDenied(f"the grader does not allow loading {what}")
            if event not in watched and not event.startswith("ctypes."):
                return
            if getattr(busy, "on", False):
                return
            busy.on = True
            try:
                what = None
                if event in frame_events or (event == "object.__getattr__" and args[1] in frame_attributes):
                    frame = getframe(1)
                    while frame is not None and frame.f_code.co_name in pass_through and \
                            frame.f_code.co_filename.startswith(roots):
                        frame = frame.f_back
                    if notebook(frame):
                        what = event if event != "object.__getattr__" else f"reading .{args[1]}"
                    elif frame is not None and names.get(event, ()) is not None and \
                            not frame.f_code.co_filename.startswith(grading_dir) and \
                            not (names.get(event) or {args[1]}).intersection(frame.f_code.co_names):
                        # library code that asks for these names them; one that calls what it was handed
                        # (a pool's worker, Thread.run) is running someone's callback
                        what = (event if event != "object.__getattr__" else f"reading .{args[1]}") + \
                            f" through a library callback ({frame.f_code.co_name})"
                elif event.startswith("ctypes."):
                    frame = getframe(1)
                    while frame is not None and frame.f_code.co_filename.startswith(ctypes_dir):
                        frame = frame.f_back
                    if notebook(frame):
                        what = event
                elif event in code_events:
                    filename = args[1]
                    if isinstance_(filename, bytes):
                        filename = filename.decode(errors="replace")
                    if isinstance_(filename, str_) and (filename.startswith(roots) or filename.startswith("<test ")) \
                            and notebook(getframe(1)):
                        what = f"{event} under the file name {filename}"
                elif event in ("object.__setattr__", "object.__delattr__"):
                    target = args[0]
                    code = getattr(target, "__code__", None)
                    module = getattr(target, "__module__", None)
                    if ((isinstance_(module, str_) and module.startswith("dlcourse"))
                            or (code is not None and code.co_filename.startswith(grading_dir))) \
                            and notebook(getframe(1)):
                        what = f"{event} {args[1]} of {getattr(target, '__qualname__', target)!r}"
                if what:
                    seen.append(what)
                    raise TamperingDenied(f"the grader does not allow notebook code to use {what}")
            finally:
                busy.on = False

        sys.addaudithook(hook)

    def notebook(self, frame) -> bool:
        """Is this frame running notebook code (a cell, or code it made), rather than a library's?"""
        if frame is None:
            return False
        filename = frame.f_code.co_filename
        return not (filename.startswith(self.roots) or filename.startswith("<frozen ") or filename.startswith("<test "))


# What the kernel itself runs on between cells: the grader's classes, the reply's encoding, the pipe.
SEALED_MODULES = ("dlcourse.instructor.grading", "dlcourse.instructor.grading.runner", "dlcourse.instructor.grading.protocol", "json",
                  "json.encoder", "traceback", "types", "time", "multiprocessing.connection")
SEALED_CLASSES = (("dlcourse.instructor.grading.runner", "Guard"), ("dlcourse.instructor.grading.runner", "Runner"),
                  ("dlcourse.instructor.grading.runner", "Watch"), ("dlcourse.instructor.grading.runner", "Capture"),
                  ("dlcourse.instructor.grading.runner", "Stream"), ("dlcourse.instructor.grading.runner", "TestNamespace"),
                  ("dlcourse.instructor.grading.protocol", "CellReply"),
                  ("json.encoder", "JSONEncoder"), ("multiprocessing.connection", "Connection"))


def make_seal():
    """A function that puts back the grader's own modules and classes as they were in the template and
    says what it had to put back. ``serve`` calls it around every cell, with nothing looked up anew."""
    import json.encoder  # noqa: F401  (sealed below)
    import multiprocessing.connection  # noqa: F401

    delattr_, set_type_attr, items = builtins.delattr, type.__setattr__, dict.items
    saved = []
    for name in SEALED_MODULES:
        mod = sys.modules.get(name)
        if mod is not None:
            saved.append((name, vars(mod), dict(vars(mod)), None))
    for module, name in SEALED_CLASSES:
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type):
            saved.append((f"{module}.{name}", vars(cls), dict(vars(cls)), cls))

    def seal() -> list[str]:
        changed = []
        for label, current, pristine, cls in saved:
            for key, value in items(pristine):
                if current.get(key, _MISSING) is not value:
                    changed.append(f"{label}.{key}")
                    if cls is None:
                        current[key] = value
                    else:
                        set_type_attr(cls, key, value)
            for key in [k for k in current if k not in pristine]:
                if cls is not None and not key.startswith("__"):
                    changed.append(f"{label}.{key} (added)")
                    delattr_(cls, key)
        return changed

    return seal


class TamperingDenied(RuntimeError):
    """Raised into notebook code that reaches for frames, gc, ctypes or the grader's own code."""


def _wrap_student(function, plain, type_, flags: list[str]):
    """What a test calls in place of a notebook function: its results made safe (`_make_plain`). Its
    closure holds nothing of the guard's, since a test may hand it to student code."""
    def call(*args, **kwargs):
        result = function(*args, **kwargs)
        if type_(result) in (tuple, list):
            return type_(result)(plain(item, flags) for item in result)
        return plain(result, flags)

    call.__wrapped__ = function
    call.__name__ = getattr(function, "__name__", "student_function")
    call.__doc__ = getattr(function, "__doc__", None)
    return call


# The code of every wrapper `_wrap_student` makes: what a test leaves behind is unwrapped only when it
# is one of these (a library's own wrapper, such as a @contextmanager, stays as the test bound it).
_STUDENT_WRAPPER_CODE = next(c for c in _wrap_student.__code__.co_consts if isinstance(c, types.CodeType))


class Runner:
    def __init__(self, output_limit: int = OUTPUT_LIMIT):
        self.capture = Capture(output_limit)
        self.shell = make_shell(self.capture)
        try:
            from matplotlib_inline.backend_inline import configure_inline_support

            configure_inline_support(self.shell, "inline")
        except Exception:
            pass
        self.stdout = Stream(self.capture, "stdout")
        self.stderr = Stream(self.capture, "stderr")
        # The pristine copies: taken here, in the template, where no student code ever runs, so that
        # every forked kernel starts with them instead of spending 70 ms copying them again.
        self.guard = Guard(self.shell)
        self.seal = make_seal()

    def start(self, output_limit: int, native_code: bool = False) -> None:
        self.capture.limit = output_limit
        self.guard.own_threads = set(sys._current_frames())
        self.guard.watch.native_code = native_code
        self.guard.watch.armed = True  # from here on, student code runs in this process

    def run_code_cell(self, source: str, instructor: bool = False) -> dict:
        seen = self.guard.watch.seen
        already = len(seen)
        sys.stdout, sys.stderr = self.stdout, self.stderr
        result = self.shell.run_cell(source, store_history=True)
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        error = result.error_in_exec or result.error_before_exec
        self.guard.remember(self.shell.user_ns, instructor)
        flags = [f"tampering suspected: denied in cell {self.shell.execution_count - 1}: "
                 + ", ".join(sorted(set(seen[already:]))[:6])] if len(seen) > already else []
        return {"status": "ok" if result.success else "error",
                "error": f"{type(error).__name__}: {_safe_str(error)}" if error else None,
                "execution_count": self.shell.execution_count - 1, "flags": flags}

    def run_test_cell(self, source: str, grade_id: str) -> dict:
        guard = self.guard
        flags: list[str] = []
        seen = guard.watch.seen
        already = len(seen)
        reverted = guard.restore()
        user_ns = self.shell.user_ns
        reverted += guard.rebound_names(user_ns)
        if reverted:
            flags.append("reverted before test " + grade_id + ": " + ", ".join(sorted(set(reverted))[:12]))
        ns = dict(user_ns)
        ns["__builtins__"] = builtins
        for name, value in list(ns.items()):
            if guard.isinstance(value, types.FunctionType) and self.getmodule(value) == "__main__":
                ns[name] = _wrap_student(value, guard.plain, guard.type, flags)
        before = dict(ns)
        try:
            tree = _parse(guard.transformer.transform_cell(source))
        except Exception:
            tree = None
        passed_on = _passed_on_names(tree) & guard.notebook_names(user_ns)
        stored = _stored_names(tree)  # before the last expression is taken off the tree to be evaluated
        if passed_on:  # only then: a dict subclass makes the test's own name lookups slower (not student code's)
            ns = TestNamespace(ns)
            ns.notebook, ns.passed_on = user_ns, passed_on
        points = None
        status, error = "ok", None
        # A thread the notebook left running could patch what the test calls between the guard's
        # checks (and undo it before the next): a test only counts with no such thread running.
        threads = guard.notebook_threads()
        self.shell.execution_count += 1
        count = self.shell.execution_count - 1
        sys.stdout, sys.stderr = self.stdout, self.stderr
        try:
            if tree is None:  # a syntax error: let compile say where
                guard.compile(guard.transformer.transform_cell(source), f"<test {grade_id}>", "exec",
                              dont_inherit=True)
            last = tree.body.pop() if tree.body and guard.isinstance(tree.body[-1], ast.Expr) else None
            guard.exec(guard.compile(tree, f"<test {grade_id}>", "exec", dont_inherit=True), ns)
            if last is not None:  # nbgrader's partial credit: a number the test ends with is its score
                value = guard.eval(guard.compile(ast.Expression(last.value), f"<test {grade_id}>", "eval",
                                                 dont_inherit=True), ns)
                points = self.show_result(value, count)
        except BaseException as exc:  # the test failed, however it failed
            status = "error"
            error = f"{guard.type(exc).__name__}: {_safe_str(exc)}"
            frames = traceback.extract_tb(exc.__traceback__)
            lines = [f"  in {f.name}, line {f.lineno} of {f.filename}" for f in frames
                     if not f.filename.startswith("<test ")]
            self.capture.add({"output_type": "error", "ename": guard.type(exc).__name__, "evalue": _safe_str(exc),
                              "traceback": [f"{guard.type(exc).__name__}: {_safe_str(exc)}", *lines[-8:]]})
        finally:
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        if passed_on:
            ns.passed_on = frozenset()  # the test is over: what follows restores, it does not pass on
        during = guard.restore(hooks=False)
        foreign = sorted(name for name in set(before) | set(ns) if name not in stored and name not in IGNORED_NAMES
                         and not name.startswith("_") and ns.get(name, _MISSING) is not before.get(name, _MISSING))
        if foreign:  # only the test's own statements write its namespace; anything else reached in
            flags.append(f"tampering suspected: the namespace of test {grade_id} was changed from outside it: "
                         + ", ".join(foreign[:8]))
            for name in foreign:
                if name in before:
                    ns[name] = before[name]
                else:
                    ns.pop(name, None)
            if status == "ok":
                status, error = "error", "failed: the test's namespace was changed from outside the test"
        if during:
            flags.append(f"tampering suspected: changed while test {grade_id} ran: " + ", ".join(sorted(set(during))[:12]))
            if status == "ok":
                status, error = "error", "failed: protected code was changed while the test ran"
        if len(seen) > already:
            flags.append(f"tampering suspected: denied while test {grade_id} ran: "
                         + ", ".join(sorted(set(seen[already:]))[:6]))
            status, error = "error", "failed: notebook code reached for the grader's frames or objects"
        threads = sorted(set(threads) | set(guard.notebook_threads()))
        if threads:
            flags.append(f"tampering suspected: notebook threads running during test {grade_id}: "
                         + ", ".join(threads[:4]))
            if status == "ok":
                status, error = "error", "failed: a thread the notebook started was running during the test"
                self.capture.add({"output_type": "error", "ename": "GradingError", "evalue": error, "traceback": [
                    f"GradingError: {', '.join(threads[:4])} still running notebook code: tests count "
                    "only when the notebook's own threads have finished (join them before the tests)."]})
        for name, value in ns.items():  # what the test defined stays defined, unwrapped
            if before.get(name, _MISSING) is not value or name not in user_ns:
                user_ns[name] = guard.left_by_tests[name] = _unwrapped(value)
        guard.remember_test(ns, before)
        if status != "ok":
            points = None
        return {"status": status, "error": error, "flags": flags, "execution_count": count, "score": points}

    def show_result(self, value, count: int) -> float | None:
        """The value a test cell ends with, shown as its result (nbgrader's execute_result); the points it
        gives when it is a number (nbgrader's partial credit) or a `dlcourse.checks.Score`, else None."""
        guard = self.guard
        points = guard.points(value)
        if value is None:
            return points
        if points is not None:
            data = {"text/plain": f"{points:g}"}
            if guard.type(value) is guard.score_type:
                data["text/markdown"] = _safe_str(value.markdown())
        else:
            try:
                data = {"text/plain": _safe_str(repr(value))}
            except Exception:
                data = {"text/plain": f"<{guard.type(value).__name__}>"}
        self.capture.add({"output_type": "execute_result", "data": data, "metadata": {}, "execution_count": count})
        return points

    @staticmethod
    def getmodule(function) -> str:
        return getattr(function, "__module__", None) or ""


def serve(fd: int, config: KernelConfig, runner: Runner | None = None, threadpools=None) -> None:
    """In the forked kernel: confine, then run the cells the grader sends until it stops. `runner` and
    `threadpools` come built from the template (``template_main.prepare``)."""
    import gc
    from multiprocessing.connection import Connection

    gc.enable()  # off in the template while it imported (``prepare``); student code makes cycles

    from dlcourse.instructor.grading import sandbox

    conn = Connection(fd)
    report = sandbox.enter(config)
    os.environ.clear()
    os.environ.update(config.env)
    try:
        threads = config.threads
        torch = sys.modules.get("torch")
        if threads and torch is not None:
            torch.set_num_threads(threads)
        if threads:
            # numpy's BLAS was loaded in the template with a thread per core; with several
            # kernels at once that oversubscribes the cores many times over.
            from threadpoolctl import ThreadpoolController

            (threadpools or ThreadpoolController()).limit(limits=threads)
    except Exception:
        pass
    try:
        # Not dumpable: no other process of this uid (a child the notebook forks or spawns, which the
        # audit hook may not follow) can open this one's /proc/<pid>/mem or ptrace it.
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
    except Exception:
        pass
    runner = runner or Runner()
    runner.start(config.output_limit, native_code=config.native_code)
    sys.stdin = open(os.devnull)
    conn.send_bytes(Hello(report).encode())
    send = conn.send_bytes  # bound before student code runs
    seal, run_test, run_code, reply_type, clock = runner.seal, runner.run_test_cell, runner.run_code_cell, \
        CellReply, time.perf_counter
    while True:
        try:
            request = decode_request(conn.recv_bytes(MAX_MESSAGE))
        except (EOFError, OSError):
            break
        if request is None:
            break
        before = seal()  # a cell may have patched the grader's own classes: put back, and fail the next test
        runner.capture.outputs = []
        started = clock()
        try:
            if request.kind == "test":
                done = run_test(request.source, request.grade_id)
            else:
                done = run_code(request.source, request.instructor)
        except BaseException as exc:  # an interrupt that landed outside the cell
            done = {"status": "error", "error": f"{type(exc).__name__}: {_safe_str(exc)}", "flags": []}
        during = seal()
        if before or during:
            done["flags"] = list(done.get("flags") or []) + [
                "tampering suspected: the grader's own code was patched: " + ", ".join(sorted(set(before + during))[:8])]
            if request.kind == "test":
                done["status"], done["error"] = "error", "failed: the grader's own code was patched"
        reply = reply_type(nonce=request.nonce, index=request.index, status=done["status"],
                          outputs=runner.capture.outputs, execution_count=done.get("execution_count"),
                          seconds=clock() - started, flags=done.get("flags", []), error=done.get("error"),
                           score=done.get("score") if done["status"] == "ok" else None)
        send(reply.encode())
    os._exit(0)
