"""The Gaussian importance map that weights each window's prediction: high in its centre, low at its borders."""

from __future__ import annotations

import torch

MIN_WEIGHT = 1e-3


def gaussian_importance(patch: tuple[int, ...], sigma_scale: float = 1 / 8,
                        device: torch.device | str = "cpu") -> torch.Tensor:
    """Separable Gaussian over `patch` with sigma = `sigma_scale` * side, centred on the patch centre.

    Weights below MIN_WEIGHT are raised to it so that every voxel of a window counts a little: border voxels
    covered by a single window still get a prediction. The map is symmetric under every flip of the patch and,
    for equal sides, every axis permutation, which lets test-time augmentation views share one set of windows.
    This is the formula of MONAI's "gaussian" blend mode (nnU-Net differs only by a half-voxel centring).
    """
    weights = torch.ones((), dtype=torch.float32, device=device)
    for side in patch:
        position = torch.arange(side, dtype=torch.float32, device=device) - (side - 1) / 2
        profile = torch.exp(position**2 / (-2 * (sigma_scale * side) ** 2))
        weights = weights.unsqueeze(-1) * profile
    return weights.clamp_(min=max(float(weights.min()), MIN_WEIGHT))
