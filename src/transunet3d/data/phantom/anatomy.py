"""MNI152 brain anatomy (T1 brain mask, grey- and white-matter maps shipped in the `nilearn` wheel) on any grid."""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from transunet3d.data.crop import brain_box as brain_box_of

_MNI_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}


@dataclass(frozen=True)
class Anatomy:
    """Tissue maps on the phantom grid. Fractions are float32 in [0, 1] and zero outside the brain."""

    spacing: tuple[float, float, float]
    brain: np.ndarray  # bool
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.brain.shape


def _mni_folder() -> Path:
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the phantom generator needs the `nilearn` package (pip install nilearn)")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data"


@functools.lru_cache(maxsize=1)
def _mni_maps() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The three MNI maps as float32 in [0, 1], their affine (1 mm, axis-aligned)."""
    maps, affine = {}, None
    for key, name in _MNI_FILES.items():
        image = nib.load(_mni_folder() / name)
        maps[key] = np.asarray(image.dataobj, dtype=np.float32) / 255.0
        affine = image.affine
    return maps, affine


def _brain_extent_mm() -> tuple[np.ndarray, np.ndarray]:
    """World-space (mm) centre and size of the MNI brain's bounding box."""
    maps, affine = _mni_maps()
    brain_box = brain_box_of(maps["t1"][None])
    low = affine[:3, :3] @ [lo for lo, _ in brain_box] + affine[:3, 3]
    high = affine[:3, :3] @ [hi - 1 for _, hi in brain_box] + affine[:3, 3]
    return (low + high) / 2, np.abs(high - low) + 1


def brain_size_mm() -> np.ndarray:
    """The size (mm) of the MNI brain's bounding box along each world axis."""
    return _brain_extent_mm()[1]


def fitting_spacing(shape: tuple[int, int, int]) -> tuple[float, float, float]:
    """The smallest isotropic voxel size (at least 1 mm) at which the whole MNI brain fits in `shape`."""
    _, size = _brain_extent_mm()
    spacing = max(1.0, float(np.max(size / np.asarray(shape))))
    return (spacing, spacing, spacing)


@functools.lru_cache(maxsize=4)
def anatomy_on_grid(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> Anatomy:
    """MNI anatomy resampled (trilinear) onto a `shape` grid of `spacing` mm centred on the brain."""
    maps, affine = _mni_maps()
    centre, _ = _brain_extent_mm()
    grid_origin = centre - (np.asarray(shape) - 1) / 2 * np.asarray(spacing)
    # World-axis-aligned 1 mm MNI grid: a diagonal resampling (scipy's fast zoom-and-shift path), or plain
    # slicing when the phantom grid has the MNI voxel size (the origin moves by at most half a voxel for that).
    scale = np.asarray(spacing) / np.diag(affine)[:3]
    offset = (grid_origin - affine[:3, 3]) / np.diag(affine)[:3]
    if np.allclose(scale, 1.0):
        offset = np.round(offset)

    def resample(volume: np.ndarray) -> np.ndarray:
        if np.allclose(scale, 1.0):
            return _shifted_window(volume, offset.astype(int), shape)
        return ndimage.affine_transform(volume, scale, offset=offset, output_shape=shape, order=1, cval=0.0)

    brain = resample((maps["t1"] > 0).astype(np.float32)) > 0.5
    gm = np.where(brain, resample(maps["gm"]), 0).astype(np.float32)
    wm = np.where(brain, resample(maps["wm"]), 0).astype(np.float32)
    csf = np.where(brain, np.clip(1 - gm - wm, 0, 1), 0).astype(np.float32)
    return Anatomy(tuple(spacing), brain, gm, wm, csf)


def _shifted_window(volume: np.ndarray, start: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """volume[start : start + shape], zero where the window leaves the volume."""
    out = np.zeros(shape, dtype=volume.dtype)
    src = tuple(slice(max(s, 0), min(s + n, v)) for s, n, v in zip(start, shape, volume.shape))
    dst = tuple(slice(sl.start - s, sl.stop - s) for sl, s in zip(src, start))
    out[dst] = volume[src]
    return out


def grid_affine(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> np.ndarray:
    """RAS affine of the phantom grid, with the brain centre at the world origin."""
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -(np.asarray(shape) - 1) / 2 * np.asarray(spacing)
    return affine
