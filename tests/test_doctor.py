"""dlcourse.doctor: the environment report a student pastes into a question."""

import json
import subprocess
import sys

import torch

from dlcourse import doctor

KEYS = {
    "python", "torch", "torchvision", "numpy", "cuda_available", "cuda_version", "cudnn_version",
    "gpu_name", "gpu_memory_gb", "gpus", "cpu_count", "colab", "data_cache", "device",
}


def test_report_has_every_key_and_is_json():
    info = doctor.report()
    assert KEYS <= set(info)
    json.dumps(info)  # plain values only: easy to log or paste
    assert info["torch"] == torch.__version__
    assert info["cuda_available"] == torch.cuda.is_available()
    assert info["cpu_count"] >= 1
    assert info["device"] in ("cpu", "cuda", "mps")
    if not info["cuda_available"]:
        assert info["gpu_name"] is None and info["gpus"] == []


def test_report_uses_the_data_cache_override(monkeypatch, tmp_path):
    monkeypatch.setenv("DLCOURSE_DATA", str(tmp_path / "cache"))
    assert doctor.report()["data_cache"] == str(tmp_path / "cache")


def test_an_unavailable_device_request_is_reported_not_raised(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("DLCOURSE_DEVICE", "cuda")
    info = doctor.report()
    assert info["device"] == "unavailable" and "CUDA is not available" in info["device_error"]


def test_print_report_lists_what_matters(capsys):
    doctor.print_report()
    out = capsys.readouterr().out
    for label in ("Python", "torch", "torchvision", "CUDA available", "GPU", "CPUs", "Colab", "data cache", "device"):
        assert label in out


def test_the_data_mirror_is_shown_only_when_set(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("DLCOURSE_DATA_MIRROR", raising=False)
    doctor.print_report()
    assert "data mirror" not in capsys.readouterr().out
    monkeypatch.setenv("DLCOURSE_DATA_MIRROR", "https://data.example.edu/dl/")
    doctor.print_report()
    assert "data mirror     https://data.example.edu/dl\n" in capsys.readouterr().out


def test_no_gpu_in_colab_points_at_the_assignments_that_ask_for_one(monkeypatch, capsys):
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-20260819-060000-RC00")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    doctor.print_report()
    tip = [line for line in capsys.readouterr().out.splitlines() if "tip:" in line]
    assert tip == ["  tip: no GPU in this Colab session; an assignment that asks for one (the note at its top) "
                   "needs Runtime > Change runtime type > T4 GPU."]


def test_runs_as_a_module(tmp_path):
    result = subprocess.run([sys.executable, "-m", "dlcourse.doctor"], capture_output=True, text=True,
                            timeout=300, env={**__import__("os").environ, "DLCOURSE_DATA": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "environment report" in result.stdout and "torchvision" in result.stdout
