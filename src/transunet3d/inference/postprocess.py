"""From region probabilities to a BraTS label map: threshold, optionally drop tiny or coreless components, nest,
relabel."""

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


def drop_coreless_whole_tumour(regions: np.ndarray) -> np.ndarray:
    """Boolean regions (WT, TC, ET, ...) without the WT components that hold no TC voxel.

    Metastatic edema surrounds a tumour core, so a coreless WT component is usually a false positive. Real
    references do hold some edema-only lesions (2 of 40 WT components in the four label maps of
    ../shared/data), which is why this is an option (`infer.require_core`), off by default.
    """
    whole, core = regions[0], regions[1] & regions[0]
    components = cc3d.connected_components(np.ascontiguousarray(whole), connectivity=26)
    cored = np.unique(components[core])
    return regions & np.isin(components, cored[cored > 0])[None]


def min_component_voxels(min_mm3: float, spacing: tuple[float, ...]) -> int:
    """The smallest voxel count whose volume reaches `min_mm3` with voxels of `spacing` (mm)."""
    voxel = float(np.prod(spacing))
    return max(math.ceil(min_mm3 / voxel - 1e-9), 0)


def labels_from_probabilities(probabilities: np.ndarray, threshold: float = 0.5, min_voxels: int = 0,
                              require_core: bool = False) -> np.ndarray:
    """BraTS labels (uint8) from region probabilities (WT, TC, ET, ...): a region is where its probability
    exceeds `threshold`; components smaller than `min_voxels` are dropped when it is above 1, and WT components
    without a core when `require_core`."""
    regions = remove_small_components(probabilities > threshold, min_voxels)
    return regions_to_labels(drop_coreless_whole_tumour(regions) if require_core else regions)
