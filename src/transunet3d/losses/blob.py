"""Blob loss: a soft Dice per ground-truth lesion, so that every lesion counts alike (Kofler et al., 2023).

The batch Dice of `region.py` sums over all voxels of a batch, so a 15-voxel metastasis weighs a thousandth of a
large one and missing it barely moves the loss, while the BraTS lesion-wise Dice counts it as a whole lesion at
Dice 0. Blob loss adds, per region, the mean over lesions of a Dice loss in which each lesion is scored against
the prediction with the other lesions masked out: lesion k's Dice is 2 S_k / (S_0 + S_k + N_k), where S_k sums
the predicted probability over lesion k's voxels, S_0 over the background and N_k counts lesion k's voxels. One
scatter-add per sample and region gives every S_k, so the term costs a small fraction of a training step.

Lesions are the 26-connected components of each region of each sample, as the lesion-wise metric counts them,
labelled on the CPU (`cc3d`) after augmentation.
"""

from __future__ import annotations

import cc3d
import numpy as np
import torch


def lesion_labels(targets: torch.Tensor) -> tuple[torch.Tensor, int]:
    """26-connected components of every (sample, region) map of 0/1 targets (B, R, D, H, W), numbered from 1
    within each map (0: background), as int64 on the targets' device, and the largest number in any map."""
    masks = targets.detach().to("cpu", torch.uint8).numpy()
    labels = np.zeros(masks.shape, dtype=np.int64)
    for sample in range(masks.shape[0]):
        for region in range(masks.shape[1]):
            if masks[sample, region].any():
                labels[sample, region] = cc3d.connected_components(masks[sample, region], connectivity=26)
    return torch.from_numpy(labels).to(targets.device, non_blocking=True), int(labels.max(initial=0))


def blob_dice_loss(logits: torch.Tensor, labels: torch.Tensor, lesions: int) -> torch.Tensor:
    """1 - the mean soft Dice of every lesion against the prediction with the other lesions masked out.

    Args:
        logits: region logits (B, R, D, H, W).
        labels, lesions: their lesions and the largest lesion number, `lesion_labels` of the targets.

    Returns:
        a scalar; 0 (still connected to the graph) when the batch holds no lesion.
    """
    probability = torch.sigmoid(logits.float()).flatten(2)
    labels = labels.flatten(2)
    sums = probability.new_zeros(*labels.shape[:2], lesions + 1).scatter_add_(2, labels, probability)
    sizes = torch.zeros_like(sums).scatter_add_(2, labels, torch.ones_like(probability))
    lesion_sums, lesion_sizes = sums[..., 1:], sizes[..., 1:]
    present = (lesion_sizes > 0).float()
    dice = 2 * lesion_sums / (sums[..., :1] + lesion_sums + lesion_sizes).clamp_min(1e-5)
    # sync-free mean over the lesions present; 0 with a gradient path when there is none
    return ((1 - dice) * present).sum() / present.sum().clamp_min(1)
