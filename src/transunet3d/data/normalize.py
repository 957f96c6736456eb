"""Per-modality z-score over brain voxels; background stays exactly 0."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def brain_mask(image: np.ndarray) -> np.ndarray:
    """The brain of (C, X, Y, Z) `image`: voxels nonzero in any channel, with enclosed holes filled (nnU-Net's
    `create_nonzero_mask`). A cavity of exact zeros inside the brain (a skull-stripping hole, a zero-filled
    resection cavity) is brain: it enters the statistics and is normalised like any other brain voxel."""
    return ndimage.binary_fill_holes(np.any(image != 0, axis=0))


def zscore_brain(image: np.ndarray, brain: np.ndarray) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Z-scored copy of (C, X, Y, Z) `image` using the statistics of the voxels where `brain` is true.

    Returns:
        The float32 image and, per channel, the (mean, std) that was removed.
    """
    out = np.zeros(image.shape, dtype=np.float32)
    stats = []
    for channel, values in enumerate(image):
        inside = values[brain].astype(np.float64)
        mean = float(inside.mean()) if inside.size else 0.0
        std = float(inside.std()) if inside.size else 1.0
        std = std if std > 0 else 1.0  # (an absolute floor, nnU-Net's 1e-8, left images of 1e-12 units unscaled)
        out[channel][brain] = ((inside - mean) / std).astype(np.float32)
        stats.append((mean, std))
    return out, stats
