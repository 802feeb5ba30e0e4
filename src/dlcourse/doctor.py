"""The environment report behind ``dlcourse doctor`` (and ``python -m dlcourse.doctor``).

Paste its output into a question to the course staff: it says which dlcourse runs
(version, and the commit it was installed from), which Python, torch and torchvision run, whether a GPU is visible (CUDA and cuDNN versions, GPU name and
memory), how many CPUs, whether this is Colab, where the data cache is, and which
device ``dlcourse.get_device()`` picks.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["report", "print_report"]


def dlcourse_origin() -> tuple[str | None, str | None]:
    """(commit, where from) of the dlcourse that runs: pip's record of a git install (Colab's
    setup cell), else git of the checkout it runs from (editable install), else (None, None)."""
    import importlib.metadata

    import dlcourse

    try:
        info = json.loads(importlib.metadata.distribution("dlcourse").read_text("direct_url.json") or "{}")
    except (importlib.metadata.PackageNotFoundError, json.JSONDecodeError):
        info = {}
    vcs = info.get("vcs_info")
    package = Path(dlcourse.__file__).resolve().parent
    if vcs and not (package.parents[1] / ".git").exists():
        return vcs.get("commit_id"), f"{info.get('url')}@{vcs.get('requested_revision', '')}".rstrip("@")
    checkout = package.parents[1]
    if (checkout / ".git").exists():
        try:
            done = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"],
                                  capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None, str(checkout)
        if done.returncode == 0:
            return done.stdout.strip(), str(checkout)
    return None, None


def _shown_origin(origin: str | None) -> str | None:
    """A checkout as the printed report shows it: under ~ relative to it, else without its
    absolute path (an executed notebook must not show the folder of the machine that built it)."""
    if origin is None or not Path(origin).is_dir():
        return origin  # pip's git URL and ref
    home = Path.home()
    if Path(origin).is_relative_to(home):
        return "~/" + Path(origin).relative_to(home).as_posix()
    return "a git checkout"


def report() -> dict[str, Any]:
    """The environment as a dict (every value a str, int, float, bool, list or None).

    Keys: python, platform, dlcourse, dlcourse_commit, dlcourse_from, torch, torchvision, numpy, cuda_available,
    cuda_version, cudnn_version, gpus (list of {name, memory_gb}), gpu_name, gpu_memory_gb,
    mps_available, cpu_count, torch_threads, colab, grading, data_cache, device,
    device_error; os and data_cache_shown are what the printed report shows.
    """
    import numpy
    import torch

    import dlcourse
    from dlcourse.env import get_device, in_colab, is_grading

    try:
        import torchvision

        torchvision_version: str | None = torchvision.__version__
    except Exception as error:  # a broken torchvision install is exactly what the report is for
        torchvision_version = f"not importable ({error.__class__.__name__}: {error})"

    cuda = torch.cuda.is_available()
    gpus = []
    if cuda:
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            gpus.append({"name": props.name, "memory_gb": round(props.total_memory / 2**30, 1)})
    mps_backend = getattr(torch.backends, "mps", None)

    try:
        from dlcourse.data import cache_dir, cache_display, data_mirror

        data_cache: str | None = str(cache_dir())
        data_cache_shown = cache_display(cache_dir())
        mirror = data_mirror()
    except Exception as error:
        data_cache = data_cache_shown = f"unavailable ({error})"
        mirror = None

    commit, origin = dlcourse_origin()

    device_error = None
    try:
        device = str(get_device())
    except RuntimeError as error:  # e.g. $DLCOURSE_DEVICE=cuda on a machine without a GPU
        device, device_error = "unavailable", str(error)

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        # what the printed report shows: no kernel version, host name or absolute path, so an
        # executed notebook does not show the machine that built it
        "os": f"{platform.system()} {platform.machine()}",
        "data_cache_shown": data_cache_shown,
        "dlcourse": getattr(dlcourse, "__version__", "unknown"),
        "dlcourse_commit": commit,
        "dlcourse_from": origin,
        "dlcourse_from_shown": _shown_origin(origin),
        "torch": torch.__version__,
        "torchvision": torchvision_version,
        "numpy": numpy.__version__,
        "cuda_available": cuda,
        "cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version() if cuda and torch.backends.cudnn.is_available() else None,
        "gpus": gpus,
        "gpu_name": gpus[0]["name"] if gpus else None,
        "gpu_memory_gb": gpus[0]["memory_gb"] if gpus else None,
        "mps_available": bool(mps_backend and mps_backend.is_available()),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "colab": in_colab(),
        "grading": is_grading(),
        "data_cache": data_cache,
        "data_mirror": mirror,
        "device": device,
        "device_error": device_error,
    }


def _lines(info: dict[str, Any]) -> list[str]:
    gpu = "none"
    if info["gpus"]:
        gpu = "; ".join(f"{g['name']} ({g['memory_gb']} GiB)" for g in info["gpus"])
    cuda = f"yes (CUDA {info['cuda_version']}, cuDNN {info['cudnn_version']})" if info["cuda_available"] else (
        f"no (torch built with CUDA {info['cuda_version']})" if info["cuda_version"] else "no (CPU-only torch build)"
    )
    rows = [
        ("Python", f"{info['python']} ({info['os']})"),
        ("dlcourse", info["dlcourse"] + (f" (commit {info['dlcourse_commit'][:12]}, {info['dlcourse_from_shown']})"
                                         if info["dlcourse_commit"] else "")),
        ("torch", info["torch"]),
        ("torchvision", info["torchvision"]),
        ("numpy", info["numpy"]),
        ("CUDA available", cuda),
        ("GPU", gpu),
        ("Apple MPS", "yes" if info["mps_available"] else "no"),
        ("CPUs", f"{info['cpu_count']} (torch uses {info['torch_threads']} threads)"),
        ("Colab", "yes" if info["colab"] else "no"),
        ("data cache", info["data_cache_shown"]),
        *([("data mirror", info["data_mirror"])] if info.get("data_mirror") else []),
        ("device", info["device"]),
    ]
    width = max(len(key) for key, _ in rows)
    lines = ["dlcourse doctor: environment report"] + [f"  {key:<{width}}  {value}" for key, value in rows]
    if info["device_error"]:
        lines.append(f"  ! {info['device_error']}")
    if not info["cuda_available"] and info["colab"]:
        lines.append("  tip: no GPU in this Colab session; an assignment that asks for one (the note at its top) "
                     "needs Runtime > Change runtime type > T4 GPU.")
    return lines


def print_report(file: Any = None) -> dict[str, Any]:
    """Print the report (to stdout) and return it as a dict."""
    info = report()
    print("\n".join(_lines(info)), file=file or sys.stdout)
    return info


if __name__ == "__main__":
    print_report()
