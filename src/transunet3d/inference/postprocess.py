"""From region probabilities to a BraTS label map: threshold, optionally drop tiny components, nest, relabel."""

from __future__ import annotations

import math

import cc3d
import numpy as np

from transunet3d.data.regions import regions_to_labels


def remove_small_components(regions: np.ndarray, min_voxels: int) -> np.ndarray:
    """Boolean regions (WT, TC, ET, ...) without 26-connected components of fewer than `min_voxels` voxels.

    Afterwards each region is cut to the one before it (ET inside TC inside WT), so that removing a small WT
    component also removes the core inside it instead of leaving an orphaned core.
    """
    if min_voxels <= 1:
        return regions
    kept = np.stack([cc3d.dust(np.ascontiguousarray(region), threshold=min_voxels, connectivity=26)
                     for region in regions])
    for index in range(1, len(kept)):
        kept[index] &= kept[index - 1]
    return kept


def min_component_voxels(min_mm3: float, spacing: tuple[float, ...]) -> int:
    """The smallest voxel count whose volume reaches `min_mm3` with voxels of `spacing` (mm)."""
    voxel = float(np.prod(spacing))
    return max(math.ceil(min_mm3 / voxel - 1e-9), 0)


def labels_from_probabilities(probabilities: np.ndarray, threshold: float = 0.5, min_voxels: int = 0) -> np.ndarray:
    """BraTS labels (uint8) from region probabilities (WT, TC, ET, ...): a region is where its probability
    exceeds `threshold`; components smaller than `min_voxels` are dropped when it is above 1."""
    return regions_to_labels(remove_small_components(probabilities > threshold, min_voxels))
