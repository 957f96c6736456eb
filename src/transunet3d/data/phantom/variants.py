"""The same phantom series at another voxel size or stored in another axis order, to test that every geometry gives
the same answer."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import nibabel as nib
import numpy as np

from transunet3d.config.schema import MODALITIES
from transunet3d.data.labels import label_scheme
from transunet3d.data.nifti import Geometry
from transunet3d.data.orientation import AxisOrder
from transunet3d.data.resample import labels_from_fractions, resample_smoothly, resampled_shape

if TYPE_CHECKING:  # generate.py imports this module to apply variants
    from transunet3d.data.phantom.generate import Phantom


@dataclass(frozen=True)
class Variant:
    """How to store a generated case: acquired at `voxel_size` (mm; partial volume along coarser axes, spline along
    finer ones, label maps per region) and/or with its voxel axes in the order `axis_codes` (e.g. "LPS"; world
    positions unchanged)."""

    voxel_size: tuple[float, float, float] | None = None
    axis_codes: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"voxel_size": list(self.voxel_size) if self.voxel_size else None, "axis_codes": self.axis_codes}


def apply_variant(phantom: Phantom, variant: Variant) -> Phantom:
    """`phantom` (generated in RAS) resampled and/or reordered as `variant` says."""
    images = np.stack([phantom.images[m] for m in MODALITIES])
    seg, affine = phantom.seg, np.array(phantom.geometry.affine)
    if variant.voxel_size is not None:
        images, seg, affine = _resampled(images, seg, affine, variant.voxel_size)
    if variant.axis_codes is not None:
        order = AxisOrder.from_codes(variant.axis_codes)
        affine = order.file_affine(affine, seg.shape)
        images, seg = order.undo(images), order.undo(seg)
    rows = tuple(tuple(float(x) for x in row) for row in affine)
    zooms = tuple(float(z) for z in nib.affines.voxel_sizes(affine))
    geometry = Geometry(tuple(seg.shape), rows, rows, 1, rows, 1, zooms, xyzt_units=phantom.geometry.xyzt_units)
    return replace(phantom, images=dict(zip(MODALITIES, images)), seg=seg, geometry=geometry)


def _resampled(images: np.ndarray, seg: np.ndarray, affine: np.ndarray, voxel_size: tuple[float, float, float]):
    """Images (int16, rounded), label map and affine of the case acquired with voxels of `voxel_size`, on a grid of
    the same extent."""
    spacing = nib.affines.voxel_sizes(affine)
    shape = resampled_shape(seg.shape, spacing, voxel_size)
    smooth = _acquired(images.astype(np.float32), shape, "spline")
    brain = _acquired(np.any(images != 0, axis=0).astype(np.float32)[None], shape, "trilinear")
    labels = _acquired_labels(seg, shape)
    # The head is where at least half a voxel is brain, and wherever a label is (a small lesion at the brain's edge
    # kept on its fullest voxel); inside it every contrast is at least 1, as generated: a spline's undershoot in
    # dark fluid would otherwise read as background.
    head = (brain[0] >= 0.5) | (labels > 0)
    smooth[:, ~head] = 0
    smooth[:, head] = np.maximum(smooth[:, head], 1)
    # Extent-preserving grids: the new voxel i has its centre at old voxel coordinate (i + 0.5) * scale - 0.5.
    scale = np.asarray(seg.shape) / np.asarray(shape)
    grid = np.diag([*scale, 1.0])
    grid[:3, 3] = 0.5 * scale - 0.5
    return np.rint(smooth).astype(np.int16), labels, affine @ grid


def _acquired(volume: np.ndarray, shape: tuple[int, int, int], smooth: Literal["spline", "trilinear"]) -> np.ndarray:
    """What a scanner records of `volume` (C, X, Y, Z) on a grid of `shape` and the same extent: along every axis it
    coarsens, each new voxel holds the mean over its own extent (a box slice profile, so a lesion thinner than a
    slice still shows, at partial-volume contrast); the axes it refines are interpolated with `smooth`, every one
    of them (never nearest neighbour, whatever the voxels' anisotropy).

    Sampling a coarse grid at points instead (the resampling that prediction uses) would show a 3 mm lesion between
    the centres of 3.6 mm slices nowhere, a lesion that no scan of that thickness could hide.
    """
    coarse = [int(axis) for axis in np.flatnonzero(np.asarray(shape) < volume.shape[1:])]
    for axis in coarse:
        volume = np.moveaxis(np.tensordot(_box_weights(volume.shape[1 + axis], shape[axis]),
                                          np.moveaxis(volume, 1 + axis, 0), axes=1), 0, 1 + axis)
    volume = np.ascontiguousarray(volume, dtype=np.float32)
    return resample_smoothly(volume, shape, smooth)


def _box_weights(count: int, size: int) -> np.ndarray:
    """(size, count) weights that average `count` voxels into `size` wider ones of the same extent: the fraction
    of each new voxel that each old voxel covers."""
    edges = np.arange(size + 1) * (count / size)
    low, high = edges[:-1, None], edges[1:, None]
    voxels = np.arange(count)[None, :]
    overlap = np.clip(np.minimum(high, voxels + 1) - np.maximum(low, voxels), 0, None)
    return (overlap / (count / size)).astype(np.float32)


def _acquired_labels(seg: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """The label map an annotator draws on the acquired image: each region where it fills at least half of a new
    voxel (`_acquired` of its mask), and every lesion that fills half of none kept at its fullest voxels.

    Regions of the `brats-mets-2025` scheme, whose labels hold every phantom's: a resection cavity (label 4) is one
    more region, and tumour is written over it, as that scheme writes predictions back to labels."""
    scheme = label_scheme("brats-mets-2025")
    source = scheme.labels_to_regions(seg)
    fractions = _acquired(source.astype(np.float32), shape, "trilinear")
    return labels_from_fractions(source, fractions, scheme)
