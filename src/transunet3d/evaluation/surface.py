"""Surface distances and robust Hausdorff distance, as DeepMind's `surface-distance` library defines them.

Surface elements sit at voxel corners: every 2x2x2 neighbourhood gets an 8-bit code, codes other than 0 and 255
are surface, and each carries the marching-cubes surface area of its code (the library's own table, so that areas
match it bit for bit). The library takes distances from a Euclidean distance transform with the voxel spacing; we
take the same Euclidean distances between surface points from a k-d tree, which visits only the surface.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from surface_distance import lookup_tables

from transunet3d.evaluation.inputs import check_maps, checked_spacing

# Bit weights of the 2x2x2 neighbourhood, as in the library.
_NEIGHBOUR_KERNEL = np.array([[[128, 64], [32, 16]], [[8, 4], [2, 1]]], dtype=np.uint8)


@dataclass(frozen=True)
class Surface:
    """Surface elements of a mask: integer voxel-corner indices (N, 3) and areas (N,) in mm^2."""

    corners: np.ndarray
    areas: np.ndarray

    @staticmethod
    def join(parts: list[Surface]) -> Surface:
        """One surface made of several (of masks that share no 2x2x2 neighbourhood)."""
        if not parts:
            return Surface(np.zeros((0, 3), dtype=np.int64), np.zeros(0))
        return Surface(np.concatenate([p.corners for p in parts]), np.concatenate([p.areas for p in parts]))


@functools.lru_cache(maxsize=16)
def surface_area_table(spacing: tuple[float, float, float]) -> np.ndarray:
    """Area (mm^2) of the surface in each of the 256 neighbourhood codes for this voxel spacing."""
    return np.asarray(lookup_tables.create_table_neighbour_code_to_surface_area(spacing), dtype=np.float64)


def surface_of(mask: np.ndarray, spacing: tuple[float, float, float], offset=(0, 0, 0)) -> Surface:
    """Surface of a boolean mask; `offset` (the mask's position in a larger volume) is added to the corners."""
    padded = np.zeros(tuple(n + 1 for n in mask.shape), dtype=np.uint8)
    padded[:-1, :-1, :-1] = mask
    # One voxel of zero padding at the upper end gives the full 2x2x2 correlation; the lower end is padded by the
    # correlation's constant mode. Code (i, j, k) covers voxels i-1..i, j-1..j, k-1..k.
    codes = ndimage.correlate(padded, _NEIGHBOUR_KERNEL, mode="constant", cval=0)
    corners = np.argwhere((codes != 0) & (codes != 255))
    areas = surface_area_table(tuple(float(s) for s in spacing))[codes[tuple(corners.T)]]
    return Surface(corners + np.asarray(offset, dtype=np.int64), areas)


def component_surfaces(
    labels: np.ndarray, boxes: list[tuple[slice, ...] | None], spacing: tuple[float, float, float]
) -> dict[int, Surface]:
    """The surface of every labelled component, each computed on its own bounding box (`boxes[label]`).

    A 2x2x2 neighbourhood only holds 26-connected voxels, so the components' surfaces are exactly the pieces of
    the whole mask's surface, and the work scales with the lesions' size, not with the space between them.
    """
    return {
        label: surface_of(labels[box] == label, spacing, [s.start for s in box])
        for label, box in enumerate(boxes) if label and box is not None
    }


class NearestCorner:
    """Nearest-point search over a set of voxel corners (or voxel indices), with exact distances.

    Small problems are compared all against all; larger ones go through a k-d tree, built on the first of them.
    Either way the distance is computed from the integer index difference the way SciPy's distance transform
    computes it, sqrt(sum((di * si)^2)), so that it is the same float to the last bit and does not depend on where
    a crop starts.
    """

    def __init__(self, corners: np.ndarray, spacing: tuple[float, float, float]):
        self.corners = corners
        self.scale = np.asarray(spacing, dtype=np.float64)
        self._tree: cKDTree | None = None

    def distances(self, corners: np.ndarray, bound: float | None = None) -> np.ndarray:
        """Distance (mm) of each corner to the nearest one in the set; inf when the set is empty.

        `bound`, when given, must be at least every answer: a search limited to it is much faster.
        """
        if len(corners) == 0:
            return np.zeros(0)
        if len(self.corners) == 0:
            return np.full(len(corners), np.inf)
        if len(corners) * len(self.corners) <= _ALL_AGAINST_ALL:
            steps = (self.corners[None, :, :] - corners[:, None, :]).astype(np.float64) * self.scale
            return np.sqrt(np.add.reduce(steps * steps, axis=2)).min(axis=1)
        points = corners * self.scale
        limit = np.inf if bound is None else bound + 1e-6  # margin for the tree's own rounding
        nearest = self._search_tree().query(points, distance_upper_bound=limit)[1]
        missing = nearest == len(self.corners)
        if missing.any():
            nearest[missing] = self._search_tree().query(points[missing])[1]
        steps = (self.corners[nearest] - corners).astype(np.float64) * self.scale
        return np.sqrt(np.add.reduce(steps * steps, axis=1))

    def _search_tree(self) -> cKDTree:
        if self._tree is None:
            # An unbalanced tree with larger leaves builds and queries faster on voxel-grid points than the default.
            self._tree = cKDTree(self.corners * self.scale, leafsize=32, balanced_tree=False, compact_nodes=False)
        return self._tree


_ALL_AGAINST_ALL = 20_000  # pairs of points below which a full distance table beats building a k-d tree


_SAMPLE_CELL = 3  # one point per cube of this many voxels a side is searched exactly to bound the others


class CellSamples:
    """One sample point per cube of _SAMPLE_CELL voxels a side of a point set, and every point's step (mm) from
    its cube's sample: what bounds the points' distances to any target from the samples' distances alone.

    A distance to a set changes by at most the step taken, so every point's distance lies within its step of its
    cube's sample. Prepared once, it serves every target the points are measured against.
    """

    def __init__(self, points: np.ndarray, spacing: tuple[float, float, float] | np.ndarray):
        self.points = points
        cells = points // _SAMPLE_CELL
        keys = np.ravel_multi_index(tuple((cells - cells.min(axis=0)).T), tuple(np.ptp(cells, axis=0) + 1))
        _, self.samples, self.cell = np.unique(keys, return_index=True, return_inverse=True)
        offsets = (points - points[self.samples][self.cell]).astype(np.float64) * np.asarray(spacing, np.float64)
        self.steps = np.sqrt(np.add.reduce(offsets * offsets, axis=1))

    def bounds(self, search: NearestCorner) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds (mm) on the points' distances to `search`'s set, exact (low == high) at the
        samples; the margin covers the bounds' own rounding."""
        sampled = search.distances(self.points[self.samples])
        margin = 1e-6 * (1.0 + float(sampled.max()))
        low = np.maximum(0.0, sampled[self.cell] - self.steps - margin)
        high = sampled[self.cell] + self.steps + margin
        low[self.samples], high[self.samples] = sampled, sampled
        return low, high


class DirectedPercentiles:
    """Surface-area-weighted percentiles of the distances from one surface to any number of targets, each to the
    bit what `weighted_percentile(target.distances(surface.corners), surface.areas)` gives, searching and sorting
    far fewer points when the surface is large: a large false-positive region against every lesion it touches.

    The percentile of the distances lies between the percentiles of their lower and upper bounds (`CellSamples`).
    Points whose bounds lie wholly below or above that range keep their side of the answer without being searched
    or sorted; only the rest are. The answer is taken only if it is provably the library's: the points left out
    lie strictly on their side of it, and the cumulative area crosses the percentile with a margin larger than any
    order of summation could move it (the library sums the areas in the order of the exact distances). Otherwise
    every point is searched.
    """

    def __init__(self, surface: Surface, spacing: tuple[float, float, float]):
        self.surface = surface
        self.spacing = spacing
        self._cells: CellSamples | None = None

    def of(self, target: NearestCorner, percent: float = 95.0) -> float:
        """The weighted `percent` percentile of the distances (mm) to `target`; inf if either set is empty."""
        points, areas = self.surface.corners, self.surface.areas
        if len(points) <= _SAMPLED_MIN_POINTS or not len(target.corners):
            return weighted_percentile(target.distances(points), areas, percent)
        if self._cells is None:
            self._cells = CellSamples(points, self.spacing)
        low, high = self._cells.bounds(target)
        lowest, highest = _percentile_bracket(low, high, areas, percent / 100.0)
        below, above = high < lowest, low > highest
        between = np.flatnonzero(~below & ~above)
        values = low[between]
        search = values < high[between]
        if search.any():
            values[search] = target.distances(points[between[search]], bound=float(high[between[search]].max()))
        decided = _decided_percentile(
            values, areas[between], percent / 100.0, float(np.sum(areas[below])), float(np.sum(areas)),
            len(points), (float(high[below].max(initial=-np.inf)), float(low[above].min(initial=np.inf))))
        return decided if decided is not None else weighted_percentile(target.distances(points), areas, percent)


_SAMPLED_MIN_POINTS = 20_000  # surface corners below which `DirectedPercentiles` searches them all
_BRACKET_BINS = 4096  # histogram bins that bracket the percentile of the distances' bounds


def _percentile_bracket(low: np.ndarray, high: np.ndarray, weights: np.ndarray,
                        quantile: float) -> tuple[float, float]:
    """A value at most the weighted quantile of `low` and one at least that of `high`, so that between them lies
    the weighted quantile of any values within those bounds: histogram bin edges, one bin wider on each side than
    the bins the quantiles fall in, against the bins' rounding."""
    start, stop = float(low.min()), float(high.max())
    width = max(stop - start, 1e-9) / _BRACKET_BINS

    def crossing_bin(values: np.ndarray) -> int:
        bins = np.clip(((values - start) / width).astype(np.int64), 0, _BRACKET_BINS - 1)
        cumulative = np.cumsum(np.bincount(bins, weights, minlength=_BRACKET_BINS))
        return int(np.searchsorted(cumulative, quantile * cumulative[-1]))

    return start + (crossing_bin(low) - 1) * width, start + (crossing_bin(high) + 2) * width


def _decided_percentile(values: np.ndarray, areas: np.ndarray, quantile: float, below_area: float,
                        total_area: float, count: int, outside: tuple[float, float]) -> float | None:
    """The weighted percentile of all distances, from the exact ones in between, if no order of summation of the
    areas could make it another; else None.

    Args:
        values, areas: the exact distances in between and their areas.
        quantile: the percentile / 100.
        below_area: the area of the points left out below; they precede every value in between.
        total_area: the area of all `count` points.
        count: the number of points.
        outside: the largest distance any point left out below may have, the smallest any point above may have.
    """
    order = np.lexsort((areas, values))
    cumulative = (below_area + np.cumsum(areas[order])) / total_area
    index = int(np.searchsorted(cumulative, quantile))
    if index >= len(values):
        return None
    answer = float(values[order[index]])
    before = cumulative[index - 1] if index else below_area / total_area
    rounding = 4.0 * (count + 1) * np.finfo(np.float64).eps  # any two orders of summation differ by less
    if before < quantile - rounding and cumulative[index] >= quantile + rounding and outside[0] < answer < outside[1]:
        return answer
    return None


def hausdorff95(gt: Surface, pred: Surface, spacing: tuple[float, float, float], percent: float = 95.0) -> float:
    """Max of the two directed, surface-area-weighted percentile distances; inf if one surface is empty."""
    return max(DirectedPercentiles(gt, spacing).of(NearestCorner(pred.corners, spacing), percent),
               DirectedPercentiles(pred, spacing).of(NearestCorner(gt.corners, spacing), percent))


def robust_hausdorff(gt: np.ndarray, pred: np.ndarray, spacing: tuple[float, float, float],
                     percent: float = 95.0) -> float:
    """HD95 of two boolean masks, as the library's compute_robust_hausdorff(compute_surface_distances(...)).

    Raises:
        ValueError: masks that are not boolean 3D arrays of one shape, a voxel size that is not 3 sizes in mm, or a
            percentile outside [0, 100].
    """
    check_maps(pred, gt)
    spacing = checked_spacing(spacing)
    if not 0 <= percent <= 100:  # NaN fails too
        raise ValueError(f"percent must be in [0, 100], not {percent!r}")
    return hausdorff95(surface_of(gt, spacing), surface_of(pred, spacing), spacing, percent)


def nearest_box_distance(corners: np.ndarray, boxes: np.ndarray, spacing: tuple[float, float, float]) -> float:
    """Lower bound (mm) of the distance from any of `corners` to anything inside the (N, 2, 3) corner `boxes`."""
    if len(boxes) == 0 or len(corners) == 0:
        return np.inf
    low, high = corners.min(axis=0), corners.max(axis=0)
    gaps = np.maximum(0, np.maximum(boxes[:, 0] - high, low - boxes[:, 1])) * np.asarray(spacing)
    return float(np.sqrt((gaps * gaps).sum(axis=1)).min())


def corner_box(surface: Surface) -> np.ndarray:
    """(2, 3) inclusive corner-index bounds of a non-empty surface."""
    return np.stack([surface.corners.min(axis=0), surface.corners.max(axis=0)])


def weighted_percentile(values: np.ndarray, weights: np.ndarray, percent: float = 95.0) -> float:
    """The library's surface-area-weighted percentile of directed distances; inf when there are none."""
    if values.size == 0:
        return float("inf")
    order = np.lexsort((weights, values))  # by distance, ties by area: the library's sort order
    values, weights = values[order], weights[order]
    cumulative = np.cumsum(weights) / np.sum(weights)
    index = int(np.searchsorted(cumulative, percent / 100.0))
    return float(values[min(index, values.size - 1)])
