"""The PID-namespace supervisor: the fourth grading process. Only a child can enter a new PID
namespace, so a kernel that unshared one (``sandbox.enter``) forks once more: the child goes on as
the kernel, process 1 of its namespace; the parent, this code, stays outside as the supervisor.

It runs no student code and holds no file of the grader's (so the grader sees the kernel's end of
the socket close at once); it passes the grader's interrupts on to the kernel and exits with it.
The grader's pid for "the kernel" is this process's pid.
"""

from __future__ import annotations

import os
import resource
import signal


def become_supervisor_of_child() -> None:
    """Fork: the child returns (the kernel, inside the PID namespace); this process never returns."""
    child = os.fork()
    if child == 0:
        return
    os.closerange(3, resource.getrlimit(resource.RLIMIT_NOFILE)[0])

    def forward(signum, _frame):
        try:
            os.kill(child, signum)
        except OSError:
            pass

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    status = 0
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
        except ChildProcessError:
            break
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF if status else 0)
