"""Surface distances and robust Hausdorff distance, as DeepMind's `surface-distance` library defines them.

Surface elements sit at voxel corners: every 2x2x2 neighbourhood gets an 8-bit code, codes other than 0 and 255
are surface, and each carries the marching-cubes surface area of its code (the library's own table, so that areas
match it bit for bit). The library takes distances from a Euclidean distance transform with the voxel spacing; we
take the same Euclidean distances between surface points from a k-d tree, which only visits the surface instead of
the whole bounding box.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from surface_distance import lookup_tables

from transunet3d.data.crop import mask_bounds

# Bit weights of the 2x2x2 neighbourhood, as in the library.
_NEIGHBOUR_KERNEL = np.array([[[128, 64], [32, 16]], [[8, 4], [2, 1]]], dtype=np.uint8)


@dataclass(frozen=True)
class SurfaceDistances:
    """Directed distances (mm) from each surface element of one mask to the other's surface, with their areas."""

    gt_to_pred: np.ndarray
    gt_areas: np.ndarray
    pred_to_gt: np.ndarray
    pred_areas: np.ndarray


@functools.lru_cache(maxsize=16)
def surface_area_table(spacing: tuple[float, float, float]) -> np.ndarray:
    """Area (mm^2) of the surface in each of the 256 neighbourhood codes for this voxel spacing."""
    return np.asarray(lookup_tables.create_table_neighbour_code_to_surface_area(spacing), dtype=np.float64)


def surface_distances(gt: np.ndarray, pred: np.ndarray, spacing: tuple[float, float, float]) -> SurfaceDistances:
    """Surface-to-surface distances between two boolean masks of the same shape."""
    union = gt | pred
    if not union.any():
        empty = np.zeros(0)
        return SurfaceDistances(empty, empty, empty, empty)
    box = tuple(slice(lo, hi) for lo, hi in mask_bounds(union))
    # One voxel of zero padding at the upper end gives the full 2x2x2 correlation; the lower end is padded by the
    # correlation's constant mode.
    codes_gt, codes_pred = (_neighbour_codes(mask[box]) for mask in (gt, pred))
    border_gt = (codes_gt != 0) & (codes_gt != 255)
    border_pred = (codes_pred != 0) & (codes_pred != 255)
    table = surface_area_table(tuple(float(s) for s in spacing))
    points_gt, points_pred = _points(border_gt, spacing), _points(border_pred, spacing)
    return SurfaceDistances(
        gt_to_pred=_nearest(points_gt, points_pred),
        gt_areas=table[codes_gt[border_gt]],
        pred_to_gt=_nearest(points_pred, points_gt),
        pred_areas=table[codes_pred[border_pred]],
    )


def _neighbour_codes(mask: np.ndarray) -> np.ndarray:
    padded = np.zeros(tuple(n + 1 for n in mask.shape), dtype=np.uint8)
    padded[:-1, :-1, :-1] = mask
    return ndimage.correlate(padded, _NEIGHBOUR_KERNEL, mode="constant", cval=0)


def _points(border: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Millimetre positions of the surface elements, in the same (C) order as boolean indexing gives."""
    return np.argwhere(border) * np.asarray(spacing, dtype=np.float64)


def _nearest(points: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Distance from each point to the nearest target; inf when there is no target (an empty mask)."""
    if len(targets) == 0:
        return np.full(len(points), np.inf)
    return cKDTree(targets).query(points)[0] if len(points) else np.zeros(0)


def robust_hausdorff(distances: SurfaceDistances, percent: float = 95.0) -> float:
    """Max of the two directed, surface-area-weighted `percent`-th percentile distances; inf if a mask is empty."""
    return max(
        _weighted_percentile(distances.gt_to_pred, distances.gt_areas, percent),
        _weighted_percentile(distances.pred_to_gt, distances.pred_areas, percent),
    )


def _weighted_percentile(values: np.ndarray, weights: np.ndarray, percent: float) -> float:
    if values.size == 0:
        return float("inf")
    order = np.lexsort((weights, values))  # by distance, ties by area: the library's sort order
    values, weights = values[order], weights[order]
    cumulative = np.cumsum(weights) / np.sum(weights)
    index = int(np.searchsorted(cumulative, percent / 100.0))
    return float(values[min(index, values.size - 1)])
