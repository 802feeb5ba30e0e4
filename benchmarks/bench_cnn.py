"""Training throughput of the 02_cnn CIFAR-10 network: PyTorch-eager fp32 baseline vs the notebook's configuration.

Trains ``dlcourse.models.cnn.CifarResNet`` (the network of notebooks/02_cnn) on random
CIFAR-shaped tensors on the current device, twice in one run:

* baseline: eager PyTorch, float32, the default (N, C, H, W) memory layout;
* notebook: channels-last memory layout and mixed precision where the GPU supports it
  (bfloat16 on compute capability 8.0+, float16 with a GradScaler on older GPUs such as
  the T4, float32 on CPU and MPS), exactly as ``train_cifar`` in the notebook does.

Each configuration starts from the same initial weights, runs a few warm-up steps (cuDNN
autotuning, allocator), then times ``--steps`` optimizer steps (forward, cross-entropy,
backward, SGD step) and prints images per second side by side, with the speed-up.

    python benchmarks/bench_cnn.py                         # full size on a GPU, small on a CPU
    python benchmarks/bench_cnn.py --width 16 --batch-size 64 --steps 5   # CPU-friendly (< 1 minute)
"""

from __future__ import annotations

import argparse
import copy
import platform
import time

import torch
import torch.nn.functional as F

import dlcourse
from dlcourse.models.cnn import CifarResNet, autocast_dtype, precision_name


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: dlcourse.get_device())")
    parser.add_argument("--width", type=int, default=None, help="network width; 64 is the notebook's GPU network "
                        "(default: 64 on CUDA, 16 elsewhere, as in the notebook)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 512 on CUDA, 64 elsewhere")
    parser.add_argument("--steps", type=int, default=None, help="timed optimizer steps (default: 50 on CUDA, 5 elsewhere)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 10 on CUDA, 2 elsewhere)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="time each configuration this many times, alternating, and keep the best "
                             "(default: 3 on CUDA, 1 elsewhere)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


class Run:
    """One configuration: its own copy of the model, optimizer and (for fp16) gradient scaler."""

    def __init__(self, name: str, model: torch.nn.Module, device: torch.device, channels_last: bool,
                 amp_dtype: torch.dtype | None):
        self.name, self.device, self.channels_last, self.amp_dtype = name, device, channels_last, amp_dtype
        layout = torch.channels_last if channels_last else torch.contiguous_format
        self.model = copy.deepcopy(model).to(device, memory_format=layout).train()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.05, momentum=0.9, nesterov=True,
                                         weight_decay=5e-4)
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
        self.best_images_per_second = 0.0

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            loss = F.cross_entropy(self.model(images), labels, label_smoothing=0.2)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach()

    def time_steps(self, batches: list[tuple[torch.Tensor, torch.Tensor]], steps: int) -> float:
        """Images per second over ``steps`` optimizer steps."""
        synchronize(self.device)
        started = time.perf_counter()
        for i in range(steps):
            loss = self.step(*batches[i % len(batches)])
        synchronize(self.device)
        seconds = time.perf_counter() - started
        if not torch.isfinite(loss):
            raise RuntimeError(f"{self.name}: the loss is {loss.item()}")
        return steps * batches[0][0].shape[0] / seconds


def main() -> None:
    args = parse_args()
    device = dlcourse.get_device(args.device)
    on_cuda = device.type == "cuda"
    width = args.width or (64 if on_cuda else 16)
    batch_size = args.batch_size or (512 if on_cuda else 64)
    steps = args.steps or (50 if on_cuda else 5)
    warmup = args.warmup if args.warmup is not None else (10 if on_cuda else 2)
    repeats = args.repeats or (3 if on_cuda else 1)
    if on_cuda:
        # Both configurations let cuDNN time its algorithms once and keep the fastest (fixed shapes), as
        # the notebook does; TF32 stays at PyTorch's defaults, so "fp32" means what eager PyTorch gives.
        torch.backends.cudnn.benchmark = True

    dlcourse.seed_everything(args.seed)
    model = CifarResNet(width=width)
    generator = torch.Generator().manual_seed(args.seed)
    batches = [
        (torch.randn(batch_size, 3, 32, 32, generator=generator).to(device),
         torch.randint(0, 10, (batch_size,), generator=generator).to(device))
        for _ in range(4)
    ]
    amp = autocast_dtype(device)
    runs = [
        Run("baseline: eager fp32, NCHW", model, device, channels_last=False, amp_dtype=None),
        Run(f"notebook: channels-last, {precision_name(amp)}", model, device, channels_last=True, amp_dtype=amp),
    ]

    name = torch.cuda.get_device_name(device) if on_cuda else platform.processor() or platform.machine()
    print(f"device {device} ({name}), torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print(f"CifarResNet(width={width}): {sum(p.numel() for p in model.parameters()):,} parameters; "
          f"batch {batch_size}, {warmup} warm-up + {steps} timed steps, best of {repeats}")
    for run in runs:
        for i in range(warmup):
            run.step(*batches[i % len(batches)])
    for _ in range(repeats):  # alternate, so that a slow moment of a shared machine hits both
        for run in runs:
            run.best_images_per_second = max(run.best_images_per_second, run.time_steps(batches, steps))

    baseline = runs[0].best_images_per_second
    print(f"{'configuration':<36} {'images/s':>10} {'speed-up':>9}")
    for run in runs:
        print(f"{run.name:<36} {run.best_images_per_second:>10.0f} {run.best_images_per_second / baseline:>8.2f}x")
    print(f"ratio notebook / baseline: {runs[1].best_images_per_second / baseline:.2f}")


if __name__ == "__main__":
    main()
