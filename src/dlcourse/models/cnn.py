"""The CIFAR-10 residual network of assignment 02_cnn and its mixed-precision settings.

One definition shared by the notebook (``notebooks/02_cnn``) and the benchmark
(``benchmarks/bench_cnn.py``), so that the benchmark measures exactly the network
students train.

The layout is the ResNet-9 that Myrtle.ai (David Page, 2018) used to reach 94% on
CIFAR-10 in minutes: a stack of 3x3 convolution -> batch norm -> ReLU units, three
max-pool downsamplings, two residual blocks, a global max pool and one linear layer.
``width=64`` is the full network (6.6M parameters); a smaller width keeps CPU runs short.
"""

from __future__ import annotations

import torch
from torch import nn

from dlcourse.env import autocast_dtype  # re-exported: the notebook imports it from here

__all__ = ["ConvBNReLU", "Residual", "CifarResNet", "autocast_dtype", "precision_name"]


class ConvBNReLU(nn.Sequential):
    """3x3 convolution (no bias: batch norm's shift replaces it), batch norm, ReLU."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )


class Residual(nn.Module):
    """x + F(x), where F is two ConvBNReLU units that keep shape (N, C, H, W)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(ConvBNReLU(channels, channels), ConvBNReLU(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class CifarResNet(nn.Sequential):
    """ResNet-9 for 32x32 RGB images: (N, 3, 32, 32) -> class scores (N, num_classes).

    Shapes with width w: 32x32 w -> 16x16 2w (+residual) -> 8x8 4w -> 4x4 8w (+residual) -> 8w -> classes.
    """

    def __init__(self, width: int = 64, num_classes: int = 10, logit_scale: float = 0.125):
        w = width
        super().__init__(
            ConvBNReLU(3, w),
            ConvBNReLU(w, 2 * w), nn.MaxPool2d(2), Residual(2 * w),
            ConvBNReLU(2 * w, 4 * w), nn.MaxPool2d(2),
            ConvBNReLU(4 * w, 8 * w), nn.MaxPool2d(2), Residual(8 * w),
            nn.AdaptiveMaxPool2d(1), nn.Flatten(),
            nn.Linear(8 * w, num_classes, bias=False),
        )
        # Scaling the logits down keeps the initial softmax soft, which lets a high learning rate work.
        self.logit_scale = logit_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.logit_scale


def precision_name(dtype: torch.dtype | None) -> str:
    """A short label for a training precision: 'fp32', 'bf16' or 'fp16'."""
    return {None: "fp32", torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
