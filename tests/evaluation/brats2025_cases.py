"""Label maps for the BraTS 2025 parity tests: seeded many-lesion cases with resection cavities, and edge cases.

Every case is (prediction, reference, voxel size). Labels: 1 NETC, 2 SNFH, 3 ET, 4 RC.
"""

from __future__ import annotations

import numpy as np

SHAPE = (48, 44, 40)


def _ball(labels: np.ndarray, centre, radius: float, value: int, spacing=(1.0, 1.0, 1.0)) -> None:
    grid = np.ogrid[tuple(slice(0, n) for n in labels.shape)]
    inside = sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, spacing)) <= radius**2
    labels[inside] = value


def _draw(shape, lesions, cavities, spacing) -> np.ndarray:
    """Cavities first, then each metastasis: edema, enhancing tumour, necrotic core (later labels overwrite)."""
    labels = np.zeros(shape, dtype=np.uint8)
    for centre, radius in cavities:
        _ball(labels, centre, radius, 4, spacing)
    for centre, radius, edema in lesions:
        if edema:
            _ball(labels, centre, radius * 1.8, 2, spacing)
        _ball(labels, centre, radius, 3, spacing)
        if radius > 2.5:
            _ball(labels, centre, radius * 0.5, 1, spacing)
    return labels


def many_lesion_case(seed: int, spacing=(1.0, 1.0, 1.0)) -> tuple[np.ndarray, np.ndarray, tuple]:
    """A reference with 8-16 metastases (some under 27 mm^3) and 1-3 cavities, and a prediction that misses some
    lesions, shifts and resizes the others and adds false positives."""
    rng = np.random.default_rng(seed)
    high = np.array(SHAPE) - 4

    def centre():
        return rng.integers(4, high)

    lesions = [(centre(), float(rng.choice([0.8, 1.2, 1.6, 2.5, 3.5, 5.0])), bool(rng.random() < 0.5))
               for _ in range(rng.integers(8, 17))]
    cavities = [(centre(), float(rng.uniform(2.0, 5.0))) for _ in range(rng.integers(1, 4))]
    predicted, predicted_cavities = [], []
    for position, radius, edema in lesions:
        if rng.random() < 0.2:
            continue  # missed
        shift = rng.integers(-1, 2, size=3)
        predicted.append((position + shift, radius * rng.uniform(0.7, 1.3), edema and rng.random() < 0.8))
    predicted += [(centre(), float(rng.choice([0.8, 1.6, 3.0])), False) for _ in range(rng.integers(0, 4))]
    for position, radius in cavities:
        if rng.random() < 0.8:
            predicted_cavities.append((position + rng.integers(-1, 2, size=3), radius * rng.uniform(0.8, 1.2)))
    if rng.random() < 0.5:
        predicted_cavities.append((centre(), 2.0))
    return _draw(SHAPE, predicted, predicted_cavities, spacing), _draw(SHAPE, lesions, cavities, spacing), spacing


def _boxes(*boxes) -> np.ndarray:
    labels = np.zeros(SHAPE, dtype=np.uint8)
    for (x0, x1), (y0, y1), (z0, z1), value in boxes:
        labels[x0:x1, y0:y1, z0:z1] = value
    return labels


def edge_cases() -> dict[str, tuple[np.ndarray, np.ndarray, tuple]]:
    """Hand-made cases for the package's edge cases, each (prediction, reference, spacing)."""
    lesions = _boxes(((5, 10), (5, 10), (5, 10), 3), ((20, 23), (20, 23), (20, 23), 1), ((30, 36), (8, 12), (4, 9), 2),
                     ((40, 44), (30, 36), (30, 36), 4))
    one = (1.0, 1.0, 1.0)
    return {
        "both-empty": (np.zeros(SHAPE, np.uint8), np.zeros(SHAPE, np.uint8), one),
        "empty-reference": (lesions, np.zeros(SHAPE, np.uint8), one),
        "empty-prediction": (np.zeros(SHAPE, np.uint8), lesions, (0.9, 1.0, 1.2)),
        # Lesions under 27 mm^3: detected (Dice >= 0.2), matched below 0.2, missed; and one false positive.
        "small-lesions": (
            _boxes(((5, 7), (5, 7), (5, 7), 3), ((20, 21), (20, 21), (20, 22), 3), ((35, 37), (35, 37), (30, 31), 3)),
            _boxes(((5, 7), (5, 7), (5, 8), 3), ((20, 23), (20, 23), (20, 22), 3), ((10, 12), (30, 32), (30, 32), 3)),
            one),
        # No overlap anywhere: every lesion missed, every component a false positive, global HD95 infinite (373).
        "no-overlap": (_boxes(((12, 17), (5, 10), (5, 10), 3), ((20, 23), (26, 29), (20, 23), 4)),
                       _boxes(((5, 10), (5, 10), (5, 10), 3), ((20, 23), (20, 23), (20, 23), 4)), (1.0, 0.8, 1.5)),
        # Lesions on the faces of the volume (outside it is background), one of exactly 27 mm^3 (large: >= 27).
        "volume-faces": (
            _boxes(((0, 3), (0, 3), (1, 4), 3), ((44, 48), (40, 44), (36, 40), 4), ((0, 2), (20, 30), (0, 40), 2)),
            _boxes(((0, 3), (0, 3), (0, 3), 3), ((45, 48), (41, 44), (37, 40), 4), ((0, 3), (22, 28), (0, 40), 2)),
            one),
        # A large lesion matched with Dice < 0.2, and split predictions whose parts tie in Dice (80/290 each, of
        # different shapes): only the components' numbering decides which part is matched.
        "ties-and-splits": (
            _boxes(((5, 6), (5, 7), (5, 7), 3), ((20, 22), (5, 10), (6, 10), 3), ((24, 29), (5, 7), (5, 9), 3),
                   ((30, 32), (20, 22), (20, 22), 3), ((34, 36), (20, 22), (20, 22), 3)),
            _boxes(((5, 9), (5, 9), (5, 9), 3), ((20, 30), (5, 10), (5, 10), 3), ((31, 35), (20, 22), (20, 22), 3)),
            (0.8594, 0.8594, 1.5)),
    }


def parity_cases() -> dict[str, tuple[np.ndarray, np.ndarray, tuple]]:
    """Every generated case by a BraTS case id (the files are paired by it)."""
    spacings = [(1.0, 1.0, 1.0), (0.8594, 0.8594, 1.5), (0.5, 0.5, 1.0), (1.2, 0.9, 2.0), (1.0, 1.0, 1.0),
                (1.0, 1.0, 1.0)]
    cases = {f"900{seed:02d}-000": many_lesion_case(seed, spacing) for seed, spacing in enumerate(spacings)}
    cases.update({f"901{i:02d}-000": case for i, case in enumerate(edge_cases().values())})
    return cases


EDGE_CASE_IDS = {name: f"901{i:02d}-000" for i, name in enumerate(edge_cases())}


def _rotation(degrees: float, axis: int) -> np.ndarray:
    angle, (i, j) = np.radians(degrees), [(1, 2), (0, 2), (0, 1)][axis]
    rotation = np.eye(3)
    rotation[i, i] = rotation[j, j] = np.cos(angle)
    rotation[i, j], rotation[j, i] = -np.sin(angle), np.sin(angle)
    return rotation


def stored_cases() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, str, float, float]]:
    """Many-lesion cases stored as scanners write them, by case id: (prediction, reference, affine, dtype, scl_slope,
    scl_inter), the stored voxels being (label - scl_inter) / scl_slope exactly.

    Voxel axes that run along other world axes, flipped, with a different voxel size each (the package hands its
    distances the voxel sizes in reverse axis order); an oblique rotation; integer and float voxels with a scaling.
    """
    axes = {"permuted": np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]),
            "oblique": _rotation(25, 2) @ _rotation(-10, 0), "flipped": np.diag([-1.0, 1.0, -1.0])}
    stored = {"permuted": ((0.6, 1.1, 2.2), "int16", 1.0, -1.0), "oblique": ((0.9, 0.9, 1.4), "float32", 0.5, 0.0),
              "flipped": ((1.5, 0.7, 1.0), "uint8", 0.5, 0.0)}
    cases = {}
    for i, (name, (spacing, dtype, slope, inter)) in enumerate(stored.items()):
        prediction, reference, _ = many_lesion_case(10 + i, spacing)
        affine = np.eye(4)
        affine[:3, :3] = axes[name] @ np.diag(spacing)
        affine[:3, 3] = (-91.5, 12.25, -40.0)
        cases[f"902{i:02d}-000"] = (prediction, reference, affine, dtype, slope, inter)
    return cases
