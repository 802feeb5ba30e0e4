"""The template process: imports torch, numpy and IPython once, builds the kernel's shell once, then
forks one kernel per request from the grader. Runs as `python -m dlcourse.instructor.grading.template_main FD
[MODULES]`, started by `template.Template` in the grader.

The template never runs student code and never starts a thread or initialises CUDA, so forking it
is safe; nothing a kernel does reaches the template or another kernel. The forked child runs
`runner.serve` (the kernel process). What crosses the socket is in `protocol`.
"""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import socket
import sys

from dlcourse.instructor.grading import protocol
from dlcourse.instructor.grading.template import DEFAULT_PRELOAD


def _preload(names: list[str]) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # an optional package the machine lacks
            pass


def prepare(preload: list[str]):
    """Import the heavy packages and build the kernel's shell once; returns (runner, threadpools),
    what every forked kernel starts with."""
    import gc

    from dlcourse.instructor.grading.runner import Runner

    # Importing torch and friends makes about a million objects; collecting garbage while they
    # arrive finds almost none and costs a fifth of the start-up. The kernels collect again (``serve``).
    gc.disable()
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    _preload(preload)
    try:
        # torch.compile wraps nn.Module.__init__ and __setstate__ on first use; done here, the guard's
        # pristine copies hold the wrapped ones, so a notebook that compiles a model is not flagged.
        from torch._dynamo.mutation_guard import install_generation_tagging_init

        install_generation_tagging_init()
    except Exception:  # an older torch, or none
        pass
    runner = Runner()
    threadpools = None  # threadpoolctl's view of the loaded BLAS/OpenMP libraries, found once here
    try:
        from threadpoolctl import ThreadpoolController

        threadpools = ThreadpoolController()
    except Exception:
        pass
    # Every object so far goes to the permanent generation: a kernel's garbage collector then never
    # walks them, and never writes to (so never copies) the template's memory pages after the fork.
    gc.freeze()
    return runner, threadpools


def main(fd: int, preload: list[str]) -> None:
    from dlcourse.instructor.grading import runner

    # The grader stops a cell over its time with SIGINT. A process started in the background by a
    # script (`dlcourse grade ... &`, many CI runners) inherits SIGINT ignored, and Python then keeps
    # it ignored: every kernel forked from us would be killed instead, losing the rest of the notebook.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # No PR_SET_PDEATHSIG here: it fires when the *thread* that started us exits (a worker thread of a
    # pool), not the grader. The grader's death closes the control socket instead, and we exit on EOF.
    prepared = prepare(preload)
    shutil.rmtree(os.environ.get("IPYTHONDIR", "/nonexistent"), ignore_errors=True)  # only needed at start-up
    control = socket.socket(fileno=fd)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    control.send(protocol.READY)
    while True:
        try:
            message, fds, _flags, _addr = socket.recv_fds(control, protocol.MAX_MESSAGE, 1)
        except OSError:
            break
        if not message:
            break
        config = protocol.KernelConfig.decode(message)
        pid = os.fork()
        if pid == 0:
            try:
                control.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                runner.serve(fds[0], config, *prepared)
            finally:
                os._exit(0)
        for child_fd in fds:
            os.close(child_fd)
        control.send(protocol.spawned(pid))
    # No interpreter teardown: unloading torch and friends takes seconds, and whoever reads
    # our inherited stderr (a pipe around the grader) would wait for it.
    os._exit(0)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2].split(",") if len(sys.argv) > 2 and sys.argv[2] else DEFAULT_PRELOAD)
