"""Region loss: BCE + soft Dice on sigmoid region maps, with nnU-Net's deep-supervision weighting."""

from __future__ import annotations

import torch
import torch.nn.functional as F

DICE_SMOOTH = 1e-5


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = DICE_SMOOTH) -> torch.Tensor:
    """1 - batch Dice per region, averaged over regions: sums run over the batch and all voxels (nnU-Net's
    batch Dice), so a patch without tumour does not make its region's Dice undefined."""
    probability = torch.sigmoid(logits.float())
    target = target.float()
    dims = (0, *range(2, logits.ndim))
    intersection = (probability * target).sum(dims)
    total = probability.sum(dims) + target.sum(dims)
    return 1 - ((2 * intersection + smooth) / (total + smooth)).mean()


def region_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE (mean over voxels) + soft Dice for region logits and 0/1 region targets of the same shape."""
    return F.binary_cross_entropy_with_logits(logits.float(), target.float()) + soft_dice_loss(logits, target)


def deep_supervision_weights(stages: int) -> list[float]:
    """1/2^i for stage i (finest first), the coarsest stage 0, normalised to sum 1 (nnU-Net)."""
    weights = [0.5**i for i in range(stages)]
    if stages > 1:
        weights[-1] = 0.0
    total = sum(weights)
    return [w / total for w in weights]


def downsample_target(target: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Region targets at a coarser decoder stage (nearest neighbour)."""
    if tuple(target.shape[2:]) == tuple(shape):
        return target
    return F.interpolate(target.float(), size=tuple(shape), mode="nearest")


def deep_supervision_loss(outputs: list[torch.Tensor], target: torch.Tensor,
                          weights: list[float] | None = None) -> torch.Tensor:
    """Weighted region loss over the decoder stages' outputs (finest first) against full-resolution targets.

    Args:
        weights: one per output; nnU-Net's `deep_supervision_weights` when not given.
    """
    # Zero-weight stages are still evaluated: every head then takes part in the loss, as DDP requires.
    weights = deep_supervision_weights(len(outputs)) if weights is None else weights
    total = outputs[0].new_zeros((), dtype=torch.float32)
    for weight, logits in zip(weights, outputs):
        total = total + weight * region_loss(logits, downsample_target(target, logits.shape[2:]))
    return total
