"""Pair predictions with reference segmentations by the BraTS case id (`00132-000`) in their file names."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from transunet3d.data.layout import NIFTI_NAME, entries_under
from transunet3d.errors import InputError
from transunet3d.files import is_temporary

# five and three digits, not part of a longer number: BraTS-MET-100001-000 is no name of case 00001-000
CASE_ID = re.compile(r"(?<!\d)\d{5}-\d{3}(?!\d)")
REFERENCE_NAME = re.compile(r"-seg\.nii(\.gz)?$", re.IGNORECASE)


@dataclass(frozen=True)
class CasePair:
    """A reference segmentation and its prediction (None when the prediction is missing)."""

    case: str
    reference: Path
    prediction: Path | None


@dataclass(frozen=True)
class Pairing:
    """The references with their predictions, the NIfTI files left out, each with the reason, and the pairs whose
    names carry different BraTS prefixes (for warnings)."""

    pairs: list[CasePair]
    ignored: list[tuple[Path, str]]
    other_prefix: list[CasePair] = field(default_factory=list)


PREFIX = re.compile(r"BraTS-([A-Za-z]+)-", re.IGNORECASE)  # the sub-challenge: MET, GLI, MEN, ...


def _other_prefix(pair: CasePair) -> bool:
    """Whether the prediction's name and the reference's name both carry a BraTS prefix, and different ones
    (`BraTS-GLI-00001-000.nii.gz` for `BraTS-MET-00001-000-seg.nii.gz`): paired by the number alone, as the
    official evaluations pair them, but more likely another dataset's case than a renamed one."""
    if pair.prediction is None:
        return False
    prefixes = [PREFIX.search(path.name) for path in (pair.prediction, pair.reference)]
    return None not in prefixes and len({match[1].upper() for match in prefixes}) == 2


def _nifti_files(folder: Path, role: str) -> list[Path]:
    """Every entry under `folder` named as a NIfTI file, without the unfinished outputs that an interrupted writer
    left. An entry that is not a readable file (a dangling link, a folder) stays in: reading it names the problem,
    where leaving it out would score its case as an empty prediction."""
    if not folder.exists():
        raise InputError(None, None, f"{folder}: {role} folder does not exist")
    if not folder.is_dir():
        raise InputError(None, None, f"{folder}: {role} path is not a folder")
    return sorted(path for path in entries_under(folder) if NIFTI_NAME.search(path.name) and not is_temporary(path))


def _by_case(files: list[Path], ignored: list[tuple[Path, str]]) -> dict[str, Path]:
    """The files by case id; those without one go to `ignored`."""
    found: dict[str, Path] = {}
    for path in files:
        ids = CASE_ID.findall(path.name)
        if not ids:
            ignored.append((path, "no case id (like 00132-000) in its name"))
            continue
        if ids[-1] in found:
            raise InputError(ids[-1], path, f"second file for this case (first: {found[ids[-1]]})")
        found[ids[-1]] = path
    return found


def pair_cases(pred_dir: str | Path, ref_dir: str | Path) -> Pairing:
    """Every reference (`…-seg.nii[.gz]`) with its prediction, and the files left out: predictions without a
    reference, and references or predictions without a case id in their name.

    Raises:
        InputError: a folder is missing, holds no reference, or holds two files for one case.
    """
    ignored: list[tuple[Path, str]] = []
    references = _by_case([p for p in _nifti_files(Path(ref_dir), "reference") if REFERENCE_NAME.search(p.name)],
                          ignored)
    if not references:
        raise InputError(None, None, f"{ref_dir}: no reference segmentations (…-seg.nii.gz with a case id) found")
    predictions = _by_case(_nifti_files(Path(pred_dir), "prediction"), ignored)
    pairs = [CasePair(case, path, predictions.get(case)) for case, path in sorted(references.items())]
    ignored += [(path, "no reference for this prediction") for case, path in sorted(predictions.items())
                if case not in references]
    return Pairing(pairs, ignored, [pair for pair in pairs if _other_prefix(pair)])
