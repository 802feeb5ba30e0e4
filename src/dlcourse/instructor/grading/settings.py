"""The grading defaults, in one place: what `grade_notebook`, `dlcourse grade` (its --help shows
them) and `dlcourse check` use when nobody says otherwise, and how many kernels run at once.

Runs in the grader process (and is imported by the template and kernel only through `protocol`).
"""

import os
from pathlib import Path

TIMEOUT_S = 600.0  # one notebook, all cells together
CELL_TIMEOUT_S = 120.0  # one cell
MEMORY_MB = 4096  # per kernel, on top of what the template's preloaded libraries map
OUTPUT_LIMIT = 2 * 2**20  # bytes of outputs a kernel keeps; more is cut with a note
TMP_MB = 512  # the kernel's private /tmp, /var/tmp and /dev/shm
FILE_MB = 512  # the largest file a kernel may write
NPROC = 4096  # processes (threads included) under a kernel's uid
INTERRUPT_GRACE_S = 5.0  # after SIGINT, how long a cell over its time has to stop before the kernel is killed
KERNEL_START_S = 120.0  # a forked kernel must say hello within this
STOP_WAIT_S = 2.0  # after the last cell, how long the grader waits for the reply to an empty cell (a sync)


def gpu_count(dev: Path = Path("/dev")) -> int:
    """GPUs this process may use, read from the device nodes (/dev/nvidia0, ...) and
    CUDA_VISIBLE_DEVICES: importing torch here would cost seconds of start-up, and
    asking CUDA would initialise it in the grader."""
    devices = [p for p in dev.glob("nvidia*") if p.name[len("nvidia"):].isdigit()]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if not devices or visible is None:
        return len(devices)
    count = 0
    for entry in visible.split(","):  # CUDA stops at the first empty or negative entry
        if not entry.strip() or entry.strip().startswith("-"):
            break
        count += 1
    return min(count, len(devices))


def default_workers() -> int:
    """Every core; on a GPU machine, up to three kernels per GPU (each holds a CUDA context)."""
    cores = os.cpu_count() or 1
    gpus = gpu_count()
    return max(1, min(cores, 3 * gpus)) if gpus else cores
