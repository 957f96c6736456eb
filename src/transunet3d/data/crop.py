"""Crop a case to its brain (the union of nonzero voxels) and paste arrays back into the full volume."""

from __future__ import annotations

import numpy as np

CropBox = tuple[tuple[int, int], ...]


def mask_bounds(mask: np.ndarray) -> CropBox | None:
    """Half-open bounds ((x0, x1), ...) of the true voxels of `mask`, or None when there are none."""
    bounds = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        if hits.size == 0:
            return None
        bounds.append((int(hits[0]), int(hits[-1]) + 1))
    return tuple(bounds)


def brain_box(image: np.ndarray) -> CropBox:
    """Bounds of the voxels nonzero in any channel of (C, X, Y, Z); the whole volume when all are zero."""
    nonzero = np.any(image != 0, axis=0)
    return mask_bounds(nonzero) or tuple((0, n) for n in nonzero.shape)


def crop(array: np.ndarray, box: CropBox) -> np.ndarray:
    """The part of `array` inside `box` (spatial axes are the last three)."""
    return array[(..., *(slice(lo, hi) for lo, hi in box))]


def uncrop(array: np.ndarray, box: CropBox, full_shape: tuple[int, ...], fill: float = 0) -> np.ndarray:
    """Inverse of `crop`: `array` placed at `box` inside a `full_shape` volume filled with `fill`."""
    full = np.full((*array.shape[:-3], *full_shape), fill, dtype=array.dtype)
    full[(..., *(slice(lo, hi) for lo, hi in box))] = array
    return full
