"""The same phantom series at another voxel size or stored in another axis order, to test that every geometry gives
the same answer."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import nibabel as nib
import numpy as np

from transunet3d.config.schema import MODALITIES
from transunet3d.data.nifti import Geometry
from transunet3d.data.orientation import AxisOrder
from transunet3d.data.phantom.cavities import RC
from transunet3d.data.resample import resample_image, resample_labels, resampled_shape

if TYPE_CHECKING:  # generate.py imports this module to apply variants
    from transunet3d.data.phantom.generate import Phantom


@dataclass(frozen=True)
class Variant:
    """How to store a generated case: resampled to `voxel_size` (mm; spline images, label maps per region) and/or
    with its voxel axes in the order `axis_codes` (e.g. "LPS"; world positions unchanged)."""

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
    geometry = Geometry(tuple(seg.shape), rows, rows, 1, rows, 1, zooms)
    return replace(phantom, images=dict(zip(MODALITIES, images)), seg=seg, geometry=geometry)


def _resampled(images: np.ndarray, seg: np.ndarray, affine: np.ndarray, voxel_size: tuple[float, float, float]):
    """Images (int16, rounded), label map and affine on a `voxel_size` grid of the same extent."""
    spacing = nib.affines.voxel_sizes(affine)
    shape = resampled_shape(seg.shape, spacing, voxel_size)
    smooth = resample_image(images.astype(np.float32), shape, spacing, voxel_size, "spline")
    labels = _resampled_labels(seg, shape, spacing, voxel_size)
    smooth[:, ~_resampled_brain(images, shape, spacing, voxel_size)] = 0
    # Extent-preserving grids: the new voxel i has its centre at old voxel coordinate (i + 0.5) * scale - 0.5.
    scale = np.asarray(seg.shape) / np.asarray(shape)
    grid = np.diag([*scale, 1.0])
    grid[:3, 3] = 0.5 * scale - 0.5
    return np.rint(smooth).astype(np.int16), labels, affine @ grid


def _resampled_labels(seg: np.ndarray, shape: tuple[int, int, int], spacing, voxel_size) -> np.ndarray:
    """The label map resampled region by region; a resection cavity (label RC) is one more region, resampled by the
    same rule as the tumour regions (linear, >= 0.5, no component lost), and tumour is written over it as the
    `brats-mets-2025` scheme writes regions back to labels."""
    cavity = seg == RC
    if not cavity.any():
        return resample_labels(seg, shape, spacing, voxel_size)
    tumour = resample_labels(np.where(cavity, 0, seg).astype(np.uint8), shape, spacing, voxel_size)
    # The cavity alone as an ET-only map: its three nested regions are the cavity mask itself.
    cavity = resample_labels(np.where(cavity, 3, 0).astype(np.uint8), shape, spacing, voxel_size) == 3
    return np.where(tumour > 0, tumour, np.where(cavity, RC, 0)).astype(np.uint8)


def _resampled_brain(images: np.ndarray, shape: tuple[int, int, int], spacing, voxel_size) -> np.ndarray:
    """The brain (nonzero in any channel) on the new grid, linearly interpolated and kept where it reaches 0.5.

    A skull-stripped scan acquired at another voxel size has an exact zero background too; the spline alone would
    leave a halo of small values around the brain, which preprocessing would take for brain (nonzero voxels) and
    z-score into a dark rim that no real scan has.
    """
    brain = np.any(images != 0, axis=0).astype(np.float32)[None]
    return resample_image(brain, shape, spacing, voxel_size, "trilinear")[0] >= 0.5
