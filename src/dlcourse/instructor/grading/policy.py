"""The sandbox policy: what a kernel may see, which environment it gets, how its limits are set, and
how it is stopped for good. Runs in the grader process: `kernel_config` builds the
`protocol.KernelConfig` that ``sandbox.enter`` applies inside the kernel.
"""

from __future__ import annotations

import os
import signal
import site
import sys
from pathlib import Path

from dlcourse.instructor.grading import settings
from dlcourse.instructor.grading.protocol import KernelConfig

# The grader's environment variables a kernel keeps; everything else (tokens, paths) it never sees.
KEPT_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES",
            "CUDA_HOME", "LD_LIBRARY_PATH", "DLCOURSE_DEVICE", "DLCOURSE_DATA", "DLCOURSE_OFFLINE", "PYTHONHASHSEED")


def default_hide() -> list[str]:
    """Folders a kernel must not see: homes, and the folder holding the course repository."""
    hide = ["/root", "/home", "/srv", "/mnt", "/media", "/var/log", "/var/mail"]
    try:
        from dlcourse.instructor.course import find_root

        root = find_root()
        hide += [str(root.parent if root.parent != root.parent.parent else root)]
    except Exception:
        pass
    import dlcourse

    repo = Path(dlcourse.__file__).resolve().parents[2]
    hide.append(str(repo.parent if repo.parent != repo.parent.parent else repo))
    return hide


def default_expose() -> list[str]:
    """What stays readable under the hidden folders: Python, installed packages, the public package and data."""
    import dlcourse

    package = Path(dlcourse.__file__).resolve().parent
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(package.parent), str(package.parents[1] / "data")}
    try:
        paths.update(site.getsitepackages())
    except AttributeError:
        pass
    for entry in sys.path:  # editable installs and .pth folders
        if entry and "site-packages" in entry:
            paths.add(entry)
    return sorted(str(Path(p).resolve()) for p in paths if p and Path(p).exists())


def kernel_env(extra: dict | None, workdir: str) -> dict:
    env = {k: os.environ[k] for k in KEPT_ENV if k in os.environ}
    env.update(HOME=workdir, TMPDIR="/tmp", MPLBACKEND="module://matplotlib_inline.backend_inline",
               MPLCONFIGDIR="/tmp/.matplotlib", XDG_CACHE_HOME="/tmp/.cache", IPYTHONDIR="/tmp/.ipython",
               PYTHONUNBUFFERED="1")
    env.update(extra or {})
    env["NBGRADER_EXECUTION"] = "autograde"
    return env


def kernel_config(workdir: Path, *, uid: int | None, isolate: bool, hide: list[str] | None, env: dict | None,
                  memory_mb: int | None, output_limit: int, threads: int | None,
                  native_code: bool = False) -> KernelConfig:
    """Every field of one kernel's config, from the call's options and the grading settings."""
    folder = str(workdir.resolve())
    return KernelConfig(
        workdir=folder, env=kernel_env(env, folder), uid=uid, isolate=isolate,
        hide=hide if hide is not None else default_hide(), expose=default_expose(),
        memory_mb=memory_mb, output_limit=output_limit, threads=threads,
        tmp_mb=settings.TMP_MB, file_mb=settings.FILE_MB, nproc=settings.NPROC, native_code=native_code)


def kill(pid: int, uid: int | None) -> None:
    """The kernel (its supervisor, its process group) and, as root, everything left running as its uid."""
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            target()
        except OSError:
            pass
    if uid is not None and os.geteuid() == 0:
        kill_uid(uid)


def kill_uid(uid: int) -> int:
    """Kill every process left running as `uid` (daemons a submission started); root only."""
    killed = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid == uid:
                os.kill(int(entry), signal.SIGKILL)
                killed += 1
        except OSError:
            pass
    return killed
