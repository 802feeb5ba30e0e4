"""The zygote: a process that has imported torch, numpy and IPython once and
forks a fresh kernel process for every submission.

Forking a warm template is what makes batch grading fast (a kernel is ready in
tens of milliseconds instead of seconds of Python start-up and imports), and
each submission still gets its own process: nothing a submission does reaches
the template or another submission. The template never runs student code and
never starts a thread or initialises CUDA, so forking it is safe.

Protocol (a Unix seqpacket socket to the grader): the grader sends one JSON message with the
kernel's config plus one file descriptor (its end of the kernel's own socket);
the zygote forks and answers with the child's pid.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys

DEFAULT_PRELOAD = [
    "numpy", "torch", "torch.nn", "torch.nn.functional", "torch.optim", "torchvision",
    "matplotlib", "matplotlib.pyplot", "matplotlib_inline.backend_inline", "sklearn", "sklearn.datasets",
    "tqdm", "tqdm.auto", "dlcourse", "dlcourse.checks", "dlcourse.gradcheck", "dlcourse.data",
    "dlcourse.train", "dlcourse.plots", "dlcourse.doctor", "IPython", "PIL.Image",
]


def main(fd: int, preload: list[str]) -> None:
    from dlcourse.grading import runner

    sandbox_prctl()
    runner.prepare(preload)
    control = socket.socket(fileno=fd)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    control.send(b'{"ready": true}')
    while True:
        try:
            message, fds, _flags, _addr = socket.recv_fds(control, 1 << 20, 1)
        except OSError:
            break
        if not message:
            break
        request = json.loads(message)
        pid = os.fork()
        if pid == 0:
            try:
                control.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                runner.serve(fds[0], request)
            finally:
                os._exit(0)
        for child_fd in fds:
            os.close(child_fd)
        control.send(json.dumps({"pid": pid}).encode())
    sys.exit(0)


def sandbox_prctl() -> None:
    """Die with the grader: a killed batch leaves no template behind."""
    from dlcourse.grading.sandbox import PR_SET_PDEATHSIG, _prctl

    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2].split(",") if len(sys.argv) > 2 and sys.argv[2] else DEFAULT_PRELOAD)
