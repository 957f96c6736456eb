"""The dataset's plan: the target spacing every case is resampled to, from the headers of its cases.

Only the NIfTI headers are read (nibabel loads a `.nii.gz` header without decompressing the data), so planning a
large dataset takes seconds. A case whose header cannot be read is left out here and reported by the case pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import nibabel as nib
import numpy as np

from transunet3d.data.layout import CaseFiles
from transunet3d.data.nifti import peek_header
from transunet3d.data.orientation import AxisOrder
from transunet3d.data.resample import target_spacing
from transunet3d.errors import InputError

Spacing = tuple[float, float, float]


def header_grid(case: CaseFiles) -> tuple[Spacing, tuple[int, int, int]] | None:
    """(voxel size, shape) of a case's first image in the canonical axis order, or None when unreadable."""
    try:
        image = peek_header(case.image_paths()[0])
        affine = np.asarray(image.affine, dtype=np.float64)
        order = AxisOrder.of(affine)
    except (InputError, OSError, ValueError, EOFError, nib.filebasedimages.ImageFileError):
        return None
    if len(image.shape) < 3:
        return None
    zooms = tuple(float(z) for z in np.linalg.norm(affine[:3, :3], axis=0))  # as `nifti.voxel_size` measures
    return order.spacing(zooms), order.shape(image.shape[:3])


def plan_target_spacing(cases: Sequence[CaseFiles]) -> Spacing | None:
    """nnU-Net's target spacing (`resample.target_spacing`) of the readable cases, None when there are none.

    The shapes are the whole volumes', not the brain crops' that nnU-Net uses: they only decide whether a coarse
    axis also has few voxels, which cropping to the brain does not change in practice.
    """
    grids = [grid for grid in map(header_grid, cases) if grid is not None]
    if not grids:
        return None
    spacings, shapes = zip(*grids)
    return target_spacing(spacings, shapes)
