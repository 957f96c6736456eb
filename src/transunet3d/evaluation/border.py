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
from dataclasses import dataclass, field

import numpy as np

from transunet3d.evaluation.surface import NearestCorner

_ALL_AGAINST_ALL = 20_000  # pairs of points below which a full distance table beats building a k-d tree


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
    _whole: dict = field(default_factory=dict)  # spacing -> search over every component's border, made once

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

    def search(self, points: np.ndarray, distances: np.ndarray, label: int | None,
               spacing: tuple[float, float, float], bound: float | None = None) -> np.ndarray:
        """`distances` (from `nearby`) with its inf entries replaced by the distance (mm) of those `points` (N, 3)
        to the border of component `label` (None: of every component). `bound`, when given, must be at least every
        answer (it speeds up the search)."""
        far = np.isinf(distances)
        if not far.any():
            return distances
        distances = distances.copy()
        if label is not None:
            distances[far] = nearest_distances(points[far], self.points[label], spacing, bound)
        else:
            if spacing not in self._whole:
                self._whole[spacing] = NearestCorner(np.concatenate(self.points), spacing)
            distances[far] = self._whole[spacing].distances(points[far], bound)
        return distances

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


def nearest_distances(points: np.ndarray, targets: np.ndarray, spacing: tuple[float, float, float],
                      bound: float | None = None) -> np.ndarray:
    """Distance (mm) of each of `points` (N, 3) to the nearest of `targets` (M, 3), both voxel indices.

    Small sets are compared all against all, larger ones through a k-d tree; either way each distance is computed
    from the integer index difference as SciPy's distance transform computes it. `bound`, when given, must be at
    least every answer (it speeds up the tree search).
    """
    if len(points) * len(targets) > _ALL_AGAINST_ALL or len(targets) == 0 or len(points) == 0:
        return NearestCorner(targets, spacing).distances(points, bound)
    steps = (targets[None, :, :] - points[:, None, :]).astype(np.float64) * np.asarray(spacing, dtype=np.float64)
    return np.sqrt(np.add.reduce(steps * steps, axis=2)).min(axis=1, initial=np.inf)


def hd95(reference_to_prediction: np.ndarray, prediction_to_reference: np.ndarray) -> float:
    """The 95th percentile (linear interpolation) of both directions' distances pooled: the package's HD95.

    Distances not yet searched for (inf) may be among them as long as `hd95_needs_all` is False: the percentile
    only reads the two values around its rank, and those are then finite.
    """
    return float(np.percentile(np.hstack((reference_to_prediction, prediction_to_reference)), 95))


def hd95_needs_all(*distances: np.ndarray) -> bool:
    """Whether the 95th percentile of the pooled `distances` reaches into their inf (not yet searched) entries,
    which sort last: the two values it interpolates between are at ranks floor(0.95 (n - 1)) and the next one."""
    count = sum(len(d) for d in distances)
    unknown = sum(int(np.isinf(d).sum()) for d in distances)
    return unknown > 0 and math.floor(0.95 * (count - 1) + 1e-9) + 1 >= count - unknown


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
