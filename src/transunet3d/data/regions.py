"""BraTS labels <-> the nested regions that are trained and evaluated (WT = {1,2,3}, TC = {1,3}, ET = {3})."""

from __future__ import annotations

import numpy as np

LABELS: tuple[int, ...] = (0, 1, 2, 3)  # every label a segmentation may hold; 0 is background
REGION_LABELS: dict[str, tuple[int, ...]] = {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}
# Writing order back to labels: later regions overwrite earlier ones (WT -> 2, TC -> 1, ET -> 3).
_REGION_TO_LABEL: tuple[tuple[str, int], ...] = (("WT", 2), ("TC", 1), ("ET", 3))


def labels_to_regions(seg: np.ndarray) -> np.ndarray:
    """Boolean region masks (3, *seg.shape) in the order WT, TC, ET."""
    lookup = np.zeros((3, 256), dtype=bool)
    for index, labels in enumerate(REGION_LABELS.values()):
        lookup[index, list(labels)] = True
    return lookup[:, seg.astype(np.uint8)]


def regions_to_labels(regions: np.ndarray) -> np.ndarray:
    """BraTS labels (uint8) from boolean region masks (3, ...) ordered WT, TC, ET."""
    order = list(REGION_LABELS)
    labels = np.zeros(regions.shape[1:], dtype=np.uint8)
    for region, label in _REGION_TO_LABEL:
        labels[regions[order.index(region)].astype(bool)] = label
    return labels
