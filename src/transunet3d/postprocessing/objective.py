"""The tuning objective of one case: the lesion-wise Dice per region that `transunet3d evaluate` gives the labels
which post-processing settings make from the case's saved probabilities."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transunet3d.data.crop import mask_bounds, union_bounds
from transunet3d.data.labels import DEFAULT_SCHEME, SCHEMES, LabelScheme
from transunet3d.data.nifti import load_header_3d, voxel_size
from transunet3d.data.validate import read_label_map
from transunet3d.errors import InputError, UserError
from transunet3d.evaluation.lesionwise import ReferenceLesions
from transunet3d.postprocessing.rules import PostprocessSettings


@dataclass(frozen=True)
class TuningCase:
    """One case to tune on: the probabilities `predict --save-probabilities` saved (.npz) and its reference labels."""

    probabilities: Path
    reference: Path

    @property
    def name(self) -> str:
        return Path(self.probabilities).name.removesuffix("_probabilities.npz")


class CaseObjective:
    """One case, read once, that scores any number of settings.

    Everything happens on the box that holds the reference and every voxel above `lowest_threshold` in some region:
    no settings with thresholds from there up label anything outside it, and lesion-wise scores do not change
    when empty borders are cut (which the evaluator relies on as well). The regions are those of `scheme`.
    """

    def __init__(self, probabilities: np.ndarray, reference: np.ndarray, spacing: Sequence[float],
                 lowest_threshold: float, scheme: LabelScheme = SCHEMES[DEFAULT_SCHEME]):
        # Rounding is monotonic: a voxel above any t >= lowest_threshold, compared in float32 or in the array's own
        # precision, is at least lowest_threshold rounded to that precision.
        above = probabilities.max(axis=0) >= np.asarray(lowest_threshold, dtype=probabilities.dtype)
        bounds = union_bounds(mask_bounds(above), mask_bounds(reference)) or ((0, 1),) * 3
        box = tuple(slice(lo, hi) for lo, hi in bounds)
        # float32, as the predictor thresholds them: float16 thresholds would round 0.7 up to 0.7002
        self.probabilities = probabilities[(slice(None), *box)].astype(np.float32)
        self.spacing = tuple(float(s) for s in spacing)
        self.scheme = scheme
        self.references = [ReferenceLesions.of(scheme.region_mask(reference[box], region), self.spacing)
                           for region in scheme.region_names]
        # Settings that change one region often leave the masks of the others as they were: score each mask once.
        self._scored: dict[tuple[int, bytes], float] = {}

    @classmethod
    def load(cls, case: TuningCase, lowest_threshold: float,
             scheme: LabelScheme = SCHEMES[DEFAULT_SCHEME]) -> CaseObjective:
        """Read the case's files, of the label scheme `scheme`; the voxel spacing comes from the reference's
        affine."""
        header = load_header_3d(case.reference, case.name)
        reference = read_label_map(header, case.reference, case.name, scheme.labels)
        probabilities = _read_probabilities(case, scheme.region_names)
        if probabilities.shape != (len(scheme.regions), *reference.shape):
            raise InputError(case.name, case.probabilities, f"probabilities of shape {probabilities.shape} do not "
                             f"fit the reference {case.reference.name} of shape {reference.shape}")
        return cls(probabilities, reference, voxel_size(header), lowest_threshold, scheme)

    def region_dice(self, settings: PostprocessSettings) -> tuple[float, ...]:
        """Lesion-wise Dice per region of the scheme (WT, TC, ET, ...) of the labels `settings` make; 1 where both
        maps are empty."""
        labels = settings.labels(self.probabilities, self.spacing)
        return tuple(self._dice(index, self.scheme.region_mask(labels, region))
                     for index, region in enumerate(self.scheme.region_names))

    def _dice(self, index: int, mask: np.ndarray) -> float:
        key = (index, hashlib.blake2b(np.packbits(mask)).digest())
        if key not in self._scored:
            self._scored[key] = self.references[index].match(mask).lesionwise_dice
        return self._scored[key]


def _read_probabilities(case: TuningCase, expected: tuple[str, ...]) -> np.ndarray:
    """The saved probabilities (R, X, Y, Z) of the regions `expected`, float16 as saved; unreadable files, and
    files of other regions, raise InputError."""
    try:
        with np.load(case.probabilities) as saved:
            regions, probabilities = tuple(str(r) for r in saved["regions"]), saved["probabilities"]
    except (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as error:
        raise InputError(case.name, case.probabilities, f"cannot be read as saved probabilities ({error})") from None
    if regions != expected:
        raise InputError(case.name, case.probabilities, f"holds the regions {regions}, not {expected}")
    if not (probabilities.dtype.kind == "f" and np.all((probabilities >= 0) & (probabilities <= 1))):  # NaN fails
        raise InputError(case.name, case.probabilities, "holds values that are not probabilities (NaN, or outside "
                                                        "0-1)")
    return probabilities


def score_candidates(job: tuple[TuningCase, Sequence[PostprocessSettings]]) -> np.ndarray:
    """Lesion-wise Dice (candidates, regions) of one case under each candidate settings (all of one label scheme),
    reading the case once."""
    case, candidates = job
    try:
        objective = CaseObjective.load(case, min(min(settings.thresholds) for settings in candidates),
                                       candidates[0].scheme)
    except InputError as error:
        raise UserError(str(error)) from None  # InputError's own arguments do not survive a worker process
    return np.array([objective.region_dice(settings) for settings in candidates], dtype=np.float64)
