"""The Gaussian importance map that weights each window's prediction: high in its centre, low at its borders."""

from __future__ import annotations

import torch

MIN_WEIGHT = 1e-3
WEIGHTINGS = ("floored", "nnunet")


def gaussian_importance(patch: tuple[int, ...], sigma_scale: float = 1 / 8,
                        device: torch.device | str = "cpu", weighting: str = "floored") -> torch.Tensor:
    """Separable Gaussian over `patch` with sigma = `sigma_scale` * side, 1 at its centre.

    "floored" (the default, MONAI's "gaussian" blend mode): centred on the patch centre, (side - 1) / 2, and
    raised to at least MIN_WEIGHT. Where two windows overlap, a window's edge then still counts a thousandth of
    the other's centre instead of e^-24 (a corner of a 128^3 window at sigma = side / 8): the far corners of a
    window, where a convolutional network sees the least context, are what the floor lets in, and that is why
    the two weightings give visibly different probabilities on untrained networks (up to 0.47) and nearly the
    same on trained ones. It is also symmetric under every flip of the patch.

    "nnunet" (nnU-Net v2's `compute_gaussian`, for parity with it): centred on voxel side // 2, half a voxel off
    the centre for even sides, and without a floor (nnU-Net only replaces weights that underflow to 0; float32
    holds e^-24).

    Either map is applied in the volume's coordinates after a view's prediction is mapped back, so neither needs
    to be symmetric for the views to share one window grid.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown Gaussian weighting {weighting!r}; choose one of {', '.join(WEIGHTINGS)}")
    weights = torch.ones((), dtype=torch.float32, device=device)
    for side in patch:
        centre = (side - 1) / 2 if weighting == "floored" else side // 2
        position = torch.arange(side, dtype=torch.float32, device=device) - centre
        profile = torch.exp(position**2 / (-2 * (sigma_scale * side) ** 2))
        weights = weights.unsqueeze(-1) * profile
    if weighting == "nnunet":
        return weights
    return weights.clamp_(min=max(float(weights.min()), MIN_WEIGHT))
