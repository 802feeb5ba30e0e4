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


def test_test_cells_stand_alone(sources):
    from dlcourse.instructor.authoring.self_contained import borrowed_names

    assert borrowed_names(sources(NAME)) == []


def test_two_written_questions(sources):
    from dlcourse.instructor.cells import role

    answers = [cell for cell in sources(NAME).cells if role(cell) == "answer"]
    assert len(answers) >= 2


def test_curves_use_the_validation_split(sources):
    code = "\n".join(cell.source for cell in sources(NAME).cells if cell.cell_type == "code")
    assert "val_loader=mnist_test_loader" not in code
    assert "cifar_accuracy(model, cifar_val_x, cifar_val_y" in code
    assert code.count("evaluate(lenet, mnist_test_loader") == 1


def test_own_layers_train_like_torch_nn(solution):
    """Part 5, small: convnet_loss with SGD follows the torch.nn twin with torch.optim.SGD, step by step."""
    ns = solution
    params = ns["init_convnet"](1, 6, 6, num_filters=3, kernel_size=3, num_classes=4, seed=0)
    twin = ns["torch_twin"](params)
    optimizer = torch.optim.SGD(twin.parameters(), lr=0.1)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        x = torch.randn(5, 1, 6, 6, generator=generator, dtype=torch.float64)
        y = torch.randint(0, 4, (5,), generator=generator)
        loss, grads = ns["convnet_loss"](params, x, y)
        params = {name: value - 0.1 * grads[name] for name, value in params.items()}
        twin_loss = torch.nn.functional.cross_entropy(twin(x), y)
        optimizer.zero_grad()
        twin_loss.backward()
        optimizer.step()
        assert abs(loss.item() - twin_loss.item()) < 1e-10
    assert torch.allclose(params["conv_w"], twin[0].weight, atol=1e-12)
    assert torch.allclose(params["fc_w"], twin[4].weight.T, atol=1e-12)


