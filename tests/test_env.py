"""dlcourse.env: device choice (and its override), seeds, deterministic mode, grading budget."""

import random

import numpy as np
import pytest
import torch

import dlcourse
from dlcourse import env


@pytest.fixture
def no_gpu(monkeypatch):
    """Pretend this machine has neither CUDA nor MPS, whatever it really has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(env, "_mps_available", lambda: False)


def test_default_device_is_cpu_without_a_gpu(no_gpu, monkeypatch):
    monkeypatch.delenv("DLCOURSE_DEVICE", raising=False)
    assert dlcourse.get_device() == torch.device("cpu")


def test_default_device_prefers_cuda(monkeypatch):
    monkeypatch.delenv("DLCOURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dlcourse.get_device().type == "cuda"


def test_environment_variable_overrides_the_choice(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # would pick cuda
    monkeypatch.setenv("DLCOURSE_DEVICE", "cpu")
    assert dlcourse.get_device() == torch.device("cpu")


def test_argument_overrides_the_environment_variable(no_gpu, monkeypatch):
    monkeypatch.setenv("DLCOURSE_DEVICE", "cuda")
    assert dlcourse.get_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("how", ["env", "argument"])
def test_unavailable_cuda_request_fails_clearly(no_gpu, monkeypatch, how):
    if how == "env":
        monkeypatch.setenv("DLCOURSE_DEVICE", "cuda")
        call = dlcourse.get_device
    else:
        monkeypatch.delenv("DLCOURSE_DEVICE", raising=False)
        call = lambda: dlcourse.get_device("cuda")  # noqa: E731
    with pytest.raises(RuntimeError) as error:
        call()
    message = str(error.value)
    assert "CUDA is not available" in message
    assert "available: cpu" in message
    assert "Change runtime type" in message  # tells a Colab user what to do


def test_seed_everything_makes_python_numpy_and_torch_reproducible():
    def draw():
        return random.random(), np.random.rand(3).tolist(), torch.randn(3).tolist()

    assert dlcourse.seed_everything(123) == 123
    first = draw()
    dlcourse.seed_everything(123)
    assert draw() == first
    dlcourse.seed_everything(124)
    assert draw() != first


@pytest.fixture
def restore_numerics():
    saved = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.are_deterministic_algorithms_enabled(),
    )
    yield
    (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
     torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) = saved[:4]
    torch.use_deterministic_algorithms(saved[4])


def test_deterministic_turns_tf32_off(restore_numerics):
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    dlcourse.deterministic()
    assert torch.backends.cuda.matmul.allow_tf32 is False
    assert torch.backends.cudnn.allow_tf32 is False
    assert torch.backends.cudnn.deterministic is True
    assert torch.backends.cudnn.benchmark is False
    assert torch.are_deterministic_algorithms_enabled()


def test_deterministic_off_restores_defaults_without_matmul_tf32(restore_numerics):
    dlcourse.deterministic(True)
    dlcourse.deterministic(False)
    assert torch.backends.cuda.matmul.allow_tf32 is False  # PyTorch's default: TF32 matmuls stay off
    assert torch.backends.cudnn.deterministic is False
    assert not torch.are_deterministic_algorithms_enabled()


def test_is_grading_and_budget_follow_nbgrader(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    assert not dlcourse.is_grading()
    assert dlcourse.budget(full=5, grading=1) == 5
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert dlcourse.is_grading()
    assert dlcourse.budget(full=5, grading=1) == 1


def test_colab_detection_and_drive_outside_colab(monkeypatch, capsys):
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    monkeypatch.delitem(__import__("sys").modules, "google.colab", raising=False)
    assert not dlcourse.in_colab()
    assert dlcourse.mount_drive() is None
    assert "Not in Colab" in capsys.readouterr().out
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-20250101")
    assert dlcourse.in_colab()
