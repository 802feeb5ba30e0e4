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

import itertools
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from multiprocessing.connection import Connection

DEFAULT_PRELOAD = [
    "numpy", "torch", "torch.nn", "torch.nn.functional", "torch.optim", "torchvision",
    "matplotlib", "matplotlib.pyplot", "matplotlib_inline.backend_inline", "sklearn", "sklearn.datasets",
    "tqdm", "tqdm.auto", "dlcourse", "dlcourse.checks", "dlcourse.gradcheck", "dlcourse.data",
    "dlcourse.train", "dlcourse.plots", "dlcourse.doctor", "IPython", "PIL.Image",
]
# Always preloaded: what every kernel needs before the first cell.
# torch._dynamo and torchvision: dlcourse.doctor and many notebooks pull them in (2 s of imports each time).
BASE_PRELOAD = ["numpy", "torch", "torch._dynamo", "torchvision", "matplotlib.pyplot",
                "matplotlib_inline.backend_inline", "tqdm.auto", "dlcourse", "dlcourse.checks"]
UID_BASE = 1_200_000  # one fresh uid per submission: no passwd entry needed, nothing else runs as it
IMPORT = re.compile(r"^[ \t]*(?:from[ \t]+([\w.]+)[ \t]+import[ \t]+(\([^)]*\)|[^\n#;]+)"
                    r"|import[ \t]+([^\n#;]+))", re.M)


def preload_for(source_text: str) -> list[str]:
    """The modules an assignment imports (read from its source text), plus the base set."""
    names = list(BASE_PRELOAD)
    for match in IMPORT.finditer(source_text):
        if match.group(1):  # from X import a, b: X, and X.a / X.b where those are modules
            parts = [match.group(1)] + [f"{match.group(1)}.{p.split(' as ')[0].strip()}"
                                        for p in match.group(2).strip("()").split(",") if p.strip()]
        else:
            parts = [p.split(" as ")[0].strip() for p in match.group(3).split(",")]
        for name in parts:
            if re.fullmatch(r"[A-Za-z_][\w.]*", name) and name not in names:
                names.append(name)
    return names


class Zygote:
    """The grader's handle on the template process: starts it, asks it for kernels."""

    def __init__(self, preload: list[str] | None = None):
        self._lock = threading.Lock()
        self._preload = preload
        self._process: subprocess.Popen | None = None
        self._socket: socket.socket | None = None
        self._uids = itertools.count(UID_BASE + random.randrange(0, 10**6, 1000))
        self._ready = False

    def start(self) -> None:
        """Launch the template without waiting for it (its imports overlap the grader's own work)."""
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._launch()

    def _launch(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        args = [sys.executable, "-m", "dlcourse.grading.zygote", str(theirs.fileno())]
        if self._preload is not None:
            args.append(",".join(self._preload))
        env = {**os.environ, "MPLBACKEND": "module://matplotlib_inline.backend_inline",
               "IPYTHONDIR": tempfile.mkdtemp(prefix="dlcourse-ipython-")}
        self._process = subprocess.Popen(args, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, env=env, cwd="/")
        theirs.close()
        self._socket = ours
        self._ready = False

    def _wait_ready(self) -> None:
        if self._ready:
            return
        self._socket.settimeout(300)  # the imports take seconds, minutes on a very busy machine
        try:
            ready = self._socket.recv(4096)
        except socket.timeout:
            ready = b""
        self._socket.settimeout(120)
        if not ready:
            self._process.kill()
            self._process = None
            raise RuntimeError("the grading template process failed to start (run with a working torch install)")
        self._ready = True

    def spawn(self, config: dict) -> tuple[int, Connection]:
        """A fresh kernel process confined as `config` says; its pid and the socket to it."""
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._launch()
            self._wait_ready()
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                socket.send_fds(self._socket, [json.dumps(config).encode()], [theirs.fileno()])
                reply = self._socket.recv(4096)
            except OSError:  # a timeout included: start a new template next time
                reply = b""
            finally:
                theirs.close()
            if not reply:
                self._process.kill()
                self._process = None
                raise RuntimeError("the grading template process died")
            return json.loads(reply)["pid"], Connection(ours.detach())

    def next_uid(self) -> int:
        with self._lock:
            return next(self._uids)

    def close(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
            if self._process is not None:
                self._process.kill()
                self._process.wait()
            self._process = self._socket = None


_ZYGOTE: Zygote | None = None
_ZYGOTE_LOCK = threading.Lock()


def zygote(preload: list[str] | None = None) -> Zygote:
    """The process-wide template, started on first use; `preload` only matters for the first call."""
    global _ZYGOTE
    with _ZYGOTE_LOCK:
        if _ZYGOTE is None:
            _ZYGOTE = Zygote(preload)
        return _ZYGOTE


def main(fd: int, preload: list[str]) -> None:
    from dlcourse.grading import runner

    # No PR_SET_PDEATHSIG here: it fires when the *thread* that started us exits (a worker thread of a
    # pool), not the grader. The grader's death closes the control socket instead, and we exit on EOF.
    runner.prepare(preload)
    import shutil

    shutil.rmtree(os.environ.get("IPYTHONDIR", "/nonexistent"), ignore_errors=True)  # only needed at start-up
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
    # No interpreter teardown: unloading torch and friends takes seconds, and whoever reads
    # our inherited stderr (a pipe around the grader) would wait for it.
    os._exit(0)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2].split(",") if len(sys.argv) > 2 and sys.argv[2] else DEFAULT_PRELOAD)
