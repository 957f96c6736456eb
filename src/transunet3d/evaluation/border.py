"""Border voxels and the surface metrics built on them, as the BraTS 2025 evaluation (panoptica) defines them.

A border voxel is a mask voxel with a face neighbour outside the mask (the mask minus its erosion by the
6-connected element; outside the array is background). The distance of a border voxel is the Euclidean distance,
in mm, from its centre to the nearest border voxel centre of the other mask. The package takes those distances
from a distance transform of the whole (cropped) volume; we take the same distances from a k-d tree over the
border voxels only (`surface.NearestCorner`, which computes each distance from the integer index difference the
way SciPy's distance transform does, so that the floats are the same).
"""

from __future__ import annotations

import sys

import numpy as np

from transunet3d.evaluation.surface import NearestCorner

_ALL_AGAINST_ALL = 20_000  # pairs of points below which a full distance table beats building a k-d tree


def border_voxels(mask: np.ndarray) -> np.ndarray:
    """Fortran-order flat indices of the border voxels of a boolean mask: the mask minus its erosion by the
    6-connected element, outside the array being background. Only the mask's own voxels are looked at."""
    flat = mask.ravel(order="F")
    voxels = np.flatnonzero(flat)
    inner = np.ones(len(voxels), dtype=bool)
    stride = 1
    for size in mask.shape:
        position = voxels // stride % size
        inner &= (position > 0) & flat[np.maximum(voxels - stride, 0)]
        inner &= (position < size - 1) & flat[np.minimum(voxels + stride, flat.size - 1)]
        stride *= size
    return voxels[~inner]


def component_borders(labels: np.ndarray, mask: np.ndarray, count: int) -> list[np.ndarray]:
    """Border voxel indices (N, 3) of each labelled component (list index = label; index 0 is empty).

    A face neighbour of a component's voxel that lies in the mask lies in the same component, so the mask's
    border, split by label, is every component's own border.
    """
    voxels = border_voxels(mask)
    owners = labels.ravel(order="F")[voxels]
    order = np.argsort(owners, kind="stable")
    points = np.stack(np.unravel_index(voxels[order], mask.shape, order="F"), axis=1)
    return np.split(points, np.cumsum(np.bincount(owners, minlength=count + 1))[:-1])


def nearest_distances(points: np.ndarray, targets: np.ndarray, spacing: tuple[float, float, float],
                      bound: float | None = None) -> np.ndarray:
    """Distance (mm) of each of `points` (N, 3) to the nearest of `targets` (M, 3), both voxel indices.

    Small sets are compared all against all, larger ones through a k-d tree; either way each distance is computed
    from the integer index difference as SciPy's distance transform computes it. `bound`, when given, must be at
    least every answer (it speeds up the tree search).
    """
    if len(points) * len(targets) > _ALL_AGAINST_ALL or len(targets) == 0:
        return NearestCorner(targets, spacing).distances(points, bound)
    steps = (targets[None, :, :] - points[:, None, :]).astype(np.float64) * np.asarray(spacing, dtype=np.float64)
    return np.sqrt(np.add.reduce(steps * steps, axis=2)).min(axis=1, initial=np.inf)


def border_distances(
    reference: np.ndarray, prediction: np.ndarray, spacing: tuple[float, float, float],
) -> tuple[np.ndarray, np.ndarray]:
    """Distances (mm) of each reference border voxel to the prediction's border, and the other way round.

    Args:
        reference, prediction: border voxel indices (N, 3) and (M, 3), both non-empty.
        spacing: the voxel size (mm) per array axis.
    """
    return nearest_distances(reference, prediction, spacing), nearest_distances(prediction, reference, spacing)


def hd95(reference_to_prediction: np.ndarray, prediction_to_reference: np.ndarray) -> float:
    """The 95th percentile (linear interpolation) of both directions' distances pooled: the package's HD95."""
    return float(np.percentile(np.hstack((reference_to_prediction, prediction_to_reference)), 95))


def normalized_surface_dice(reference_to_prediction: np.ndarray, prediction_to_reference: np.ndarray,
                            tolerance: float) -> float:
    """The package's NSD (after GaNDLF): the share of border voxels within `tolerance` mm of the other border,
    each direction weighted by its own voxel count. The arithmetic is the package's, term for term."""
    count_a, count_b = len(reference_to_prediction), len(prediction_to_reference)
    tp_a = np.sum(reference_to_prediction <= tolerance) / count_a
    tp_b = np.sum(prediction_to_reference <= tolerance) / count_b
    fp = np.sum(reference_to_prediction > tolerance) / count_a
    fn = np.sum(prediction_to_reference > tolerance) / count_b
    return float((tp_a + tp_b) / (tp_a + tp_b + fp + fn + sys.float_info.min))
