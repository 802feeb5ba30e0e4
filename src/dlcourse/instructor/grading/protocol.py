"""What crosses between the grading processes, stated once (the drawing is in `grading/__init__.py`).

Two sockets, JSON only (never pickle: the kernel runs student code), no message over MAX_MESSAGE:

- grader -> template (a Unix seqpacket socket): `KernelConfig` plus one file descriptor, the
  kernel's end of its own socket; the template forks and answers `{"pid": N}`. The template says
  `{"ready": true}` once, when its imports are done.
- grader <-> kernel (a stream socket, multiprocessing framing): the kernel says `Hello` (what
  confinement held); then for every code cell the grader sends `RunCell` and the kernel answers
  one `CellReply` carrying the request's nonce; `STOP` ends it.

Everything the kernel sends is untrusted: `CellReply.parse` keeps only well-formed fields and
outputs, and the grader counts a reply only with the right nonce and index.

Imported by all four processes; only the standard library and `settings`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from dlcourse.instructor.grading import settings

MAX_MESSAGE = 16 * 2**20  # either way, on both sockets
STOP = b'{"op": "stop"}'
READY = b'{"ready": true}'


@dataclass
class KernelConfig:
    """How one kernel is confined and set up; built by the grader (`policy.kernel_config`), read by
    the sandbox and the runner in the kernel."""

    workdir: str
    env: dict[str, str]
    hide: list[str] = field(default_factory=list)
    expose: list[str] = field(default_factory=list)
    isolate: bool = True
    uid: int | None = None  # a fresh uid per submission when the grader runs as root
    memory_mb: int | None = settings.MEMORY_MB
    output_limit: int = settings.OUTPUT_LIMIT
    threads: int | None = None
    tmp_mb: int = settings.TMP_MB
    file_mb: int = settings.FILE_MB
    nproc: int = settings.NPROC
    native_code: bool = False  # the assignment may load native extensions (cffi, its own .so files)

    def encode(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def decode(cls, data: bytes) -> KernelConfig:
        return cls(**json.loads(data))


@dataclass
class RunCell:
    """Run one cell: a student's or instructor's code cell (`kind` "code") or a test ("test")."""

    index: int
    kind: str
    grade_id: str | None
    source: str
    nonce: str
    instructor: bool  # not a solution cell: names it binds to protected functions are guarded

    def encode(self) -> bytes:
        return json.dumps({"op": "run", **asdict(self)}).encode()


def decode_request(data: bytes) -> RunCell | None:
    """The kernel's reading of the grader's message: a cell to run, or None to stop."""
    message = json.loads(data)
    if message.pop("op", None) != "run":
        return None
    return RunCell(**message)


@dataclass
class Hello:
    isolation: dict  # sandbox.enter's report: which confinement steps held, and the errors

    def encode(self) -> bytes:
        return json.dumps({"ready": True, "isolation": self.isolation}).encode()

    @classmethod
    def parse(cls, data: bytes) -> Hello:
        message = json.loads(data)
        isolation = message.get("isolation") if isinstance(message, dict) else None
        return cls(isolation if isinstance(isolation, dict) else {})


@dataclass
class CellReply:
    nonce: str
    index: int
    status: str  # "ok": the cell ran to its end (a test: did not raise); anything else: "error"
    outputs: list[dict] = field(default_factory=list)  # nbformat output dicts
    execution_count: int | None = None
    seconds: float = 0.0
    flags: list[str] = field(default_factory=list)
    error: str | None = None
    score: float | None = None  # a test's points from the number it ended with (partial credit); None: all or nothing

    def encode(self) -> bytes:
        """At most MAX_MESSAGE bytes: a reply too large (or not JSON-able) goes without its outputs."""
        try:
            data = json.dumps(asdict(self), default=str).encode()
        except Exception:
            data = b""
        if not data or len(data) > MAX_MESSAGE:
            data = json.dumps({"nonce": self.nonce, "index": self.index, "status": self.status}).encode()
        return data

    @classmethod
    def parse(cls, data: bytes) -> CellReply | None:
        """The grader's reading of a reply from untrusted code: None when it is not a reply at all;
        otherwise only the outputs nbformat accepts and fields of the right type."""
        message = json.loads(data)  # not JSON at all: ValueError, the kernel is broken
        if not isinstance(message, dict):
            return None
        outputs = message.get("outputs")
        flags = message.get("flags")
        count = message.get("execution_count")
        try:
            seconds = float(message.get("seconds", 0.0))
        except (TypeError, ValueError):
            seconds = 0.0
        error = message.get("error")
        score = message.get("score")
        if not isinstance(score, (int, float)) or isinstance(score, bool) or score != score:
            score = None
        return cls(score=score, nonce=message.get("nonce"), index=message.get("index"),
                   status="ok" if message.get("status") == "ok" else "error",
                   outputs=[o for o in outputs if valid_output(o)] if isinstance(outputs, list) else [],
                   execution_count=count if isinstance(count, int) and not isinstance(count, bool) else None,
                   seconds=seconds, flags=[str(f) for f in flags] if isinstance(flags, list) else [],
                   error=error if isinstance(error, str) else None)


_OUTPUT_FIELDS = {
    "stream": {"name": str, "text": str},
    "display_data": {"data": dict, "metadata": dict},
    "execute_result": {"data": dict, "metadata": dict},
    "error": {"ename": str, "evalue": str, "traceback": list},
}


def valid_output(output) -> bool:
    """An output the kernel sent has the shape nbformat requires (it comes from untrusted code)."""
    if not isinstance(output, dict) or output.get("output_type") not in _OUTPUT_FIELDS:
        return False
    fields = _OUTPUT_FIELDS[output["output_type"]]
    if not all(isinstance(output.get(k), t) for k, t in fields.items()):
        return False
    if output["output_type"] == "stream" and output["name"] not in ("stdout", "stderr"):
        return False
    if output["output_type"] == "execute_result" and not isinstance(output.get("execution_count"), (int, type(None))):
        return False
    extra = set(output) - set(fields) - {"output_type", "execution_count"}
    return not extra


def spawned(pid: int) -> bytes:
    return json.dumps({"pid": pid}).encode()


def spawned_pid(data: bytes) -> int:
    return int(json.loads(data)["pid"])
