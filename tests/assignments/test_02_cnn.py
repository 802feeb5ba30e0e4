"""What the 02_cnn solution does beyond its graded tests, checked fast (no notebook execution).

- the shared CIFAR network (dlcourse.models.cnn) has the shapes the notebook describes,
  and picks the precision the notebook promises;
- the benchmark runs end to end on a CPU with tiny sizes and prints the ratio.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dlcourse.models.cnn import CifarResNet, autocast_dtype, precision_name

NAME = "02_cnn"
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("width, params", [(16, 412_944), (64, 6_573_120)])
def test_cifar_resnet_shapes(width, params):
    model = CifarResNet(width=width)
    assert sum(p.numel() for p in model.parameters()) == params
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_precision_on_cpu_is_fp32():
    assert autocast_dtype("cpu") is None
    assert precision_name(autocast_dtype("cpu")) == "fp32"
    assert precision_name(torch.float16) == "fp16"
    assert precision_name(torch.bfloat16) == "bf16"


def test_benchmark_runs_on_cpu():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_cnn.py"), "--device", "cpu", "--width", "4",
         "--batch-size", "8", "--steps", "1", "--warmup", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "baseline: eager fp32" in result.stdout
    assert "ratio notebook / baseline:" in result.stdout
