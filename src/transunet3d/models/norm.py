"""Instance normalisation that keeps channels-last features channels-last on the CPU, in training and inference.

torch's instance norm reshapes its input to (1, N*C, ...), which for a channels-last tensor is a full copy to the
contiguous layout, and returns a contiguous tensor; the next convolution then reorders it for oneDNN again, and
the backward pass copies every gradient back (13 copies per conv-norm-activation block in a training step, a fifth
of its time). Keeping a whole CPU pass channels-last instead lets oneDNN convolve every layer without reordering
its input and output (at full size the reorders' buffers are the largest tensors of the pass, docs/benchmarks.md).
Here a sample's features are a (voxels, channels) matrix: the mean is a column sum, the variance a column sum of
squared deviations taken in cache-sized row blocks (two passes over the data, as accurate as torch's kernel: about
1e-6 on a mean-5 input), and one `addcmul` applies both with the affine weights. In training, the backward pass
is the same kind of column sums and two `addcmul`s (`ChannelsLastInstanceNorm`). CUDA, reduced precision and
contiguous inputs keep torch's kernel.
"""

from __future__ import annotations

import torch
from torch import nn

ROWS_PER_BLOCK = 1 << 15  # voxels per block of the squared deviations: 4 MB at 32 fp32 channels and 1 sample


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
        if torch.is_grad_enabled():
            return ChannelsLastInstanceNorm.apply(x, self.weight, self.bias, self.eps)
        with torch.no_grad():
            mean, rstd = statistics(x, self.eps)
            scale, shift = scale_and_shift(mean, rstd, self.weight, self.bias)
        return torch.addcmul(shift, x, scale, out=x if self.inplace else None)


class ChannelsLastInstanceNorm(torch.autograd.Function):
    """Instance norm of a channels-last CPU tensor with its gradients, channels-last in and out.

    With x_hat = (x - mean) * rstd per sample and channel, and y = weight * x_hat + bias:
    d bias = sum(dy), d weight = sum(dy * x_hat), and dx = A * dy + B * x + C per sample and channel, where
    A = weight * rstd, B = -A * rstd * mean(dy * x_hat) and C = -A * mean(dy) - B * mean.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean, rstd = statistics(x, eps)
        scale, shift = scale_and_shift(mean, rstd, weight, bias)
        ctx.save_for_backward(x, mean, rstd, weight)
        return torch.addcmul(shift, x, scale)

    @staticmethod
    def backward(ctx, dy):
        x, mean, rstd, weight = ctx.saved_tensors
        dy = dy.contiguous(memory_format=torch.channels_last_3d)
        batch, channels = x.shape[:2]
        dy_rows, x_rows = as_rows(dy), as_rows(x)
        sum_dy = dy_rows.sum(1)  # (N, C)
        sum_dy_centred = torch.zeros_like(sum_dy)
        for start in range(0, x_rows.shape[1], ROWS_PER_BLOCK):
            block = slice(start, start + ROWS_PER_BLOCK)
            sum_dy_centred += (x_rows[:, block] - mean.unsqueeze(1)).mul_(dy_rows[:, block]).sum(1)
        voxels = x_rows.shape[1]
        a = rstd if weight is None else rstd * weight
        b = -a * rstd.square() * sum_dy_centred / voxels  # mean(dy * x_hat) = rstd * sum_dy_centred / voxels
        c = -a * sum_dy / voxels - b * mean
        view = (batch, channels, 1, 1, 1)
        dx = torch.addcmul(c.view(view), dy, a.view(view)).addcmul_(x, b.view(view)) if ctx.needs_input_grad[0] \
            else None
        d_weight = (sum_dy_centred * rstd).sum(0) if weight is not None and ctx.needs_input_grad[1] else None
        d_bias = sum_dy.sum(0) if weight is not None and ctx.needs_input_grad[2] else None
        return dx, d_weight, d_bias, None


def as_rows(x: torch.Tensor) -> torch.Tensor:
    """A channels-last (N, C, D, H, W) tensor as its (N, voxels, C) matrices, a view."""
    return x.permute(0, 2, 3, 4, 1).reshape(x.shape[0], -1, x.shape[1])


def statistics(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and 1 / sqrt(variance + eps) of every sample and channel of channels-last `x`, (N, C) each."""
    rows = as_rows(x)
    voxels = rows.shape[1]
    mean = rows.sum(1).div_(voxels)
    squares = torch.zeros_like(mean)
    for start in range(0, voxels, ROWS_PER_BLOCK):
        squares += (rows[:, start:start + ROWS_PER_BLOCK] - mean.unsqueeze(1)).square_().sum(1)
    return mean, squares.div_(voxels).add_(eps).rsqrt_()


def scale_and_shift(mean: torch.Tensor, rstd: torch.Tensor, weight: torch.Tensor | None,
                    bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample and channel (N, C, 1, 1, 1): normalised = x * scale + shift."""
    scale = rstd if weight is None else rstd * weight
    shift = -mean * scale
    if bias is not None:
        shift = shift + bias
    view = (*mean.shape, 1, 1, 1)
    return scale.view(view), shift.view(view)


def reads_channels_last(x: torch.Tensor) -> bool:
    """Whether InstanceNorm3d takes its channels-last path: a channels-last fp32 5D input on the CPU."""
    return (x.device.type == "cpu" and x.dim() == 5 and x.dtype == torch.float32
            and x.is_contiguous(memory_format=torch.channels_last_3d)
            and not torch.compiler.is_compiling() and not torch.jit.is_tracing())
