"""Blob loss: a soft Dice per ground-truth lesion, so that every lesion counts alike (Kofler et al., 2023).

The batch Dice of `region.py` sums over all voxels of a batch, so a 15-voxel metastasis weighs a thousandth of a
large one and missing it barely moves the loss, while the BraTS lesion-wise Dice counts it as a whole lesion at
Dice 0. Blob loss adds, per region, the mean over lesions of a Dice loss in which each lesion is scored against
the prediction with the other lesions masked out: lesion k's Dice is 2 S_k / (S_0 + S_k + N_k), where S_k sums
the predicted probability over lesion k's voxels, S_0 over the background and N_k counts lesion k's voxels.

Lesions are the 26-connected components of each region of each sample, as the lesion-wise metric counts them,
labelled on the CPU (`cc3d`) after augmentation. The term touches the lesion voxels only: S_0 is a map's total
probability less its lesions' sums, and the sizes N_k are counted on the CPU with the labels, so beside one
sigmoid and sum over the batch it costs a gather and an index-add over the (few) foreground voxels.
"""

from __future__ import annotations

from typing import NamedTuple

import cc3d
import numpy as np
import torch


class Lesions(NamedTuple):
    """The ground-truth lesions of a batch of region maps (B, R, D, H, W), numbered 0..L-1 over the batch."""

    voxels: torch.Tensor  # (V,) int64: flat index into the batch of every lesion voxel
    lesion_of_voxel: torch.Tensor  # (V,) int64: that voxel's lesion
    map_of_lesion: torch.Tensor  # (L,) int64: each lesion's (sample, region) map, sample * R + region
    sizes: torch.Tensor  # (L,) float64: each lesion's voxel count

    @property
    def count(self) -> int:
        return int(self.sizes.shape[0])


def lesion_labels(targets: torch.Tensor) -> Lesions:
    """The 26-connected components of every (sample, region) map of 0/1 targets (B, R, D, H, W), on the targets'
    device."""
    masks = targets.detach().to("cpu", torch.uint8).numpy()
    maps = masks.reshape(-1, *masks.shape[2:])
    map_voxels = int(np.prod(masks.shape[2:]))
    empty = np.zeros(0, dtype=np.int64)  # so that a batch without lesions concatenates too
    voxels, lesions, map_of_lesion = [empty], [empty], [empty]
    found = 0
    for index, mask in enumerate(maps):
        if not mask.any():
            continue
        labels, count = cc3d.connected_components(mask, connectivity=26, return_N=True)
        flat = np.flatnonzero(labels)
        voxels.append(flat + index * map_voxels)
        lesions.append(labels.ravel()[flat].astype(np.int64) - 1 + found)
        map_of_lesion.append(np.full(count, index, dtype=np.int64))
        found += count
    lesion_of_voxel = np.concatenate(lesions)

    def to_device(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(targets.device, non_blocking=True)

    return Lesions(voxels=to_device(np.concatenate(voxels)), lesion_of_voxel=to_device(lesion_of_voxel),
                   map_of_lesion=to_device(np.concatenate(map_of_lesion)),
                   sizes=to_device(np.bincount(lesion_of_voxel, minlength=found).astype(np.float64)))


def blob_dice_loss(logits: torch.Tensor, lesions: Lesions) -> torch.Tensor:
    """1 - the mean soft Dice of every lesion against the prediction with the other lesions masked out.

    Args:
        logits: region logits (B, R, D, H, W).
        lesions: the lesions of the targets, `lesion_labels`.

    Returns:
        a scalar; 0 (still connected to the graph) when the batch holds no lesion.
    """
    if not lesions.count:
        return logits.sum() * 0.0
    probability = torch.sigmoid(logits.float())
    totals = probability.flatten(2).sum(2, dtype=torch.float64).flatten()
    voxel_probability = probability.flatten().index_select(0, lesions.voxels).double()
    lesion_sums = totals.new_zeros(lesions.count).index_add_(0, lesions.lesion_of_voxel, voxel_probability)
    foreground = torch.zeros_like(totals).index_add_(0, lesions.map_of_lesion, lesion_sums)
    background = (totals - foreground).index_select(0, lesions.map_of_lesion)
    dice = 2 * lesion_sums / (background + lesion_sums + lesions.sizes).clamp_min(1e-5)
    return (1 - dice).mean().float()
