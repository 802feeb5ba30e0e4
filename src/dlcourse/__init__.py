"""dlcourse: the helper package of the deep-learning course.

Students import it in every notebook (devices, seeds, data, gradient checks,
training loops, plots, self-checks) and run `dlcourse doctor`. The instructor
toolchain (`dlcourse build | check | grade | publish | ...`) is the subpackage
``dlcourse.instructor``, which the student course does not carry.

The submodules load on first use (``dlcourse.checks``, ``dlcourse.get_device``...):
they import torch, and the instructor commands that never touch a tensor (the
grader's parent process above all) should not pay seconds for it.
"""

import importlib as _importlib
import sys as _sys

__version__ = "0.2.0"

_SUBMODULES = ("checks", "data", "doctor", "gradcheck", "plots", "projects", "selfcheck", "train")
_FROM_ENV = ("budget", "deterministic", "get_device", "in_colab", "is_grading", "mount_drive", "seed_everything")
_FROM_SELFCHECK = ("require_written", "self_check")

__all__ = [*_SUBMODULES, *_FROM_ENV, *_FROM_SELFCHECK]


def __getattr__(name: str):
    if name in _SUBMODULES:
        value = _importlib.import_module(f"dlcourse.{name}")
    elif name in _FROM_ENV:
        value = getattr(_importlib.import_module("dlcourse.env"), name)
    elif name in _FROM_SELFCHECK:
        value = getattr(_importlib.import_module("dlcourse.selfcheck"), name)
    else:
        raise AttributeError(f"module 'dlcourse' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def load_all() -> None:
    """Import every submodule now (the grading template does, before any student code runs)."""
    for name in __all__:
        if name not in globals():
            __getattr__(name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def _watch_notebook() -> None:
    """In a Jupyter or Colab kernel, start recording which cells ran for the notebook's self-check
    (`dlcourse.selfcheck`); elsewhere (the grader, a script) nothing happens and nothing is imported."""
    ipython = _sys.modules.get("IPython")
    if ipython is not None and ipython.get_ipython() is not None:
        _importlib.import_module("dlcourse.selfcheck").watch()


_watch_notebook()
