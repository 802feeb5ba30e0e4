"""Confine one kernel before any student code runs in it. Runs in the kernel process, just after
the template forked it (``runner.serve`` calls `enter` first); what to confine comes in the
`protocol.KernelConfig` the grader built (``policy``). What it does depends on what the OS allows,
and it reports exactly which steps held:

- ``namespaces``: a private mount, network, IPC and UTS namespace (root, or a
  user namespace otherwise). No network at all (only a downed loopback).
- ``pids``: a private PID namespace with its own ``/proc``: the kernel is process 1
  of it and sees no other process (not the grader, not other submissions); every
  process it leaves behind dies with it. Only a child can enter a new PID
  namespace, so the process forks once more; the parent stays outside as the
  supervisor (``supervisor``).
- ``hidden``: the course repository's parent folder, the submissions, the
  gradebook, the output folders, home and temp folders are covered by empty
  tmpfs mounts; the Python installation and the public package are mounted back
  read-only, the working copy read-write. ``/tmp`` and ``/dev/shm`` become
  private, empty and size-limited.
- ``memory``: the kernel's own ``/proc/<pid>/mem`` (and its threads' under ``task/``) is covered, so the
  kernel cannot read or write its own memory through it (a process may always open its own).
- ``user``: when the grader runs as root, the kernel runs as its own unprivileged
  uid (one per submission), without supplementary groups and with
  ``no_new_privs``, so it cannot write anywhere but its working copy and its
  private ``/tmp``, nor signal or inspect other submissions' processes.
- ``limits``: address space (memory; the data segment on an NVIDIA GPU machine, where CUDA
  reserves a huge address space), file size, number of processes, no core dumps.
- capabilities: none left, so a kernel cannot unmount what hides the folders (without
  root, its user namespace would otherwise give it every capability inside it).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
import signal
from pathlib import Path

from dlcourse.instructor.grading.protocol import KernelConfig
from dlcourse.instructor.grading.supervisor import become_supervisor_of_child

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
PR_SET_NO_NEW_PRIVS = 38
O_PATH = getattr(os, "O_PATH", 0o10000000)

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: s.encode() if s is not None else None  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def _unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def _prctl(option: int, value: int) -> None:
    _libc.prctl(option, value, 0, 0, 0)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _vm_size(field: str = "VmSize") -> int:
    """This process's current address space (VmSize) or data segment (VmData), in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    return 0


def _hide_and_expose(hide: list[str], expose: list[str], workdir: str, tmp_mb: int) -> list[str]:
    """Cover `hide` with empty tmpfs; mount `expose` back read-only and `workdir` read-write."""
    done = []
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    keep = {p: os.open(p, O_PATH) for p in [*expose, workdir] if os.path.exists(p)}
    private_tmp = ("/tmp", "/var/tmp", "/dev/shm")
    for folder in sorted(set(hide) | set(private_tmp), key=len):
        if not os.path.isdir(folder) or folder == "/":
            continue
        if folder in private_tmp:
            _mount("tmpfs", folder, "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmp_mb}m,mode=1777")
        else:
            _mount("tmpfs", folder, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
        done.append(folder)
    covered = sorted(done, key=len)
    for path, fd in sorted(keep.items(), key=lambda item: len(item[0])):
        if not any(_inside(path, folder) for folder in covered):
            continue
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(path, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "a").close()
        _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        if path != workdir:
            _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID)
    for fd in keep.values():
        os.close(fd)
    for folder in done:
        if folder not in private_tmp:  # the covers themselves: empty and read-only
            _mount(None, folder, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    return done


def _unshare_namespaces(is_root: bool) -> bool:
    """Private namespaces for this process (a user namespace too when not root); True if a PID
    namespace is among them (where the kernel refuses one, the others still hold)."""
    base = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | (0 if is_root else CLONE_NEWUSER)
    real_uid, real_gid = os.getuid(), os.getgid()
    try:
        _unshare(base | CLONE_NEWPID)
        with_pids = True
    except OSError:
        _unshare(base)
        with_pids = False
    if not is_root:
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{real_uid} {real_uid} 1")
        Path("/proc/self/gid_map").write_text(f"{real_gid} {real_gid} 1")
    return with_pids


def _drop_capabilities() -> None:
    """No capabilities left: without root, the user namespace gave this process every capability
    inside it, enough to unmount the covers over the hidden folders (or the private /proc)."""
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    nothing = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable: 2 x 32 bits each
    _check(_libc.capset(header, nothing), "capset")


def _mount_own_proc() -> None:
    """A /proc that shows only this PID namespace's processes."""
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def _cover_own_memory() -> None:
    """/proc/<pid>/mem of this process (and of each of its threads, under task/) becomes /dev/null and an
    empty folder: a process may always open its own memory file, whatever its uid or dumpable flag, and
    code holding it could write a verdict of its own into the kernel (docs/grading.md)."""
    own = f"/proc/{os.getpid()}"
    _mount("/dev/null", f"{own}/mem", None, MS_BIND)
    _mount("tmpfs", f"{own}/task", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=555")
    _mount(None, f"{own}/task", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)


def enter(config: KernelConfig) -> dict:
    """Confine this process as `config` asks; returns what held (for the flags and the docs).

    With a PID namespace, the caller's process stays behind as a supervisor and only its child
    returns from here (see ``supervisor``)."""
    report: dict = {"namespaces": False, "network": True, "pids": False, "memory": False, "hidden": [],
                    "user": None, "limits": [], "errors": []}
    workdir = config.workdir
    os.setsid()
    is_root = os.geteuid() == 0
    uid = config.uid
    if config.isolate:
        with_pids = False
        try:
            with_pids = _unshare_namespaces(is_root)
            report["namespaces"] = True
            report["network"] = False
        except OSError as error:
            report["errors"].append(f"namespaces: {error}")
        if report["namespaces"]:
            try:
                report["hidden"] = _hide_and_expose(config.hide, config.expose, workdir, config.tmp_mb)
            except OSError as error:
                report["errors"].append(f"hiding folders: {error}")
        if with_pids:
            become_supervisor_of_child()
            try:
                _mount_own_proc()
                report["pids"] = True
            except OSError as error:
                report["errors"].append(f"own /proc: {error}")
        if report["namespaces"]:
            try:
                _cover_own_memory()
                report["memory"] = True
            except OSError as error:
                report["errors"].append(f"covering /proc/self/mem: {error}")
    # Limits: memory counts the address space the template already maps (torch, numpy).
    limits = {
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_FSIZE: config.file_mb * 2**20,
        resource.RLIMIT_NPROC: config.nproc,
    }
    if config.memory_mb:
        if _has_nvidia_gpu():
            # CUDA reserves terabytes of address space at initialisation, so an address-space
            # limit makes every CUDA call fail with "out of memory"; the data-segment limit
            # counts only writable private memory, which is what a memory bomb allocates.
            limits[resource.RLIMIT_DATA] = _vm_size("VmData") + config.memory_mb * 2**20
        else:
            limits[resource.RLIMIT_AS] = _vm_size() + config.memory_mb * 2**20
    for kind, value in limits.items():
        try:
            resource.setrlimit(kind, (value, value))
            report["limits"].append(resource_name(kind))
        except (OSError, ValueError) as error:
            report["errors"].append(f"limit {resource_name(kind)}: {error}")
    if is_root and uid is not None:
        try:
            for folder, _dirs, files in os.walk(workdir):
                os.chown(folder, uid, uid)
                for name in files:
                    os.chown(os.path.join(folder, name), uid, uid)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            report["user"] = uid
        except OSError as error:
            report["errors"].append(f"separate user: {error}")
    try:
        _drop_capabilities()
    except OSError as error:
        report["errors"].append(f"dropping capabilities: {error}")
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # after setuid, which clears it
    os.chdir(workdir)
    return report


def _has_nvidia_gpu() -> bool:
    """An NVIDIA driver is loaded (checked without initialising CUDA in the template)."""
    return os.path.exists("/dev/nvidiactl")


def resource_name(kind: int) -> str:
    names = {resource.RLIMIT_CORE: "core", resource.RLIMIT_FSIZE: "file size",
             resource.RLIMIT_NPROC: "processes", resource.RLIMIT_AS: "memory",
             resource.RLIMIT_DATA: "memory (data segment)"}
    return names.get(kind, str(kind))
