"""Where the code runs: device choice, seeds, deterministic mode, Colab and Drive,
and whether a notebook is being graded (so that training can shrink to fit the grader)."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

DEVICE_ENV = "DLCOURSE_DEVICE"
# Colab's working folder is /content; the Colab simulation test points this at a temporary folder.
COLAB_CONTENT_ENV = "DLCOURSE_COLAB_CONTENT"
T = TypeVar("T")


def get_device(prefer: str | None = None) -> torch.device:
    """The device to train on: ``prefer``, else $DLCOURSE_DEVICE, else cuda > mps > cpu.

    An unavailable explicit choice raises with the list of what this machine has,
    rather than failing later with a confusing CUDA error.
    """
    choice = prefer or os.environ.get(DEVICE_ENV)
    if choice:
        device = torch.device(choice)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                f"device {choice!r} was asked for but CUDA is not available here; "
                f"available: {', '.join(available_devices())}. In Colab: Runtime > "
                "Change runtime type > GPU. Elsewhere unset $DLCOURSE_DEVICE or pass 'cpu'."
            )
        if device.type == "mps" and not _mps_available():
            raise RuntimeError(
                f"device {choice!r} was asked for but MPS is not available here; "
                f"available: {', '.join(available_devices())}."
            )
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def available_devices() -> list[str]:
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        names.append("mps")
    return names


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def seed_everything(seed: int = 0) -> int:
    """Seed Python, NumPy and torch (every CUDA device too); returns the seed."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    os.environ["PYTHONHASHSEED"] = str(seed)
    return seed


def deterministic(enabled: bool = True) -> None:
    """Reproducible numerics for tests: TF32 off, deterministic cuDNN and algorithms.

    TF32 would make float32 matmuls on Ampere+ GPUs differ from the CPU by ~1e-3,
    which is exactly what a test tolerance must not depend on.
    """
    # enabled=False restores PyTorch's defaults (matmul TF32 is off by default; turning
    # the mode off must not switch TF32 on behind a later test's back).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = not enabled
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    if enabled:
        # cuBLAS needs this to be deterministic; harmless on CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def in_colab() -> bool:
    """True inside Google Colab."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def colab_content() -> Path:
    """Colab's working folder, /content ($DLCOURSE_COLAB_CONTENT overrides it)."""
    return Path(os.environ.get(COLAB_CONTENT_ENV) or "/content")


def mount_drive(mount_point: str | None = None) -> Path | None:
    """Mount Google Drive in Colab (at /content/drive) and return the folder for course files
    (MyDrive/dlcourse); None elsewhere."""
    if not in_colab():
        print("Not in Colab: Google Drive is not mounted; files stay on this machine.")
        return None
    from google.colab import drive  # type: ignore[import-not-found]

    mount_point = mount_point or str(colab_content() / "drive")
    drive.mount(mount_point)
    folder = Path(mount_point) / "MyDrive" / "dlcourse"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def is_grading() -> bool:
    """True while nbgrader (or ``dlcourse grade``/``check``) executes the notebook.

    nbgrader sets NBGRADER_EXECUTION to 'autograde' or 'validate' while it runs a
    notebook; our grader sets it too.
    """
    return bool(os.environ.get("NBGRADER_EXECUTION"))


def budget(full: T, grading: T) -> T:
    """Pick a training budget: ``full`` for a student's real run, ``grading`` under the grader.

    Example: ``epochs = budget(full=5, grading=1)``. Graded cells never depend on
    the full run, so a notebook grades in seconds on a CPU.
    """
    return grading if is_grading() else full


def autocast_dtype(device: torch.device | str) -> torch.dtype | None:
    """The mixed-precision dtype for ``device``: None means plain float32.

    bfloat16 on GPUs with native bf16 (compute capability 8.0+: A100, L4, H100, RTX 30xx+);
    float16 on older GPUs (T4, V100), which then need a gradient scaler; float32 on CPU
    and MPS. ``torch.cuda.is_bf16_supported()`` alone is not enough: by default it also
    says yes on a T4, where bf16 is only emulated and slow.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return None
    index = device.index if device.index is not None else torch.cuda.current_device()
    major, _ = torch.cuda.get_device_capability(index)
    return torch.bfloat16 if major >= 8 else torch.float16
