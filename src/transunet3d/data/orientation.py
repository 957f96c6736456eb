"""The canonical axis order: every case's voxel axes permuted and flipped to the order closest to RAS.

A file may store the same head with its voxel axes in any order and direction (LPS from DICOM converters, PSR for
sagittal acquisitions, ...). Reordering the axes is exact (no interpolation): the voxels are the same, only their
array positions change, and the affine changes with them so that every voxel keeps its world position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import nibabel as nib
import numpy as np
from nibabel import orientations

CANONICAL = "RAS"


@dataclass(frozen=True)
class AxisOrder:
    """How a file's voxel axes map to the canonical order: `codes` names the world direction each file axis points
    to, in nibabel's axis codes (e.g. "LPS": the first axis runs to the left, ...; "RAS" needs no change)."""

    codes: str

    @classmethod
    def of(cls, affine: np.ndarray) -> AxisOrder:
        """The axis order of a file with this affine; an oblique affine takes each axis's closest world axis.
        ValueError for an affine whose voxel axes do not span a volume (a zero or NaN column)."""
        codes = nib.aff2axcodes(np.asarray(affine, dtype=np.float64))
        if None in codes:
            raise ValueError(f"the affine's voxel axes do not span a volume (axis codes {codes})")
        return cls("".join(codes))

    @classmethod
    def from_codes(cls, codes: str) -> AxisOrder:
        """The axis order named by three axis codes, one of L/R, one of P/A and one of I/S in any order (e.g. "LPS",
        "PRS", "SAR"); ValueError for anything else."""
        codes = codes.upper()
        problem = f"axis codes {codes!r} must name each world axis once, one of L/R, P/A, I/S each (e.g. LPS)"
        try:
            ornt = orientations.axcodes2ornt(tuple(codes))
        except ValueError:
            raise ValueError(problem) from None
        if len(codes) != 3 or sorted(ornt[:, 0].tolist()) != [0, 1, 2]:
            raise ValueError(problem)
        return cls(codes)

    @property
    def is_canonical(self) -> bool:
        return self.codes == CANONICAL

    def _to_canonical(self) -> np.ndarray:
        """nibabel's orientation transform (per file axis: canonical axis, flip) from the file to RAS."""
        return orientations.ornt_transform(orientations.axcodes2ornt(self.codes),
                                           orientations.axcodes2ornt(CANONICAL))

    def _from_canonical(self) -> np.ndarray:
        return orientations.ornt_transform(orientations.axcodes2ornt(CANONICAL),
                                           orientations.axcodes2ornt(self.codes))

    def apply(self, array: np.ndarray) -> np.ndarray:
        """`array` (..., X, Y, Z) in the file's axis order, returned contiguous in the canonical order (`array`
        itself when the file is already canonical and `array` contiguous)."""
        return reorient_last_three(array, None if self.is_canonical else self._to_canonical())

    def undo(self, array: np.ndarray) -> np.ndarray:
        """The exact inverse of `apply`: a canonical (..., X, Y, Z) array back in the file's axis order."""
        return reorient_last_three(array, None if self.is_canonical else self._from_canonical())

    def spacing(self, zooms: tuple[float, ...]) -> tuple[float, float, float]:
        """The file's voxel sizes (one per file axis) in the canonical axis order."""
        return tuple(float(z) for z in self._permute(zooms))

    def shape(self, shape: tuple[int, ...]) -> tuple[int, int, int]:
        """The canonical spatial shape of a file of spatial shape `shape` (X, Y, Z)."""
        return tuple(int(n) for n in self._permute(shape[-3:]))

    def _permute(self, values: tuple) -> list:
        """Per-file-axis values put in the canonical axis order."""
        ordered = [None, None, None]
        for file_axis, (canonical_axis, _) in enumerate(self._to_canonical()):
            ordered[int(canonical_axis)] = values[file_axis]
        return ordered

    def canonical_affine(self, affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """The affine of the canonical array: voxel v of `apply(data)` sits where the file's voxel it came from
        sits under `affine`.

        Args:
            affine: the file's 4x4 voxel-to-world affine.
            shape: the file's spatial shape (X, Y, Z), needed because a flipped axis counts from its far end.
        """
        affine = np.asarray(affine, dtype=np.float64)
        if self.is_canonical:
            return affine.copy()
        return affine @ orientations.inv_ornt_aff(self._to_canonical(), tuple(shape[-3:]))

    def file_affine(self, canonical_affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """The inverse of `canonical_affine`: the affine of `undo(canonical)` for a canonical array of spatial shape
        `shape` and affine `canonical_affine`."""
        canonical_affine = np.asarray(canonical_affine, dtype=np.float64)
        if self.is_canonical:
            return canonical_affine.copy()
        return canonical_affine @ orientations.inv_ornt_aff(self._from_canonical(), tuple(shape[-3:]))

    def to_json(self) -> dict[str, Any]:
        return {"axis_codes": self.codes}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AxisOrder:
        return cls.from_codes(str(data["axis_codes"]))


def reorient_last_three(array: np.ndarray, transform: np.ndarray | None) -> np.ndarray:
    """`array` with its last three axes permuted and flipped by a nibabel orientation transform, contiguous."""
    if transform is None:
        return np.ascontiguousarray(array)
    # nibabel reorients the first three axes; move any leading (channel) axes behind them and back.
    leading = array.ndim - 3
    spatial_first = np.moveaxis(array, tuple(range(leading)), tuple(range(3, array.ndim)))
    reoriented = orientations.apply_orientation(spatial_first, transform)
    return np.ascontiguousarray(np.moveaxis(reoriented, tuple(range(3, array.ndim)), tuple(range(leading))))
