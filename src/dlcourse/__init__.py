"""dlcourse: the helper package of the deep-learning course.

Students import it in every notebook (devices, seeds, data, gradient checks,
training loops, plots, self-checks); instructors use its command line
(`dlcourse build | check | grade | release | doctor`).
"""

from dlcourse import checks, data, doctor, gradcheck, plots, train
from dlcourse.env import (
    budget,
    deterministic,
    get_device,
    in_colab,
    is_grading,
    mount_drive,
    seed_everything,
)

__version__ = "0.1.0"

__all__ = [
    "checks",
    "data",
    "doctor",
    "gradcheck",
    "plots",
    "train",
    "budget",
    "deterministic",
    "get_device",
    "in_colab",
    "is_grading",
    "mount_drive",
    "seed_everything",
]
