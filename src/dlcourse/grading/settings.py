"""The grading defaults, in one place: what `grade_notebook`, `dlcourse grade` (its --help shows
them) and `dlcourse check` use when nobody says otherwise.

Runs in the grader process (and is imported by the template and kernel only through `protocol`).
"""

TIMEOUT_S = 600.0  # one notebook, all cells together
CELL_TIMEOUT_S = 120.0  # one cell
MEMORY_MB = 4096  # per kernel, on top of what the template's preloaded libraries map
OUTPUT_LIMIT = 2 * 2**20  # bytes of outputs a kernel keeps; more is cut with a note
TMP_MB = 512  # the kernel's private /tmp, /var/tmp and /dev/shm
FILE_MB = 512  # the largest file a kernel may write
NPROC = 4096  # processes (threads included) under a kernel's uid
INTERRUPT_GRACE_S = 5.0  # after SIGINT, how long a cell over its time has to stop before the kernel is killed
KERNEL_START_S = 120.0  # a forked kernel must say hello within this
