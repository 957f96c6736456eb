"""Whether two files hold voxels at the same places: the one rule by which a case's files, and a prediction and
its reference, must agree before their voxels are compared one to one.

Two files share a grid when their shapes and affines agree (every affine entry within `AFFINE_TOLERANCE`). A file
that stores the same grid in another axis order (the same voxels, its axes permuted or flipped, its affine
changed with them) is brought onto the other's order exactly, without interpolation. Anything else (another
origin, voxel size, rotation or shape) is refused: comparing such voxels one to one would give a wrong number.
A file without orientation (qform and sform codes 0) has only nibabel's stand-in affine, which says nothing about
where its voxels lie: it shares a grid with another file only when their shapes and affines agree as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel import orientations

from transunet3d.data.orientation import reorient_last_three
from transunet3d.errors import InputError

AFFINE_TOLERANCE = 1e-4  # largest difference between two affines' entries that still counts as one grid


def onto_grid(case_id: str | None, path: Path, image: nib.Nifti1Image, ref_path: Path,
              ref: nib.Nifti1Image) -> Callable[[np.ndarray], np.ndarray]:
    """How to bring arrays (..., X, Y, Z) read from `image` onto the grid of `ref`: the identity when both share
    shape and affine, an exact reordering of the axes when `image` stores the same grid in another axis order.

    Raises:
        InputError: naming `path`, when the two grids differ in anything else.
    """
    shape, ref_shape = tuple(image.shape[:3]), tuple(ref.shape[:3])
    if _stored_alike(image, ref):
        return _same
    if not has_orientation(image) and shape == ref_shape:
        raise InputError(case_id, path, f"has no orientation (qform and sform codes 0), so whether its voxels are "
                                        f"those of {ref_path.name} (the same shape) cannot be told: write it with "
                                        f"{ref_path.name}'s header")
    if not has_orientation(image):
        raise InputError(case_id, path, f"has no orientation (qform and sform codes 0) and another grid than "
                                        f"{ref_path.name}: where its voxels lie against it cannot be told")
    if not has_orientation(ref):
        raise InputError(case_id, path, f"{ref_path.name} has no orientation (qform and sform codes 0) and another "
                                        "grid than this file: where its voxels lie against it cannot be told")
    transform = _axis_transform(image, ref)
    if transform is None:
        raise InputError(case_id, path, f"affine differs from {ref_path.name} by more than {AFFINE_TOLERANCE}")
    if tuple(int(n) for n in _in_ref_order(shape, transform)) != ref_shape:
        raise InputError(case_id, path, f"shape {shape} differs from {ref_path.name} {ref_shape}")
    if not _close(image.affine @ orientations.inv_ornt_aff(transform, shape), ref.affine):
        raise InputError(case_id, path, f"affine differs from {ref_path.name} by more than {AFFINE_TOLERANCE}")
    return lambda array: reorient_last_three(array, transform)


def sizes_on_grid(sizes: Sequence[float], image: nib.Nifti1Image, ref: nib.Nifti1Image) -> tuple[float, float, float]:
    """Voxel sizes given per axis of `image`, put in the order of `ref`'s axes: for an image that `onto_grid` brings
    onto `ref`'s grid, whose axes it may store in another order (the same axis mapping as `onto_grid`'s)."""
    transform = None if _stored_alike(image, ref) else _axis_transform(image, ref)
    return tuple(float(size) for size in (sizes if transform is None else _in_ref_order(sizes, transform)))


def _in_ref_order(values: Sequence, transform: np.ndarray) -> list:
    """Values given per axis of a file (its shape, its voxel sizes) put in the order of the axes `transform` maps
    them to."""
    ordered = [None, None, None]
    for axis, (ref_axis, _) in enumerate(transform):
        ordered[int(ref_axis)] = values[axis]
    return ordered


def _axis_transform(image: nib.Nifti1Image, ref: nib.Nifti1Image) -> np.ndarray | None:
    """nibabel's orientation transform (per axis of `image`: the axis of `ref` it runs along, and its direction)
    read from the two affines together, None when `ref`'s affine cannot be inverted.

    Where the files share a grid, `inv(ref) @ image` maps voxel to voxel and is a signed permutation, so each axis
    has one partner. Giving each file its own closest world axes instead breaks ties by axis position at 45 degrees
    of obliquity, where a file and its transposed copy then named orders that did not match."""
    try:
        voxel_to_voxel = np.linalg.solve(np.asarray(ref.affine, np.float64), np.asarray(image.affine, np.float64))
    except np.linalg.LinAlgError:
        return None
    transform = orientations.io_orientation(voxel_to_voxel)
    return None if np.isnan(transform).any() else transform


def _stored_alike(image: nib.Nifti1Image, ref: nib.Nifti1Image) -> bool:
    """Whether two files hold the same grid in the same axis order: same shape, affines within the tolerance."""
    return tuple(image.shape[:3]) == tuple(ref.shape[:3]) and _close(image.affine, ref.affine)


def has_orientation(image: nib.Nifti1Image) -> bool:
    """Whether the header places the voxels in the world (a qform or sform code above 0)."""
    return int(image.header["qform_code"]) > 0 or int(image.header["sform_code"]) > 0


def _same(array: np.ndarray) -> np.ndarray:
    return array


def _close(affine: np.ndarray, other: np.ndarray) -> bool:
    return bool(np.allclose(affine, other, rtol=0.0, atol=AFFINE_TOLERANCE))


def same_spacing(spacing: Sequence[float], other: Sequence[float]) -> bool:
    """Whether two target spacings are one grid: equal to a millionth (as written to and read back from JSON or
    YAML), so that a run and its cache, or a run and a cache given later, are compared one way everywhere."""
    return bool(np.allclose(spacing, other, rtol=1e-6, atol=0))
