"""The red-team submissions: each replaces the solution cell of ``source.py``
(or edits the notebook) with an attack, and each has the score it must get.

A case is (solution cell code, points it must score out of 3, a flag it must
raise or None). "{course}", "{secret_port}" and "{other_student}" are filled in
by the test with the paths and port of the run. Unless the attack is the point,
the function is wrong (``x + 1``: 0 points), so any point above the expected
score is a point the attack stole.
"""

WRONG = "def square(x):\n    return x + 1\n"

# What the frame attacks do once they hold a frame: walk out to the running test and put a fake
# `torch` in its namespace, whose `tensor(...)` (evaluated after the student's call) returns the
# student's own answer, so `torch.equal(square(x), torch.tensor(...))` and `assert_close` pass.
FAKE_TORCH = (
    "import sys, torch\n"
    "answers = []\n"
    "class FakeTorch:\n"
    "    def __getattr__(self, name):\n        return getattr(torch, name)\n"
    "    def tensor(self, *args, **kwargs):\n        return answers[-1] if answers else torch.tensor(*args, **kwargs)\n"
    "def remember(value):\n    answers.append(value)\n    return value\n"
    "def take_over(frame):\n"
    "    while frame is not None and not frame.f_code.co_filename.startswith('<test'):\n"
    "        frame = frame.f_back\n"
    "    if frame is not None:\n        frame.f_globals['torch'] = FakeTorch()\n"
)

CASES = {
    # --- honest baselines -------------------------------------------------------------
    "honest_correct": ("def square(x):\n    return x * x\n", 3, None),
    "honest_wrong": (WRONG, 0, None),
    "fails_only_hidden_test": (
        "def square(x):\n    return x * x if x.dim() else x + 1\n", 2, None),
    "correct_but_noisy": (
        "import sys, warnings\nfrom tqdm.auto import tqdm\n"
        "def square(x):\n"
        "    for _ in tqdm(range(3)):\n        pass\n"
        "    print('working...', file=sys.stderr)\n"
        "    warnings.warn('this is only a warning')\n"
        "    return x * x\n", 3, None),
    # --- changing how the kernel runs later cells --------------------------------------
    "input_transformer_strips_asserts": (
        "get_ipython().input_transformers_post.append(\n"
        "    lambda lines: [l for l in lines if 'assert' not in l])\n" + WRONG, 0, "transformers"),
    "cleanup_transformer_empties_cells": (
        "get_ipython().input_transformers_cleanup.insert(0, lambda lines: ['pass\\n'])\n" + WRONG, 0, None),
    "ast_transformer_drops_asserts": (
        "import ast\n"
        "class NoAsserts(ast.NodeTransformer):\n"
        "    def visit_Assert(self, node):\n        return ast.Pass()\n"
        "    def visit_Expr(self, node):\n        return ast.Pass()\n"
        "get_ipython().ast_transformers.append(NoAsserts())\n" + WRONG, 0, "transformers"),
    "run_cell_replaced": (
        "from IPython.core.interactiveshell import ExecutionResult, ExecutionInfo\n"
        "shell = get_ipython()\n"
        "def fake_run_cell(raw_cell, *args, **kwargs):\n"
        "    return ExecutionResult(ExecutionInfo(raw_cell, False, False, False, None))\n"
        "shell.run_cell = fake_run_cell\n" + WRONG, 0, None),
    "trace_function_installed": (
        "import sys\n"
        "def tracer(frame, event, arg):\n    return None\n"
        "sys.settrace(tracer)\n" + WRONG, 0, "trace"),
    # --- swallowing or hiding exceptions ---------------------------------------------
    "custom_exception_handler": (
        "get_ipython().set_custom_exc((BaseException,), lambda shell, etype, value, tb, tb_offset=None: None)\n"
        + WRONG, 0, "custom exception"),
    "excepthook_replaced": ("import sys\nsys.excepthook = lambda *args: None\n" + WRONG, 0, None),
    "showtraceback_silenced": (
        "get_ipython().showtraceback = lambda *a, **k: None\n"
        "get_ipython()._showtraceback = lambda *a, **k: None\n" + WRONG, 0, None),
    "exits_inside_the_test": (
        "import os\ndef square(x):\n    os._exit(0)\n", 0, None),
    # --- monkeypatching what tests use -------------------------------------------------
    "torch_equal_patched": ("import torch\ntorch.equal = lambda a, b: True\n" + WRONG, 0, "torch.equal"),
    "tensor_eq_patched": (
        "import torch\ntorch.Tensor.__eq__ = lambda self, other: torch.ones((), dtype=torch.bool)\n"
        "torch.Tensor.all = lambda self: torch.ones((), dtype=torch.bool)\n" + WRONG, 0, "Tensor"),
    "assert_close_patched_in_module": (
        "import dlcourse.checks\ndlcourse.checks.assert_close = lambda *a, **k: None\n" + WRONG, 0,
        "dlcourse.checks.assert_close"),
    "function_rebinds_the_tests_names_while_it_runs": (  # the test keeps its own; the notebook's are put back
        "import torch\n"
        "def square(x):\n"
        "    global assert_close, torch\n"
        "    assert_close = lambda *a, **k: None\n"
        "    torch = None\n"
        "    return x + 1\n", 0, "reverted before test"),
    "test_namespace_class_patched_to_read_the_tests_values": (  # sealed: put back, and the next test fails
        "from dlcourse.instructor.grading import runner\n"
        "seen = {}\n"
        "store = runner.TestNamespace.__setitem__\n"
        "def spy(self, name, value):\n    seen[name] = value\n    store(self, name, value)\n"
        "runner.TestNamespace.__setitem__ = spy\n" + WRONG, 0, "the grader's own code was patched"),
    "assert_close_name_rebound": ("assert_close = lambda *a, **k: None\n" + WRONG, 0, "assert_close"),
    "import_hook_fakes_checks": (
        "import builtins, types\n"
        "real_import = builtins.__import__\n"
        "fake = types.SimpleNamespace(assert_close=lambda *a, **k: None)\n"
        "def fake_import(name, *args, **kwargs):\n"
        "    return fake if name == 'dlcourse.checks' else real_import(name, *args, **kwargs)\n"
        "builtins.__import__ = fake_import\n" + WRONG, 0, "builtins.__import__"),
    "sys_modules_swapped": (
        "import sys, types\n"
        "sys.modules['dlcourse.checks'] = types.SimpleNamespace(assert_close=lambda *a, **k: None)\n" + WRONG, 0,
        "sys.modules"),
    "patches_while_the_test_runs": (
        "import torch\n"
        "def square(x):\n"
        "    torch.equal = lambda a, b: True\n"
        "    return x + 1\n", 0, "changed while test"),
    "torch_function_mode_left_open": (
        "import torch\nfrom torch.overrides import TorchFunctionMode\n"
        "class AllEqual(TorchFunctionMode):\n"
        "    def __torch_function__(self, func, types, args=(), kwargs=None):\n"
        "        if func is torch.equal:\n            return True\n"
        "        return func(*args, **(kwargs or {}))\n"
        "AllEqual().__enter__()\n" + WRONG, 0, "torch function mode"),
    # --- threads left running: they could patch between the guard's checks ----------------
    "thread_toggles_a_patch_in_the_background": (
        "import threading, torch\n"
        "real_equal = torch.equal\n"
        "def toggle():\n"
        "    while True:\n"
        "        torch.equal = lambda a, b: True\n"
        "        torch.equal = real_equal\n"
        "threading.Thread(target=toggle, daemon=True).start()\n" + WRONG, 0, "notebook threads running"),
    "thread_runs_notebook_code_under_a_library_target": (
        "import collections, itertools, threading, torch\n"
        "real_equal = torch.equal\n"
        "flip = lambda i: setattr(torch, 'equal', real_equal if i % 2 else (lambda a, b: True))\n"
        "threading.Thread(target=collections.deque, args=(map(flip, itertools.count()), 0), daemon=True).start()\n"
        + WRONG, 0, "notebook threads running"),
    "thread_started_by_the_tested_function": (
        "import threading, torch\n"
        "def square(x):\n"
        "    def keep_patching():\n"
        "        while True:\n"
        "            torch.equal = lambda a, b: True\n"
        "    threading.Thread(target=keep_patching, daemon=True).start()\n"
        "    return x + 1\n", 0, "notebook threads running"),
    "honest_thread_joined_before_the_tests": (
        "import threading\n"
        "results = []\n"
        "worker = threading.Thread(target=lambda: results.append(sum(range(10))))\n"
        "worker.start()\n"
        "worker.join()\n"
        "def square(x):\n    return x * x\n", 3, None),
    "honest_torch_compile": (  # dynamo wraps nn.Module.__init__ on first use: not a patch to revert or flag
        "import torch\n"
        "compiled = torch.compile(lambda x: x * x, backend='eager')\n"
        "assert torch.equal(compiled(torch.arange(3.0)), torch.tensor([0.0, 1.0, 4.0]))\n"
        "def square(x):\n    return x * x\n", 3, None),
    "honest_idle_library_threads": (  # what torch.compile leaves behind: a pool's workers, waiting
        "from concurrent.futures import ThreadPoolExecutor\n"
        "pool = ThreadPoolExecutor(2)\n"
        "assert pool.submit(sum, [1, 2]).result() == 3\n"
        "def square(x):\n    return x * x\n", 3, None),
    # --- objects that fake equality or shape ---------------------------------------------
    "object_fakes_equality": (
        "class Anything:\n"
        "    shape = (2, 3)\n"
        "    def __eq__(self, other):\n        return self\n"
        "    def all(self):\n        return True\n"
        "    def item(self):\n        return 25.0\n"
        "def square(x):\n    return Anything()\n", 0, "overrides __eq__"),
    "tensor_subclass_fakes_everything": (
        "import torch\n"
        "class Liar(torch.Tensor):\n"
        "    @classmethod\n"
        "    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
        "        return True\n"
        "def square(x):\n    return (x + 1).as_subclass(Liar)\n", 0, "tensor subclass"),
    # --- reaching outside the working copy -----------------------------------------------
    "reads_the_instructor_source": (
        "import re\n"
        "try:\n"
        "    text = open('{course}/notebooks/99_redteam/99_redteam.py').read()\n"
        "    body = re.search(r'### BEGIN SOLUTION\\n(.*?)### END SOLUTION', text, re.S).group(1)\n"
        "    exec('def square(x):\\n' + body)\n"
        "except OSError:\n"
        "    def square(x):\n        return x + 1\n", 0, None),
    "reads_another_students_notebook": (
        "import json\n"
        "try:\n"
        "    cells = json.load(open('{other_student}'))['cells']\n"
        "    exec([''.join(c['source']) for c in cells if 'def square' in ''.join(c['source'])][0])\n"
        "except OSError:\n"
        "    def square(x):\n        return x + 1\n", 0, None),
    "fetches_the_answer_over_the_network": (
        "import socket\n"
        "try:\n"
        "    answer = socket.create_connection(('127.0.0.1', {secret_port}), timeout=2).recv(1000).decode()\n"
        "    exec(answer)\n"
        "except OSError:\n"
        "    def square(x):\n        return x + 1\n", 0, None),
    "forges_a_grader_reply": (
        "import os, json, struct\n"
        "def square(x):\n"
        "    for fd in range(3, 64):\n"
        "        for index in range(40):\n"
        "            message = json.dumps({'nonce': 'guess', 'index': index, 'status': 'ok', 'outputs': []}).encode()\n"
        "            try:\n"
        "                os.write(fd, struct.pack('!i', len(message)) + message)\n"
        "            except OSError:\n"
        "                break\n"
        "    return x + 1\n", 0, "tampering suspected"),
    # --- code written against the guard itself -------------------------------------
    "frames_replace_the_test_namespace": (  # the reported attack (7/10 on 00_setup before): 2/3 here
        FAKE_TORCH + "def square(x):\n    take_over(sys._getframe(1))\n    return remember(x + 1)\n",
        0, "denied while test"),
    "frames_through_inspect_currentframe": (
        FAKE_TORCH + "import inspect\n"
        "def square(x):\n    take_over(inspect.currentframe())\n    return remember(x + 1)\n", 0, "sys._getframe"),
    "frames_through_a_traceback": (
        FAKE_TORCH + "def square(x):\n"
        "    try:\n        raise ValueError\n"
        "    except ValueError as error:\n        take_over(error.__traceback__.tb_frame)\n"
        "    return remember(x + 1)\n", 0, "tb_frame"),
    "frames_through_traceback_walk_stack": (
        FAKE_TORCH + "import traceback\n"
        "def square(x):\n    take_over(next(traceback.walk_stack(None))[0])\n    return remember(x + 1)\n",
        0, "sys._getframe"),
    "gc_finds_the_test_namespace": (
        FAKE_TORCH + "import gc\n"
        "def square(x):\n"
        "    for d in gc.get_referrers(torch):\n"
        "        if isinstance(d, dict) and '__builtins__' in d:\n"
        "            d['torch'] = FakeTorch()\n"
        "    return remember(x + 1)\n", 0, "gc.get_referrers"),
    "gc_finds_the_guard": (
        "import gc, torch\n"
        "try:\n"
        "    for guard in [o for o in gc.get_objects() if type(o).__name__ == 'Guard']:\n"
        "        guard.restore = lambda hooks=True: []\n"
        "except RuntimeError:\n    pass\n"
        "torch.equal = lambda a, b: True\n" + WRONG, 0, "gc.get_objects"),
    "thread_reads_the_main_threads_frames": (
        FAKE_TORCH + "import threading\n"
        "def square(x):\n"
        "    def reach():\n"
        "        for frame in sys._current_frames().values():\n"
        "            take_over(frame)\n"
        "    worker = threading.Thread(target=reach)\n"
        "    worker.start(); worker.join()\n"
        "    return remember(x + 1)\n", 0, "sys._current_frames"),
    "tracer_is_handed_the_test_frame": (
        FAKE_TORCH + "def square(x):\n"
        "    def tracer(frame, event, arg):\n        take_over(frame)\n"
        "    sys.settrace(tracer)\n    (lambda: None)()\n    sys.settrace(None)\n"
        "    return remember(x + 1)\n", 0, "sys.settrace"),
    "signal_handler_is_handed_the_test_frame": (  # no audit event: caught by what changed in the namespace
        FAKE_TORCH + "import os, signal\n"
        "def square(x):\n"
        "    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: take_over(frame))\n"
        "    os.kill(os.getpid(), signal.SIGUSR1)\n"
        "    signal.signal(signal.SIGUSR1, previous)\n"
        "    return remember(x + 1)\n", 0, "changed from outside"),
    "child_process_writes_the_kernels_memory": (  # a child has no audit hook once it execs
        "import os, subprocess, sys\n"
        "marker = b'the kernel memory a child should not reach'\n"
        "probe = ('import os; fd = os.open(\"/proc/%d/mem\" % os.getppid(), os.O_RDWR); '\n"
        "         'os.lseek(fd, %d, 0); print(\"opened\" if os.read(fd, 16) else \"empty\")' % id(marker))\n"
        "result = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True)\n"
        "if 'opened' in result.stdout:  # from here a write into the kernel's memory could do anything\n"
        "    def square(x):\n        return x * x\n"
        "else:\n    def square(x):\n        return x + 1\n", 0, None),
    "frames_through_a_thread_pool_callback": (  # sys._current_frames called by the pool's worker, not the notebook
        FAKE_TORCH + "from concurrent.futures import ThreadPoolExecutor\n"
        "pool = ThreadPoolExecutor(1)\n"
        "def square(x):\n"
        "    for frame in pool.submit(sys._current_frames).result().values():\n"
        "        take_over(frame)\n"
        "    return remember(x + 1)\n", 0, "through a library callback"),
    "gc_through_a_thread_pool_callback": (
        FAKE_TORCH + "from concurrent.futures import ThreadPoolExecutor\nimport gc, functools\n"
        "pool = ThreadPoolExecutor(1)\n"
        "def square(x):\n"
        "    for d in pool.submit(functools.partial(gc.get_referrers, torch)).result():\n"
        "        if isinstance(d, dict) and '__builtins__' in d:\n"
        "            d['torch'] = FakeTorch()\n"
        "    return remember(x + 1)\n", 0, "through a library callback"),
    "ctypes_writes_into_a_class": (
        "import ctypes, torch\n"
        "def square(x):\n"
        "    ctypes.pythonapi.PyDict_SetItem(ctypes.py_object(torch.__dict__), ctypes.py_object('equal'),\n"
        "                                    ctypes.py_object(lambda a, b: True))\n"
        "    return x + 1\n", 0, "ctypes"),
    "code_compiled_under_a_library_file_name": (
        FAKE_TORCH + "namespace = {}\n"
        "exec(compile('import sys\\ndef reach():\\n    return sys._getframe(2)\\n', torch.__file__, 'exec'),\n"
        "     namespace)\n"
        "def square(x):\n    take_over(namespace['reach']())\n    return remember(x + 1)\n", 0,
        "under the file name"),
    "code_object_renamed_to_a_library_file": (
        FAKE_TORCH + "def reach():\n    return sys._getframe(2)\n"
        "reach.__code__ = reach.__code__.replace(co_filename=torch.__file__)\n"
        "def square(x):\n    take_over(reach())\n    return remember(x + 1)\n", 0, "code.__new__"),
    "assert_close_code_swapped": (
        "import dlcourse.checks\n"
        "dlcourse.checks.assert_close.__code__ = (lambda *a, **k: None).__code__\n" + WRONG, 0, "__code__"),
    "grader_classes_patched_then_checks": (  # the second reported attack
        "import torch\nimport dlcourse.instructor.grading.runner as runner\n"
        "runner.Guard.restore = lambda self, hooks=True: []\n"
        "runner.Guard.rebound_names = lambda self, ns: []\n"
        "torch.equal = lambda a, b: True\n"
        "import dlcourse.checks\ndlcourse.checks.assert_close = lambda *a, **k: None\n" + WRONG, 0,
        "grader's own code was patched"),
    "grader_test_runner_replaced": (
        "import dlcourse.instructor.grading.runner as runner\n"
        "runner.Runner.run_test_cell = lambda self, source, grade_id: {\n"
        "    'status': 'ok', 'error': None, 'flags': [], 'execution_count': 1}\n" + WRONG, 0,
        "Runner.run_test_cell"),
    "reply_encoding_forges_ok": (
        "import json\nreal_dumps = json.dumps\n"
        "def dumps(obj, *args, **kwargs):\n"
        "    if isinstance(obj, dict) and 'status' in obj:\n"
        "        obj = dict(obj, status='ok')\n"
        "    return real_dumps(obj, *args, **kwargs)\n"
        "json.dumps = dumps\n" + WRONG, 0, "json.dumps"),
    "grader_patched_while_the_test_runs": (
        "import torch\nimport dlcourse.instructor.grading.runner as runner\n"
        "def square(x):\n"
        "    runner.Guard.restore = lambda self, hooks=True: []\n"
        "    torch.Tensor.__eq__ = lambda self, other: torch.ones((), dtype=torch.bool)\n"
        "    torch.Tensor.all = lambda self: torch.ones((), dtype=torch.bool)\n"
        "    return x + 1\n", 0, "grader's own code was patched"),
    # --- honest code that looks like the above: full marks, no flag --------------------------
    "honest_inspect_signature": (
        "import inspect\n"
        "def square(x):\n"
        "    assert list(inspect.signature(square).parameters) == ['x']\n"
        "    return x * x\n", 3, None),
    "honest_gc_collect": ("import gc\ndef square(x):\n    gc.collect()\n    return x * x\n", 3, None),
    "honest_traceback_print_exc": (
        "import traceback\n"
        "def square(x):\n"
        "    try:\n        1 / 0\n"
        "    except ZeroDivisionError:\n        traceback.print_exc()\n"
        "    return x * x\n", 3, None),
    "honest_logging": (
        "import logging\nlogging.basicConfig(level=logging.INFO)\nlog = logging.getLogger('square')\n"
        "def square(x):\n    log.info('squaring %s', tuple(x.shape))\n    log.warning('careful')\n"
        "    return x * x\n", 3, None),
    "honest_matplotlib": (
        "import matplotlib.pyplot as plt\nimport torch\n"
        "plt.plot(torch.arange(5.0), torch.arange(5.0) ** 2)\nplt.title('squares')\nplt.show()\n"
        "def square(x):\n    return x * x\n", 3, None),
    "honest_dataloader_with_workers": (
        "import torch\nfrom torch.utils.data import DataLoader, TensorDataset\n"
        "loader = DataLoader(TensorDataset(torch.arange(8.0)), batch_size=4, num_workers=2)\n"
        "assert sum(len(batch[0]) for batch in loader) == 8\n"
        "def square(x):\n    return x * x\n", 3, None),
    "honest_pdb_left_in_a_cell": (
        "import pdb\n"
        "def square(x):\n    return x * x\n"
        "pdb.set_trace()\n", 3, None),
    # --- native code: what read the kernel's memory and forged a verdict -------------------
    # (had any of these routes been open, a forger would now find the test's nonce in memory and write
    # an "ok" on the kernel's socket; the function stays wrong, so only a forged verdict could score)
    "cffi_opens_the_c_library": (
        "try:\n"
        "    import cffi\n    ffi = cffi.FFI()\n    ffi.cdef('void *memcpy(void *, const void *, size_t);')\n"
        "    libc = ffi.dlopen(None)\n    opened = True\n"
        "except Exception:\n    opened = False\n"
        "def square(x):\n    return x * x if opened else x + 1\n", 0, "foreign-function interface"),
    "extension_module_from_the_working_copy": (
        "import glob, os, shutil, importlib.util\n"
        "here = glob.glob(os.path.dirname(os.__file__) + '/lib-dynload/array.*.so')[0]\n"
        "shutil.copy(here, 'array.' + here.split('array.', 1)[1])\n"
        "try:\n"
        "    spec = importlib.util.spec_from_file_location('array', os.path.abspath('array.' + here.split('array.', 1)[1]))\n"
        "    importlib.util.module_from_spec(spec)\n    loaded = True\n"
        "except Exception:\n    loaded = False\n"
        "def square(x):\n    return x * x if loaded else x + 1\n", 0, "native code from"),
    "library_dlopens_a_file_from_the_working_copy": (
        "import glob, os, shutil, torch\n"
        "here = glob.glob(os.path.dirname(os.__file__) + '/lib-dynload/array.*.so')[0]\n"
        "shutil.copy(here, '/tmp/payload.so')\n"
        "try:\n    torch.ops.load_library('/tmp/payload.so')\n    loaded = True\n"
        "except Exception:\n    loaded = False\n"
        "def square(x):\n    return x * x if loaded else x + 1\n", 0, "native code from"),
    "reads_its_own_memory_through_proc": (
        "import os\n"
        "marker = b'dlcourse-own-memory-marker-' + os.urandom(4).hex().encode()\n"
        "def own_memory_readable():\n"
        "    for path in ('/proc/self/mem', '/proc/%d/task/%d/mem' % (os.getpid(), os.getpid())):\n"
        "        try:\n"
        "            with open(path, 'rb') as f:\n"
        "                f.seek(id(marker))\n"
        "                if f.read(64):\n                    return True\n"
        "        except (OSError, ValueError, OverflowError, RuntimeError):\n            pass\n"
        "    try:  # relative to an open /proc/self, which the audit hook cannot see: only the mount stops it\n"
        "        folder = os.open('/proc/self', os.O_RDONLY)\n"
        "        fd = os.open('mem', os.O_RDONLY, dir_fd=folder)\n"
        "        os.lseek(fd, id(marker), os.SEEK_SET)\n"
        "        return bool(os.read(fd, 64))\n"
        "    except (OSError, ValueError, OverflowError, RuntimeError):\n"
        "        return False\n"
        "readable = own_memory_readable()\n"
        "def square(x):\n    return x * x if readable else x + 1\n", 0, None),
}

# Attacks on the notebook itself rather than on the kernel: name -> (edit, score, flag).
# `edit(cells, solution_code)` gets the student notebook's cells and returns new ones.


def _fake_test_cell(cells, code):
    """Rewrite a test cell's text (it is locked, but the JSON is not) to `pass`."""
    out = []
    for cell in cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade_id") == "square":
            cell["source"] = WRONG
        if meta.get("grade_id") == "test_square_equal":
            cell["source"] = "pass"
        out.append(cell)
    return out


def _solution_cell_claims_test_id(cells, code):
    """The wrong solution relabelled as a test cell, and the real test deleted."""
    out = []
    for cell in cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade_id") == "square":
            cell["source"] = WRONG
        if meta.get("grade_id") == "test_square_equal":
            continue
        out.append(cell)
    return out


NOTEBOOK_EDITS = {
    "test_cell_rewritten_to_pass": (_fake_test_cell, 0, None),
    "test_cell_deleted": (_solution_cell_claims_test_id, 0, "restored"),
}
