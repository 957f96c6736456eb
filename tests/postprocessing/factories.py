"""Tiny tuning cases: saved probabilities (.npz, as `predict --save-probabilities` writes them) and references."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from tests.factories import write_volume
from transunet3d.data.labels import DEFAULT_SCHEME, SCHEMES, LabelScheme
from transunet3d.evaluation.case import CaseResult, evaluate_labels
from transunet3d.postprocessing import PostprocessSettings, TuningCase

SHAPE = (24, 24, 24)


def write_tuning_case(folder: Path, name: str, probabilities: np.ndarray, reference: np.ndarray,
                      zooms: tuple[float, float, float] = (1.0, 1.0, 1.0),
                      regions: tuple[str, ...] = ("WT", "TC", "ET")) -> TuningCase:
    """`folder/<name>_probabilities.npz` (of `regions`) and `folder/<name>-seg.nii.gz` with voxels of `zooms`
    (mm)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}_probabilities.npz"
    np.savez_compressed(path, probabilities=probabilities.astype(np.float16), regions=np.array(regions))
    reference_path = write_volume(folder / f"{name}-seg.nii.gz", reference.astype(np.uint8), np.diag([*zooms, 1.0]))
    return TuningCase(path, reference_path)


def lesion(labels: np.ndarray, corner: tuple[int, int, int], size: int) -> None:
    """A cubic lesion of `size` voxels a side: edema, a necrotic core inside, an enhancing centre inside that."""
    x, y, z = corner
    labels[x:x + size, y:y + size, z:z + size] = 2
    labels[x + 1:x + size - 1, y + 1:y + size - 1, z + 1:z + size - 1] = 1
    labels[x + 2:x + size - 2, y + 2:y + size - 2, z + 2:z + size - 2] = 3


def confident(labels: np.ndarray, scheme: LabelScheme = SCHEMES[DEFAULT_SCHEME]) -> np.ndarray:
    """Probabilities 0.9 inside each region of `labels` and 0 outside: every threshold gives back `labels`."""
    return np.where(scheme.labels_to_regions(labels), 0.9, 0.0).astype(np.float32)


def random_case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random probabilities and a reference that partly agrees with them: hits, misses, false positives, and
    many voxels between 0.3 and 0.7, so that every setting labels something else."""
    rng = np.random.default_rng(seed)
    smooth = [ndimage.gaussian_filter(rng.standard_normal(SHAPE), 1.5) for _ in range(4)]
    base = smooth[0] / smooth[0].std()
    probabilities, reference = np.zeros((3, *SHAPE), dtype=np.float32), np.zeros(SHAPE, dtype=np.uint8)
    for index, (fraction, label) in enumerate(((0.15, 2), (0.07, 1), (0.03, 3))):
        field = base + 0.5 * smooth[index + 1] / smooth[index + 1].std()
        probabilities[index] = np.clip(0.5 + 0.4 * (field - np.quantile(field, 1 - fraction)), 0, 1)
        truth = base + 0.7 * rng.standard_normal(SHAPE)
        reference[truth > np.quantile(truth, 1 - fraction)] = label
    return probabilities, reference


def evaluated(case: TuningCase, settings: PostprocessSettings) -> CaseResult:
    """The case as `transunet3d evaluate` scores the labels that `settings` make from its saved probabilities."""
    probabilities = np.load(case.probabilities)["probabilities"].astype(np.float32)
    reference = nib.load(case.reference)
    spacing = tuple(float(z) for z in reference.header.get_zooms()[:3])
    scores, _ = evaluate_labels(settings.labels(probabilities, spacing), np.asarray(reference.dataobj), spacing)
    return CaseResult(case.name, regions=scores)
