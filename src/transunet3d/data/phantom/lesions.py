"""Metastases for the phantoms: irregular enhancing lesions with an optional necrotic core and surrounding edema.

Each lesion is star-shaped: its boundary radius in direction u is R * (1 + sum_k a_k sin(f_k u.v_k + phi_k)), a
smooth lobulated perturbation of a sphere. Necrosis, enhancing rim and edema are nested level sets of such fields,
so NETC lies inside ET and edema surrounds both, as in real metastases.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from transunet3d.data.phantom.anatomy import Anatomy

NETC, SNFH, ET = 1, 2, 3
_PLACEMENT_TRIES = 40
_MIN_INSIDE_BRAIN = 0.9


@dataclass(frozen=True)
class Lobes:
    """A smooth radial perturbation of the unit sphere (K terms)."""

    directions: np.ndarray  # (K, 3) unit vectors
    frequencies: np.ndarray  # (K,)
    phases: np.ndarray  # (K,)
    amplitudes: np.ndarray  # (K,)

    @classmethod
    def random(cls, rng: np.random.Generator, max_amplitude: float, terms: int = 4) -> Lobes:
        directions = rng.normal(size=(terms, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        return cls(directions, rng.uniform(1.5, 4.0, terms), rng.uniform(0, 2 * np.pi, terms),
                   rng.uniform(0, max_amplitude / terms, terms))

    def radius_factor(self, unit: np.ndarray) -> np.ndarray:
        """1 + perturbation, for unit vectors of shape (..., 3)."""
        angles = (unit @ self.directions.T) * self.frequencies + self.phases
        return 1.0 + np.sin(angles) @ self.amplitudes

    @property
    def max_factor(self) -> float:
        return 1.0 + float(self.amplitudes.sum())


@dataclass(frozen=True)
class Lesion:
    """One metastasis: where, how large, and its compartments (fractions of the enhancing radius)."""

    center: tuple[int, int, int]  # voxel
    diameter_mm: float
    necrosis_fraction: float  # radius of the necrotic core / lesion radius; 0 = solid enhancement
    edema_fraction: float  # outer radius of the edema / lesion radius; 1 = no edema
    core: Lobes
    edema: Lobes

    def to_dict(self) -> dict:
        return {"center_voxel": list(self.center), "diameter_mm": round(self.diameter_mm, 3),
                "necrosis_fraction": round(self.necrosis_fraction, 3),
                "edema_fraction": round(self.edema_fraction, 3)}


def sample_lesions(
    rng: np.random.Generator,
    anatomy: Anatomy,
    count: int,
    diameter_mm: tuple[float, float],
    necrosis_p: float,
    edema_p: float,
) -> list[Lesion]:
    """`count` non-touching lesions (fewer if the brain has no room), diameters log-uniform in `diameter_mm`."""
    brain_voxels = np.flatnonzero(anatomy.brain)
    # Metastases favour the grey-white junction: accept candidates with a probability that peaks there.
    junction = 0.3 + 2.8 * np.sqrt(anatomy.gm.ravel()[brain_voxels] * anatomy.wm.ravel()[brain_voxels])
    lesions: list[Lesion] = []
    for diameter in np.exp(rng.uniform(*np.log(diameter_mm), size=count)):
        lesion = _place(rng, anatomy, brain_voxels, junction, float(diameter), lesions, necrosis_p, edema_p)
        if lesion is not None:
            lesions.append(lesion)
    return lesions


def _place(rng, anatomy, brain_voxels, junction, diameter, placed, necrosis_p, edema_p) -> Lesion | None:
    spacing = np.asarray(anatomy.spacing)
    for attempt in range(_PLACEMENT_TRIES):
        radius = diameter / 2 * 0.85 ** (attempt // 10)  # shrink when a large lesion finds no room
        pick = rng.integers(brain_voxels.size)
        if rng.random() > junction[pick]:
            continue
        center = np.array(np.unravel_index(brain_voxels[pick], anatomy.shape))
        core = Lobes.random(rng, max_amplitude=0.3)
        if _touches(center, radius * core.max_factor, placed, spacing):
            continue
        if inside_fraction(anatomy.brain, center, radius, spacing) < _MIN_INSIDE_BRAIN:
            continue
        thinnest_rim = 1.5 * spacing.max() / (radius * (2 - core.max_factor))  # rim >= 1.5 voxels everywhere
        necrosis = rng.uniform(0.35, 0.7) if radius >= 4 and rng.random() < necrosis_p else 0.0
        necrosis = necrosis if necrosis <= 1 - thinnest_rim else 0.0
        edema = rng.uniform(1.3, 3.0) if rng.random() < edema_p else 1.0
        return Lesion(tuple(int(c) for c in center), 2 * radius, necrosis, edema, core,
                      Lobes.random(rng, max_amplitude=0.5))
    return None


def _touches(center: np.ndarray, radius: float, placed: list[Lesion], spacing: np.ndarray) -> bool:
    for other in placed:
        gap_mm = np.linalg.norm((center - other.center) * spacing)
        if gap_mm < radius + other.diameter_mm / 2 * other.core.max_factor + 2.0:
            return True
    return False


def inside_fraction(brain: np.ndarray, center: np.ndarray, radius: float, spacing: np.ndarray) -> float:
    offsets, box = box_offsets(center, radius, spacing, brain.shape)
    ball = np.linalg.norm(offsets, axis=-1) <= radius
    total = _ball_voxels(radius, spacing)
    return float(brain[box][ball].sum()) / max(total, 1)


def _ball_voxels(radius: float, spacing: np.ndarray) -> int:
    half = np.ceil(radius / spacing).astype(int)
    axes = [np.arange(-h, h + 1) * s for h, s in zip(half, spacing)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    return int((np.linalg.norm(grid, axis=-1) <= radius).sum())


def box_offsets(center: np.ndarray, radius: float, spacing: np.ndarray, shape) -> tuple[np.ndarray, tuple]:
    """Millimetre offsets from `center` of the voxels in the clipped box of half-size `radius`, and the box."""
    half = np.ceil(radius / spacing).astype(int) + 1
    low = np.maximum(center - half, 0)
    high = np.minimum(center + half + 1, shape)
    axes = [(np.arange(lo, hi) - c) * s for lo, hi, c, s in zip(low, high, center, spacing)]
    offsets = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    return offsets, tuple(slice(lo, hi) for lo, hi in zip(low, high))


def rasterize(lesions: list[Lesion], anatomy: Anatomy) -> np.ndarray:
    """The BraTS label map (uint8) of `lesions`: edema first, then the enhancing cores and necrosis over it."""
    seg = np.zeros(anatomy.shape, dtype=np.uint8)
    spacing = np.asarray(anatomy.spacing)
    # Edema follows the brain parenchyma: it does not flood the ventricles.
    parenchyma = anatomy.brain & (anatomy.csf < 0.5)
    for lesion in lesions:
        radius = lesion.diameter_mm / 2
        reach = radius * lesion.edema_fraction * lesion.edema.max_factor
        offsets, box = box_offsets(np.asarray(lesion.center), reach, spacing, anatomy.shape)
        distance = np.linalg.norm(offsets, axis=-1)
        unit = offsets / np.maximum(distance, 1e-6)[..., None]
        edema = distance < radius * lesion.edema_fraction * lesion.edema.radius_factor(unit)
        seg[box][edema & parenchyma[box] & (seg[box] == 0)] = SNFH
        core_distance = distance / (radius * lesion.core.radius_factor(unit))
        inside = anatomy.brain[box]
        seg[box][(core_distance < 1) & inside] = ET
        seg[box][(core_distance < lesion.necrosis_fraction) & inside] = NETC
    return seg
