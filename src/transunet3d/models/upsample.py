"""The decoder's 2x upsampling: a transposed convolution with kernel 2 and stride 2, faster in CPU inference.

With kernel = stride = 2 the 2x2x2 output blocks do not overlap: each output voxel is one sum over the input
channels, `out[:, o, 2d+i, 2h+j, 2w+k] = sum_c x[:, c, d, h, w] * weight[c, o, i, j, k]`. In inference on the CPU
that is a matrix product, (8 * out_channels, in_channels) x (in_channels, voxels), taken a few slices at a time,
each copied (strided) into the output. Each output is the same single sum as in oneDNN's transposed convolution
(bit for bit on the shapes measured; tests hold it to 1e-6), at about a third of its time for the full U-Net's last
upsampling (64 -> 32 channels, 64^3 -> 128^3: 130 against 440 ms) and with less memory (docs/benchmarks.md). A
channels-last input is the same product transposed, (voxels, in_channels) x (in_channels, 8 * out_channels), and
gives a channels-last output, so that a channels-last forward pass stays so (models/norm.py). Training, CUDA and
export keep torch's own kernel.
"""

from __future__ import annotations

import torch
from torch import nn

VOXELS_PER_PRODUCT = 1 << 15  # input voxels per matrix product: 32 MB of products at 32 fp32 output channels


class Upsample2x(nn.ConvTranspose3d):
    """nn.ConvTranspose3d(in_channels, out_channels, kernel_size=2, stride=2, bias=False); the same state dict."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, kernel_size=2, stride=2, bias=False)

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if output_size is not None or not runs_as_matrix_product(x):
            return super().forward(x, output_size)
        out = torch.empty((x.shape[0], self.out_channels, *(2 * size for size in x.shape[2:])),
                          dtype=product_dtype(x), memory_format=layout_of(x))
        self.write(x, out)
        return out

    def write(self, x: torch.Tensor, out: torch.Tensor) -> None:
        """Upsample `x` into `out` (N, out_channels, 2X, 2Y, 2Z), which may be a view (a decoder writes into the
        first channels of its concatenation), by matrix products over a few slices of `x` at a time, so that the
        products take little memory besides `out`. Only where `runs_as_matrix_product(x)`."""
        batch, channels, depth, *plane = x.shape
        slices = max(1, VOXELS_PER_PRODUCT // (plane[0] * plane[1]))
        channels_last = not x.is_contiguous()
        if channels_last:  # in channel x (out channel, i, j, k): the rows below are (voxels, in channels)
            taps = self.weight.reshape(channels, -1)
        else:  # (i, j, k, out channel) x in channel: the columns below are voxels
            taps = self.weight.permute(2, 3, 4, 1, 0).reshape(-1, channels)
        for sample in range(batch):
            # out[sample] as (out channel, x, i, y, j, z, k), each output voxel (2x + i, 2y + j, 2z + k)
            target = out[sample].unflatten(1, (depth, 2)).unflatten(3, (plane[0], 2)).unflatten(5, (plane[1], 2))
            for first in range(0, depth, slices):
                part = x[sample, :, first:first + slices]
                if channels_last:
                    blocks = torch.mm(part.permute(1, 2, 3, 0).reshape(-1, channels), taps)
                    blocks = blocks.view(-1, *plane, self.out_channels, 2, 2, 2).permute(3, 0, 4, 1, 5, 2, 6)
                else:
                    blocks = torch.mm(taps, part.reshape(channels, -1))
                    blocks = blocks.view(2, 2, 2, self.out_channels, -1, *plane).permute(3, 4, 0, 5, 1, 6, 2)
                target[:, first:first + slices] = blocks


def runs_as_matrix_product(x: torch.Tensor) -> bool:
    """Whether Upsample2x computes `x` as matrix products: CPU inference on a contiguous or channels-last 5D
    input."""
    return (x.device.type == "cpu" and not torch.is_grad_enabled() and x.dim() == 5
            and (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last_3d))
            and not torch.compiler.is_compiling())


def product_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype of Upsample2x's output for `x`: the autocast dtype under CPU autocast, else x's."""
    return torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype


def layout_of(x: torch.Tensor) -> torch.memory_format:
    """Channels-last for a channels-last (and not contiguous) 5D tensor, else contiguous."""
    return torch.contiguous_format if x.is_contiguous() else torch.channels_last_3d
