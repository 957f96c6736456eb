"""The dataset's plan: the target spacing every case is resampled to, from the headers of its cases.

Usually only the NIfTI headers are read (nibabel loads a `.nii.gz` header without decompressing the data), so
planning a large dataset takes seconds; a dataset of thick slices has its images read once more, for the shapes of
their brains. A case whose files cannot be read is left out here and reported by the case pass.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import nibabel as nib
import numpy as np

from transunet3d.data.crop import brain_box
from transunet3d.data.layout import CaseFiles
from transunet3d.data.nifti import peek_header, voxel_size
from transunet3d.data.orientation import AxisOrder
from transunet3d.data.resample import shapes_decide, target_spacing
from transunet3d.errors import InputError

Spacing = tuple[float, float, float]
# What a quick, unchecked look at a file can raise; such a case is left out here and reported by the case pass.
_PEEK_ERRORS = (InputError, OSError, ValueError, EOFError, zlib.error, nib.filebasedimages.ImageFileError)


def header_grid(case: CaseFiles) -> tuple[Spacing, tuple[int, int, int]] | None:
    """(voxel size, shape) of a case's first image in the canonical axis order, or None when unreadable."""
    try:
        image = peek_header(case.image_paths()[0])
        order = AxisOrder.of(np.asarray(image.affine, dtype=np.float64))
    except _PEEK_ERRORS:
        return None
    if len(image.shape) < 3:
        return None
    return order.spacing(voxel_size(image)), order.shape(image.shape[:3])


def brain_shape(case: CaseFiles) -> tuple[int, int, int] | None:
    """The shape of a case's brain crop (`crop.brain_box`: the voxels nonzero in any modality) in the canonical
    axis order, or None when a file cannot be read. Reads every image, unchecked and quietly."""
    try:
        masks = []
        for path in case.image_paths():
            image = peek_header(path)
            data = np.asanyarray(image.dataobj)
            order = AxisOrder.of(np.asarray(image.affine, dtype=np.float64))
            masks.append(order.apply(data.reshape(data.shape[:3]) != 0))
        box = brain_box(np.stack(masks))
    except (*_PEEK_ERRORS, MemoryError):
        return None
    return tuple(int(high - low) for low, high in box)


def plan_target_spacing(cases: Sequence[CaseFiles]) -> Spacing | None:
    """nnU-Net's target spacing (`resample.target_spacing`) of the readable cases, None when there are none.

    The shapes count only for a dataset of thick slices (`resample.shapes_decide`), and then they are the brain
    crops' shapes, as nnU-Net's plan takes them: a scan with a wide zero background around the head has more voxels
    in-plane than its brain, which could make its slices count as few. Only then are the images read; otherwise
    the headers suffice.
    """
    grids = [(case, grid) for case in cases if (grid := header_grid(case)) is not None]
    if not grids:
        return None
    spacings = [spacing for _, (spacing, _) in grids]
    shapes = [shape for _, (_, shape) in grids]
    if shapes_decide(spacings):
        shapes = [brain_shape(case) or shape for (case, _), shape in zip(grids, shapes)]
    return target_spacing(spacings, shapes)
