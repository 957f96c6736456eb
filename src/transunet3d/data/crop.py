"""Crop a case to its brain (the union of nonzero voxels) and paste arrays back into the full volume."""

from __future__ import annotations

import numpy as np

CropBox = tuple[tuple[int, int], ...]


def mask_bounds(mask: np.ndarray) -> CropBox | None:
    """Half-open bounds ((x0, x1), (y0, y1), (z0, z1)) of the nonzero voxels of a 3D array, or None if none.

    One pass over the volume (a projection along z), then only the x-y box is scanned for the z extent.
    """
    projection = mask.any(axis=2)
    rows, columns = np.flatnonzero(projection.any(axis=1)), np.flatnonzero(projection.any(axis=0))
    if rows.size == 0:
        return None
    x0, x1, y0, y1 = int(rows[0]), int(rows[-1]) + 1, int(columns[0]), int(columns[-1]) + 1
    slices = np.flatnonzero(mask[x0:x1, y0:y1].any(axis=(0, 1)))
    return (x0, x1), (y0, y1), (int(slices[0]), int(slices[-1]) + 1)


def union_bounds(*boxes: CropBox | None) -> CropBox | None:
    """The smallest box holding every given box (None entries are empty)."""
    present = [box for box in boxes if box is not None]
    if not present:
        return None
    return tuple((min(b[a][0] for b in present), max(b[a][1] for b in present)) for a in range(3))


def brain_box(image: np.ndarray) -> CropBox:
    """Bounds of the voxels nonzero in any channel of (C, X, Y, Z); the whole volume when all are zero."""
    return union_bounds(*(mask_bounds(channel) for channel in image)) or tuple((0, n) for n in image.shape[1:])


def crop(array: np.ndarray, box: CropBox) -> np.ndarray:
    """The part of `array` inside `box` (spatial axes are the last three)."""
    return array[(..., *(slice(lo, hi) for lo, hi in box))]


def uncrop(array: np.ndarray, box: CropBox, full_shape: tuple[int, ...], fill: float = 0) -> np.ndarray:
    """Inverse of `crop`: `array` placed at `box` inside a `full_shape` volume filled with `fill`."""
    full = np.full((*array.shape[:-3], *full_shape), fill, dtype=array.dtype)
    full[(..., *(slice(lo, hi) for lo, hi in box))] = array
    return full
