"""Arrays for checking: one converter from tensors (any device), arrays and numbers to NumPy, and one
relative error. Used by `checks`, `gradcheck` and `plots`; imports neither (nor torch: a tensor can
only exist once torch is imported).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np


def to_numpy(x: Any) -> np.ndarray:
    """A CPU NumPy array of `x`: a tensor is detached and moved to the CPU, a floating one (bfloat16
    too) becomes float64, a complex one complex128; anything else goes through ``np.asarray``."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        x = x.detach().to("cpu")
        if x.is_complex():
            return x.to(torch.complex128).numpy()
        if x.is_floating_point():
            return x.to(torch.float64).numpy()
        return x.numpy()
    return np.asarray(x)


def to_float64(x: Any) -> np.ndarray:
    """A float64 (complex128 for complex input) NumPy *copy* of `x`."""
    array = to_numpy(x)
    return array.astype(np.complex128 if np.iscomplexobj(array) else np.float64)


def relative_errors(a: Any, b: Any) -> np.ndarray:
    """Elementwise ``|a - b| / max(1e-8, |a| + |b|)``, in float64."""
    a64, b64 = to_float64(a), to_float64(b)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.abs(a64 - b64) / np.maximum(1e-8, np.abs(a64) + np.abs(b64))


def rel_error(a: Any, b: Any) -> float:
    """Largest elementwise relative error ``max |a - b| / max(1e-8, |a| + |b|)``.

    ``a`` and ``b`` are arrays, tensors (any device) or numbers of the same shape
    (or broadcastable). Rule of thumb for float64 gradients: < 1e-7 is right,
    1e-7..1e-4 look closer, > 1e-4 is almost always a bug (kinks such as ReLU at 0
    can give ~1e-6 legitimately).
    """
    errors = relative_errors(a, b)
    return float(np.max(errors)) if errors.size else 0.0
