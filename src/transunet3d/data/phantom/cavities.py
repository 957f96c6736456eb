"""Resection cavities for post-treatment phantoms (BraTS 2025 METS label 4, RC).

A cavity is the fluid-filled space a surgeon leaves where a metastasis was removed. Here it is an irregular
ellipsoid (random orientation and axis ratios, with the lobulated boundary of `Lobes`) that abuts one of the case's
lesions, as residual or recurrent tumour sits at a cavity's wall; it lies inside the brain, clear of the other
lesions and cavities, and a thin rim of edema/gliosis (SNFH) surrounds it in the parenchyma.

Each voxel keeps one label where they meet:
- tumour (ET, NETC) over cavity: a cavity never hides tumour, the order in which the `brats-mets-2025` scheme
  writes predicted regions back to labels;
- cavity over edema: the fluid fills the space, the edema lies in the parenchyma around it;
- a cavity's own edema rim only where no other label is.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from transunet3d.data.phantom.anatomy import Anatomy
from transunet3d.data.phantom.lesions import ET, NETC, SNFH, Lesion, Lobes, box_offsets, inside_fraction

RC = 4
_PLACEMENT_TRIES = 30
_MIN_INSIDE_BRAIN = 0.9
_GAP_MM = 2.0  # between a cavity and the other lesions and cavities, as between lesions


@dataclass(frozen=True)
class Cavity:
    """One resection cavity: the lesion it abuts, where, how large, its shape and the edema rim around it."""

    lesion: int  # index in the case's lesion list
    center: tuple[float, float, float]  # voxel coordinates, not necessarily integers
    diameter_mm: float  # before the ellipsoid's axis ratios and the lobes
    rotation: np.ndarray  # (3, 3) orthonormal; rows are the ellipsoid's axes in voxel-axis (mm) coordinates
    semi_axes: np.ndarray  # (3,) factors of the radius along those axes, product 1 (same volume as the sphere)
    lobes: Lobes
    rim_mm: float  # thickness of the edema rim

    @property
    def reach_mm(self) -> float:
        """No voxel of the cavity is farther than this from its centre."""
        return self.diameter_mm / 2 * float(self.semi_axes.max()) * self.lobes.max_factor

    def field(self, offsets: np.ndarray) -> np.ndarray:
        """Normalised distance of `offsets` (..., 3) in mm from the centre: < 1 inside the cavity, and 1 + d / R
        about d mm outside it (R the radius); homogeneous, so the boundary along a unit u is at 1 / field(u) mm."""
        local = offsets @ self.rotation.T / self.semi_axes
        length = np.linalg.norm(local, axis=-1)
        unit = local / np.maximum(length, 1e-6)[..., None]
        return length / (self.diameter_mm / 2 * self.lobes.radius_factor(unit))

    def to_dict(self) -> dict:
        return {"center_voxel": [round(float(c), 2) for c in self.center], "diameter_mm": round(self.diameter_mm, 3),
                "rim_mm": round(self.rim_mm, 3)}


def sample_cavities(
    rng: np.random.Generator, anatomy: Anatomy, lesions: list[Lesion], probability: float,
    diameter_mm: tuple[float, float],
) -> list[Cavity]:
    """A cavity next to each lesion with `probability` (where one fits), diameters log-uniform in `diameter_mm`."""
    cavities: list[Cavity] = []
    for index in range(len(lesions)):
        if rng.random() >= probability:
            continue
        diameter = float(np.exp(rng.uniform(*np.log(diameter_mm))))
        cavity = _place(rng, anatomy, lesions, index, diameter, cavities)
        if cavity is not None:
            cavities.append(cavity)
    return cavities


def _place(rng, anatomy: Anatomy, lesions: list[Lesion], index: int, diameter: float,
           placed: list[Cavity]) -> Cavity | None:
    spacing = np.asarray(anatomy.spacing)
    lesion = lesions[index]
    for attempt in range(_PLACEMENT_TRIES):
        cavity = _random_shape(rng, index, diameter * 0.85 ** (attempt // 10))  # shrink when there is no room
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        lesion_wall = lesion.diameter_mm / 2 * float(lesion.core.radius_factor(direction))
        cavity_wall = 1.0 / float(cavity.field(-direction))  # from the cavity's centre toward the lesion
        # The cavity reaches a little into the lesion, which keeps those voxels: the two touch.
        distance_mm = lesion_wall + rng.uniform(0.6, 0.9) * cavity_wall
        center = np.asarray(lesion.center) + direction * distance_mm / spacing
        voxel = np.rint(center).astype(int)
        if np.any(voxel < 0) or np.any(voxel >= anatomy.shape) or not anatomy.brain[tuple(voxel)]:
            continue
        if _crowds(center, cavity.reach_mm, lesions, index, placed, spacing):
            continue
        if inside_fraction(anatomy.brain, voxel, cavity.reach_mm, spacing) < _MIN_INSIDE_BRAIN:
            continue
        return replace(cavity, center=tuple(float(c) for c in center))
    return None


def _random_shape(rng: np.random.Generator, lesion: int, diameter: float) -> Cavity:
    """A cavity centred at the origin: random orientation, axis ratios up to 2:1, mildly lobulated."""
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    semi_axes = rng.uniform(0.7, 1.4, size=3)
    semi_axes /= np.prod(semi_axes) ** (1 / 3)
    return Cavity(lesion, (0.0, 0.0, 0.0), diameter, rotation, semi_axes, Lobes.random(rng, max_amplitude=0.25),
                  rim_mm=float(rng.uniform(1.0, 4.0)))


def _crowds(center: np.ndarray, reach: float, lesions: list[Lesion], own: int, placed: list[Cavity],
            spacing: np.ndarray) -> bool:
    """Whether a cavity there would come within `_GAP_MM` of another lesion's core or of another cavity."""
    others = [(np.asarray(lesion.center), lesion.diameter_mm / 2 * lesion.core.max_factor)
              for i, lesion in enumerate(lesions) if i != own]
    others += [(np.asarray(cavity.center), cavity.reach_mm) for cavity in placed]
    return any(np.linalg.norm((center - where) * spacing) < reach + other_reach + _GAP_MM
               for where, other_reach in others)


def carve_cavities(seg: np.ndarray, cavities: list[Cavity], anatomy: Anatomy) -> None:
    """Write `cavities` (label RC) and their edema rims into the label map `seg`, in place, by the rules above."""
    spacing = np.asarray(anatomy.spacing)
    parenchyma = anatomy.brain & (anatomy.csf < 0.5)  # the rim spares the ventricles, as lesion edema does
    rims = []
    for cavity in cavities:
        outer = 1.0 + cavity.rim_mm / (cavity.diameter_mm / 2)
        field, box = _field_in_box(cavity, cavity.reach_mm * outer, spacing, anatomy.shape)
        view = seg[box]
        view[(field < 1) & anatomy.brain[box] & (view != NETC) & (view != ET)] = RC
        rims.append((field < outer, box))
    # Rims after every cavity, so that one cavity's rim never takes the place of another cavity.
    for rim, box in rims:
        view = seg[box]
        view[rim & parenchyma[box] & (view == 0)] = SNFH


def _field_in_box(cavity: Cavity, reach: float, spacing: np.ndarray, shape) -> tuple[np.ndarray, tuple]:
    """The cavity's field over the clipped box of half-size `reach` mm around its centre, and the box."""
    center = np.asarray(cavity.center)
    voxel = np.rint(center).astype(int)
    offsets, box = box_offsets(voxel, reach, spacing, shape)
    return cavity.field(offsets + (voxel - center) * spacing), box
