"""Gaussian-weighted sliding-window prediction of a whole volume, with the TTA views batched with the windows."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from transunet3d.inference.gaussian import gaussian_importance
from transunet3d.inference.tta import View
from transunet3d.inference.windows import Window, padding_to_patch, window_grid

PatchPredictor = Callable[[torch.Tensor], torch.Tensor]


def sliding_window_probabilities(
    predict: PatchPredictor,
    image: torch.Tensor,
    patch: tuple[int, int, int],
    step: float = 0.5,
    views: Sequence[View] = (View(),),
    batch_windows: int = 2,
    sigma_scale: float = 1 / 8,
    device: torch.device | str | None = None,
    weighting: str = "floored",
) -> torch.Tensor:
    """Probabilities (R, X, Y, Z) for an image (C, X, Y, Z) of any size, averaged over windows and views.

    `predict` maps a batch (N, C, *patch) to probabilities (N, R, *patch). Each (window, view) pair is one network
    input and `batch_windows` of them go through the network together, so views need no loop over whole volumes.
    All views share one window grid (the grid and the Gaussian are mirror-symmetric), so the result equals the
    mean over views of a separate sliding window on each viewed volume. Volumes smaller than the patch are
    zero-padded around. Accumulation is float32 on `device`, or on the CPU when the device has no room for it.
    `weighting` names the Gaussian (`gaussian.gaussian_importance`).
    """
    device = torch.device(device) if device is not None else image.device
    if any(view.rotates for view in views) and patch[0] != patch[1]:
        raise ValueError(f"axial rotations need a square axial patch, not {patch}")
    padding = padding_to_patch(tuple(image.shape[1:]), patch)
    padded = F.pad(image.to(device), [side for pair in reversed(padding) for side in pair])
    windows = window_grid(tuple(padded.shape[1:]), patch, step)
    weight = gaussian_importance(patch, sigma_scale, device, weighting)
    pairs = [(window, view) for window in windows for view in views]
    total = None
    for start in range(0, len(pairs), batch_windows):
        chunk = pairs[start:start + batch_windows]
        inputs = torch.stack([view.apply(padded[(slice(None), *window)]) for window, view in chunk])
        outputs = predict(inputs).float()
        if total is None:
            total = _zeros((outputs.shape[1], *padded.shape[1:]), device)
            weight = weight.to(total.device)
        for (window, view), output in zip(chunk, outputs):
            total[(slice(None), *window)].addcmul_(view.invert(output).to(total.device), weight)
    total /= _coverage(windows, weight, tuple(padded.shape[1:]), total.device) * len(views)
    return total[(slice(None), *(slice(before, before + size) for (before, _), size in zip(padding, image.shape[1:])))]


def _coverage(windows: list[Window], weight: torch.Tensor, shape: tuple[int, int, int],
              device: torch.device) -> torch.Tensor:
    """The sum of the Gaussian weights of all windows at each voxel."""
    coverage = torch.zeros(shape, device=device)
    weight = weight.to(device)
    for window in windows:
        coverage[window] += weight
    return coverage


def _zeros(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """A float32 accumulator on `device`, or on the CPU when the device is out of memory."""
    try:
        return torch.zeros(shape, dtype=torch.float32, device=device)
    except torch.cuda.OutOfMemoryError:
        warnings.warn(f"no room for a {tuple(shape)} accumulator on {device}; accumulating on the CPU", stacklevel=3)
        return torch.zeros(shape, dtype=torch.float32)
