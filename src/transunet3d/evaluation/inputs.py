"""What the scoring functions take, checked where they are called from code: a wrong spacing or two masks of
different shapes gave numbers (a miss scored Dice 1.0 with a zero spacing) instead of an error."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from transunet3d.config.schema import Range
from transunet3d.data.nifti import VOXEL_SIZE_MM

# As files are read (data.nifti): 0.001 is a size in metres, which would drop every lesion under the minimum volume
# and count none of them as missed.
VOXEL_MM = Range(*VOXEL_SIZE_MM)


def spacing_problem(spacing: Sequence[float]) -> str | None:
    """What is wrong with a voxel size (mm per axis), or None."""
    try:
        values = tuple(float(side) for side in spacing)
    except (TypeError, ValueError):
        return f"voxel size must be 3 numbers (mm), not {spacing!r}"
    if len(values) != 3:
        return f"voxel size must be 3 numbers (mm), not {len(values)}"
    problem = VOXEL_MM.problem(values)
    return None if problem is None else f"voxel size (mm) {problem}"


def checked_spacing(spacing: Sequence[float]) -> tuple[float, float, float]:
    """`spacing` as three floats.

    Raises:
        ValueError: not three finite sizes in VOXEL_MM's range.
    """
    problem = spacing_problem(spacing)
    if problem is not None:
        raise ValueError(problem)
    return tuple(float(side) for side in spacing)


def check_maps(pred: np.ndarray, ref: np.ndarray, masks: bool = True) -> None:
    """Refuse maps that cannot be compared voxel by voxel: not 3D arrays of one shape, empty, or (`masks`) not
    boolean, where a float map with NaN or a label map would be read as some mask without a word.

    Raises:
        ValueError: naming the problem.
    """
    for name, array in (("prediction", pred), ("reference", ref)):
        if not isinstance(array, np.ndarray) or array.ndim != 3 or array.size == 0:
            raise ValueError(f"{name}: a non-empty 3D array, not {getattr(array, 'shape', type(array).__name__)}")
        if masks and array.dtype != bool:
            raise ValueError(f"{name}: a boolean mask, not {array.dtype} (region_mask makes one of a label map)")
    if pred.shape != ref.shape:
        raise ValueError(f"prediction {pred.shape} and reference {ref.shape} are of different shapes")
