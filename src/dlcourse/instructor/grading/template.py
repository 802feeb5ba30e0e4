"""The grader's handle on the template process. Runs in the grader process.

The template (`template_main`, a process of its own) has imported torch, numpy and IPython once and
forks a fresh kernel for every submission: a kernel is ready in tens of milliseconds instead of
seconds of start-up, and each submission still gets its own process. The command that grades
creates one `Template`, passes it to every `grade_notebook` call and closes it at the end (a `with`
block); a single `grade_notebook` call without one starts and closes its own.

What crosses the socket to the template is in `protocol`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection

from dlcourse.instructor.grading import protocol

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


class Template:
    """Starts the template process, asks it for kernels, stops it. Thread-safe; a template that
    died is started again on the next `spawn`."""

    def __init__(self, preload: list[str] | None = None):
        self._lock = threading.Lock()
        self._preload = preload
        self._process: subprocess.Popen | None = None
        self._socket: socket.socket | None = None
        self._uids = itertools.count(UID_BASE + random.randrange(0, 10**6, 1000))
        self._ready = False

    def __enter__(self) -> Template:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        """Launch the template without waiting for it (its imports overlap the grader's own work)."""
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._launch()

    def wait_ready(self) -> None:
        """Launch it if needed and wait until it can fork kernels (its imports done)."""
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._launch()
            self._wait_ready()

    def _launch(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        args = [sys.executable, "-m", "dlcourse.instructor.grading.template_main", str(theirs.fileno())]
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

    def spawn(self, config: protocol.KernelConfig) -> tuple[int, Connection]:
        """A fresh kernel process confined as `config` says; its pid and the socket to it."""
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._launch()
            self._wait_ready()
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                socket.send_fds(self._socket, [config.encode()], [theirs.fileno()])
                reply = self._socket.recv(4096)
            except OSError:  # a timeout included: start a new template next time
                reply = b""
            finally:
                theirs.close()
            if not reply:
                self._process.kill()
                self._process = None
                raise RuntimeError("the grading template process died")
            return protocol.spawned_pid(reply), Connection(ours.detach())

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

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


@contextlib.contextmanager
def given_or_own(template: Template | None, preload: list[str] | None = None) -> Iterator[Template]:
    """`template` when the caller passed one; otherwise a new one, closed on leaving."""
    if template is not None:
        yield template
        return
    with Template(preload) as own:
        yield own
