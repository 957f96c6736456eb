"""Crop a case to its brain (the union of nonzero voxels) and paste arrays back into the full volume."""

from __future__ import annotations

import numpy as np

CropBox = tuple[tuple[int, int], ...]


def brain_box(image: np.ndarray) -> CropBox:
    """Half-open bounds ((x0, x1), (y0, y1), (z0, z1)) of the voxels nonzero in any channel of (C, X, Y, Z)."""
    nonzero = np.any(image != 0, axis=0)
    if not nonzero.any():
        return tuple((0, n) for n in nonzero.shape)
    bounds = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(nonzero.any(axis=other))
        bounds.append((int(hits[0]), int(hits[-1]) + 1))
    return tuple(bounds)


def crop(array: np.ndarray, box: CropBox) -> np.ndarray:
    """The part of `array` inside `box` (spatial axes are the last three)."""
    return array[(..., *(slice(lo, hi) for lo, hi in box))]


def uncrop(array: np.ndarray, box: CropBox, full_shape: tuple[int, ...], fill: float = 0) -> np.ndarray:
    """Inverse of `crop`: `array` placed at `box` inside a `full_shape` volume filled with `fill`."""
    full = np.full((*array.shape[:-3], *full_shape), fill, dtype=array.dtype)
    full[(..., *(slice(lo, hi) for lo, hi in box))] = array
    return full
