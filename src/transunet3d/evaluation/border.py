"""Border voxels and the surface metrics built on them, as the BraTS 2025 evaluation (panoptica) defines them.

A border voxel is a mask voxel with a face neighbour outside the mask (the mask minus its erosion by the
6-connected element; outside the array is background). The distance of a border voxel is the Euclidean distance,
in mm, from its centre to the nearest border voxel centre of the other mask. The package takes those distances
from a distance transform of the whole (cropped) volume. We look at the grid around each border voxel first,
nearest voxels first, which settles most distances; the rest come from a k-d tree over the border voxels
(`surface.NearestCorner`), and only where an HD95 needs them (NSD never does: they are beyond its tolerance).
Every distance is computed from the integer index difference the way SciPy's distance transform computes it, so
that the floats are the same.
"""

from __future__ import annotations

import functools
import itertools
import math
import sys
from dataclasses import dataclass

import numpy as np

from transunet3d.evaluation.surface import CellSamples, NearestCorner


def border_voxels(mask: np.ndarray, pad: int = 1) -> np.ndarray:
    """The border voxels of a boolean mask (the mask minus its erosion by the 6-connected element, outside the
    array being background), as Fortran-order flat indices into the mask padded by `pad` >= 1 zero voxels on every
    side. Only the mask's own voxels are looked at, and in the padded grid each has all six neighbours."""
    padded = np.zeros(tuple(n + 2 * pad for n in mask.shape), dtype=bool, order="F")
    padded[pad:-pad, pad:-pad, pad:-pad] = mask
    flat = padded.ravel(order="F")
    voxels = np.flatnonzero(flat)
    inner = np.ones(len(voxels), dtype=bool)
    stride = 1
    for size in padded.shape:
        inner &= flat[voxels - stride] & flat[voxels + stride]
        stride *= size
    return voxels[~inner]


@dataclass
class ComponentBorders:
    """The border voxels of every component of a labelled mask, and a grid of who owns each border voxel.

    Voxels are given as indices (N, 3) into the mask and as flat indices into its grid padded by _NEAR voxels
    (Fortran order), which is the same for the reference and the prediction of one region.
    """

    points: list[np.ndarray]  # per component (list index = label; index 0 is empty), its border voxels (N, 3)
    flat: list[np.ndarray]  # the same voxels, flat in the padded grid
    owner: np.ndarray  # the padded grid: a border voxel's component, 0 elsewhere

    @classmethod
    def of(cls, labels: np.ndarray, mask: np.ndarray, count: int) -> ComponentBorders:
        """The borders of the components `labels` (1..count) of `mask`.

        A face neighbour of a component's voxel that lies in the mask lies in the same component, so the mask's
        border, split by label, is every component's own border.
        """
        shape = tuple(n + 2 * _NEAR for n in mask.shape)
        voxels = border_voxels(mask, _NEAR)
        indices = np.stack(np.unravel_index(voxels, shape, order="F"), axis=1) - _NEAR
        owners = labels[tuple(indices.T)]
        order = np.argsort(owners, kind="stable")
        splits = np.cumsum(np.bincount(owners, minlength=count + 1))[:-1]
        owner = np.zeros(shape, dtype=np.min_scalar_type(count), order="F")
        owner.ravel(order="F")[voxels] = owners  # a view: the grid is Fortran-contiguous
        return cls(np.split(indices[order], splits), np.split(voxels[order], splits), owner)

    def nearby(self, flat: list[np.ndarray], labels: list[int | None],
               spacing: tuple[float, float, float]) -> list[np.ndarray]:
        """Distances (mm) of groups of voxels to the nearest border voxel of a component each, as far as the grid
        around each voxel decides them: inf where nothing lies within _NEAR voxels (then the distance is at least
        `FAR` smallest voxel sizes; `search` finds it).

        Args:
            flat: per group, its voxels as flat indices into the padded grid.
            labels: per group, the component whose border is measured, or None for every component's.
            spacing: the voxel size (mm) per axis.
        """
        if not flat:
            return []
        sizes = [len(f) for f in flat]
        targets = np.repeat([0 if label is None else label for label in labels], sizes)
        result, far = self._near(np.concatenate(flat), targets, spacing)
        result[far] = np.inf
        return np.split(result, np.cumsum(sizes)[:-1])

    def _near(self, flat: np.ndarray, targets: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
        """The distances to the `targets` components (0: any) found within the neighbourhood, and the indices
        (increasing) of the voxels without any there."""
        offsets, lengths, groups = _neighbourhood(tuple(spacing), self.owner.shape)
        owner = self.owner.ravel(order="F")
        result = np.zeros(len(flat))
        todo = np.arange(len(flat))
        any_component = not targets.any()
        for group in groups:  # nearest offsets first, in a few vectorised steps
            found = owner[flat[todo, None] + offsets[None, group]]
            if any_component:
                hit = found != 0
            else:
                wanted = targets[todo, None]
                hit = (found != 0) & ((found == wanted) | (wanted == 0))
            first = hit.argmax(axis=1)
            resolved = hit[np.arange(len(todo)), first]
            result[todo[resolved]] = lengths[group][first[resolved]]
            todo = todo[~resolved]
            if not len(todo):
                break
        return result, todo


_NEAR = 2  # voxels per axis around a point that are looked at on the grid before a k-d tree search
FAR = _NEAR + 1  # what the grid leaves open lies at least this many smallest voxel sizes away


@functools.lru_cache(maxsize=64)
def _neighbourhood(spacing: tuple[float, float, float], shape: tuple[int, int, int]):
    """The offsets around a voxel within which a nearest border voxel is certain, nearest first: flat offsets in
    an F-order grid of `shape`, their lengths (mm, computed as the distances are), and the steps they are looked
    at in. An offset is kept only if it is shorter than any offset outside the cube of side 2 * _NEAR + 1."""
    axis = np.arange(-_NEAR, _NEAR + 1)
    cube = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    steps = cube.astype(np.float64) * np.asarray(spacing, dtype=np.float64)
    lengths = np.sqrt(np.add.reduce(steps * steps, axis=1))
    keep = lengths < FAR * min(spacing)
    order = np.argsort(lengths[keep], kind="stable")
    offsets = cube[keep][order] @ np.array([1, shape[0], shape[0] * shape[1]])
    edges = [0, 1, 7, 27, len(offsets)]  # the voxel itself, then about its faces, edges and corners, then the rest
    groups = [slice(min(a, len(offsets)), min(b, len(offsets))) for a, b in itertools.pairwise(edges)]
    return offsets, lengths[keep][order], [g for g in groups if g.start < g.stop]


def hd95(reference_to_prediction: np.ndarray, prediction_to_reference: np.ndarray) -> float:
    """The 95th percentile (linear interpolation) of both directions' distances pooled: the package's HD95.

    Distances not yet searched for (inf) may be among them as long as `hd95_needs_all` is False: the percentile
    only reads the two values around its rank, and those are then finite.
    """
    return percentile95(np.concatenate((reference_to_prediction, prediction_to_reference)))


def percentile95(values: np.ndarray) -> float:
    """`np.percentile(values, 95)` (linear interpolation) of a 1-D float64 array, to the bit: the two values it
    interpolates between come from one partition, without numpy's general machinery, which costs more than the
    partition itself for the few hundred distances of one lesion."""
    count = len(values)
    if count == 0:
        return float(np.percentile(values, 95))  # numpy's own answer (and warning) for no values
    position = (count - 1) * 0.95
    below = -1 if position >= count - 1 else math.floor(position)  # numpy's indices; -1 is the largest value
    above = -1 if below == -1 else below + 1
    partitioned = np.partition(values, (below % count, above % count))
    low, high = float(partitioned[below]), float(partitioned[above])
    gamma = position - below
    difference = high - low
    return high - difference * (1 - gamma) if gamma >= 0.5 else low + difference * gamma


def hd95_needs_all(*distances: np.ndarray) -> bool:
    """Whether the 95th percentile of the pooled `distances` reaches into their inf (not yet searched) entries,
    which sort last: the two values it interpolates between are at ranks floor(0.95 (n - 1)) and the next one."""
    count = sum(len(d) for d in distances)
    unknown = sum(int(np.isinf(d).sum()) for d in distances)
    return unknown > 0 and _hd95_ranks(count)[1] >= count - unknown


def _hd95_ranks(count: int) -> tuple[int, int]:
    """The ranks (0-based, inclusive, with a margin for the float product) that numpy's 95th percentile of `count`
    values can read: floor(0.95 (count - 1)) and the next one."""
    position = 0.95 * (count - 1)
    return max(0, math.floor(position - 1e-9)), min(count - 1, math.floor(position + 1e-9) + 1)


@dataclass
class OpenBorder:
    """Groups of border voxels with their distances as far as `ComponentBorders.nearby` found them (inf where the
    grid left them open), and the search that finds the others: one direction of an HD95."""

    points: list[np.ndarray]  # per group, its voxels (N, 3)
    nearby: list[np.ndarray]  # per group, their distances from `nearby`
    target: np.ndarray  # the border voxels (M, 3) they are measured against
    spacing: tuple[float, float, float]  # the voxel size of the distances


def settle_for_hd95(*sides: OpenBorder) -> list[list[np.ndarray]]:
    """Each side's `nearby` distances with just enough of their open entries worked out for the 95th percentile
    of all of them pooled (`hd95`) to be exact, and the NSD unchanged.

    A few open voxels are all searched. Of many, only the two values at the percentile's ranks matter: one open
    voxel per small cube of the grid is searched exactly, and as the distance to a set changes by at most the step
    taken, every other voxel's distance lies within its step to its cube's sample of that value. Voxels whose
    upper bound lies under the lowest value the first rank can hold are certainly below it and get their lower
    bound (which keeps them in place and beyond any NSD tolerance); voxels whose lower bound lies over the highest
    value the second rank can hold stay inf; only the voxels in between are searched, their largest upper bound
    limiting the search. The percentile then reads two exact distances, as if every voxel had been searched.
    """
    opened = [_Opened.of(side) for side in sides]
    open_count = sum(len(side.points) for side in opened)
    if open_count <= _SEARCH_ALL:
        return [side.filled(side.search.distances(side.points)) for side in opened]
    bounds = [side.bounds() for side in opened]
    low, high = np.concatenate([b[0] for b in bounds]), np.concatenate([b[1] for b in bounds])
    known = sum(len(d) for side in sides for d in side.nearby) - open_count
    first, last = (max(0, rank - known) for rank in _hd95_ranks(known + open_count))
    lowest, highest = np.partition(low, first)[first], np.partition(high, last)[last]
    return [side.filled(side.needed(*side_bounds, lowest, highest)) for side, side_bounds in zip(opened, bounds)]


_SEARCH_ALL = 2_000  # open voxels below which they are all searched, without bounds


@dataclass
class _Opened:
    """One side's open voxels: where they are among its groups, where they are in the grid, the search."""

    side: OpenBorder
    open: list[np.ndarray]  # per group, the indices of its open voxels
    points: np.ndarray  # (N, 3) the open voxels, group after group
    search: NearestCorner

    @classmethod
    def of(cls, side: OpenBorder) -> _Opened:
        open_ = [np.flatnonzero(np.isinf(d)) for d in side.nearby]
        points = [group[indices] for group, indices in zip(side.points, open_)]
        return cls(side, open_, np.concatenate(points) if points else np.zeros((0, 3), dtype=np.int64),
                   NearestCorner(side.target, side.spacing))

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds (mm) on the open voxels' distances, exact at one sample voxel per cube; an open
        voxel lies at least FAR smallest voxel sizes from its target."""
        if not len(self.points):
            return np.zeros(0), np.zeros(0)
        low, high = CellSamples(self.points, self.search.scale).bounds(self.search)
        inexact = low < high
        low[inexact] = np.maximum(FAR * float(self.search.scale.min()), low[inexact])
        return low, high

    def needed(self, low: np.ndarray, high: np.ndarray, lowest: float, highest: float) -> np.ndarray:
        """The open voxels' values for the percentile: exact between `lowest` and `highest` (and where known),
        the lower bound where certainly below, inf where certainly above."""
        values = np.where(high < lowest, low, np.inf)
        exact = low == high
        values[exact] = low[exact]
        between = ~exact & (high >= lowest) & (low <= highest)
        if between.any():
            values[between] = self.search.distances(self.points[between], float(high[between].max()))
        return values

    def filled(self, values: np.ndarray) -> list[np.ndarray]:
        """The side's `nearby` distances with `values` in place of their open entries."""
        settled, offset = [], 0
        for distances, indices in zip(self.side.nearby, self.open):
            if len(indices):
                distances = distances.copy()
                distances[indices] = values[offset:offset + len(indices)]
                offset += len(indices)
            settled.append(distances)
        return settled


def normalized_surface_dice(reference_to_prediction: np.ndarray, prediction_to_reference: np.ndarray,
                            tolerance: float) -> float:
    """The package's NSD (after GaNDLF): the share of border voxels within `tolerance` mm of the other border,
    each direction weighted by its own voxel count. The arithmetic is the package's, term for term. Distances not
    searched for (inf) lie at least `FAR` smallest voxel sizes away, beyond any tolerance used here."""
    count_a, count_b = len(reference_to_prediction), len(prediction_to_reference)
    tp_a = np.sum(reference_to_prediction <= tolerance) / count_a
    tp_b = np.sum(prediction_to_reference <= tolerance) / count_b
    fp = np.sum(reference_to_prediction > tolerance) / count_a
    fn = np.sum(prediction_to_reference > tolerance) / count_b
    return float((tp_a + tp_b) / (tp_a + tp_b + fp + fn + sys.float_info.min))
