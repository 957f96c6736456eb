"""3D convolutions that stay correct under bf16 autocast on the CPU.

oneDNN's bf16 backward-weights kernel for x86 CPUs (jit_bf16:avx512_core_bf16, as in torch 2.13) returns wrong,
often non-finite, weight gradients when the input is under 3 voxels along an axis, as at the 2x2x2 bottleneck of
a 64^3 patch (tests/models/test_conv.py reproduces it). Such inputs are a few voxels, so these layers run in fp32
at no measurable cost, and every other layer keeps the bf16 speed-up (docs/benchmarks.md).
"""

from __future__ import annotations

import torch
from torch import nn

SMALLEST_BF16_EXTENT = 3  # voxels along every spatial axis for the CPU bf16 kernels to be trusted


def needs_fp32(x: torch.Tensor) -> bool:
    """Whether a convolution of `x` must leave CPU bf16 autocast (see the module docstring)."""
    return (x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
            and min(x.shape[2:]) < SMALLEST_BF16_EXTENT)


class Conv3d(nn.Conv3d):
    """nn.Conv3d, in fp32 under CPU bf16 autocast for inputs under 3 voxels along an axis."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if needs_fp32(x):
            with torch.autocast("cpu", enabled=False):
                return super().forward(x.float())
        return super().forward(x)
