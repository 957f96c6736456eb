"""Instance normalisation that reads channels-last features in place, for CPU inference.

torch's instance norm reshapes its input to (1, N*C, ...), which for a channels-last tensor is a full copy to the
contiguous layout, and returns a contiguous tensor; the next convolution then reorders it for oneDNN again. Keeping
a whole CPU forward pass channels-last instead lets oneDNN convolve every layer without reordering its input and
output (at full size the reorders' buffers are the largest tensors of the pass, docs/benchmarks.md). Here a sample's
features are a (voxels, channels) matrix: the mean is a column sum, the variance a column sum of squared deviations
taken in cache-sized row blocks (two passes over the data, as accurate as torch's kernel: about 1e-6 on a mean-5
input), and one `addcmul` applies both with the affine weights. Training, CUDA, reduced precision and contiguous
inputs keep torch's kernel.
"""

from __future__ import annotations

import torch
from torch import nn

ROWS_PER_BLOCK = 1 << 15  # voxels per block of the squared deviations: 4 MB at 32 fp32 channels


class InstanceNorm3d(nn.InstanceNorm3d):
    """nn.InstanceNorm3d (no running statistics) with a channels-last path for CPU inference."""

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = True, inplace: bool = False):
        """`inplace`: on the channels-last path, overwrite the input instead of allocating the output (for a
        convolution's output that nothing else reads, as LeakyReLU's `inplace`)."""
        super().__init__(num_features, eps=eps, affine=affine)
        self.inplace = inplace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not reads_channels_last(x):
            return super().forward(x)
        scale, shift = self._scale_and_shift(x)
        return torch.addcmul(shift, x, scale, out=x if self.inplace else None)

    def _scale_and_shift(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per sample and channel (N, C, 1, 1, 1): normalised = x * scale + shift."""
        batch, channels = x.shape[:2]
        scale = torch.empty(batch, channels, dtype=x.dtype)
        mean = torch.empty(batch, channels, dtype=x.dtype)
        for sample in range(batch):
            rows = x[sample].permute(1, 2, 3, 0).reshape(-1, channels)  # a view: the sample is channels-last
            mean[sample] = rows.sum(0).div_(rows.shape[0])
            squares = torch.zeros(channels, dtype=x.dtype)
            for start in range(0, rows.shape[0], ROWS_PER_BLOCK):
                squares += (rows[start:start + ROWS_PER_BLOCK] - mean[sample]).square_().sum(0)
            scale[sample] = squares.div_(rows.shape[0]).add_(self.eps).rsqrt_()
        if self.affine:
            scale.mul_(self.weight)
        shift = -mean * scale
        if self.affine:
            shift.add_(self.bias)
        view = (batch, channels, 1, 1, 1)
        return scale.view(view), shift.view(view)


def reads_channels_last(x: torch.Tensor) -> bool:
    """Whether InstanceNorm3d takes its channels-last path: CPU inference on a channels-last fp32 5D input."""
    return (x.device.type == "cpu" and not torch.is_grad_enabled() and x.dim() == 5 and x.dtype == torch.float32
            and x.is_contiguous(memory_format=torch.channels_last_3d)
            and not torch.compiler.is_compiling() and not torch.jit.is_tracing())
