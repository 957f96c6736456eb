"""Pair predictions with reference segmentations by the BraTS case id (`00132-000`) in their file names."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from transunet3d.errors import InputError
from transunet3d.files import is_temporary

CASE_ID = re.compile(r"\d{5}-\d{3}")


@dataclass(frozen=True)
class CasePair:
    """A reference segmentation and its prediction (None when the prediction is missing)."""

    case: str
    reference: Path
    prediction: Path | None


def _nifti_files(folder: Path, role: str) -> list[Path]:
    """The NIfTI files under `folder`, without the unfinished outputs that an interrupted writer left."""
    if not folder.exists():
        raise InputError(None, None, f"{folder}: {role} folder does not exist")
    if not folder.is_dir():
        raise InputError(None, None, f"{folder}: {role} path is not a folder")
    return sorted(p for p in folder.rglob("*.nii*")
                  if p.is_file() and p.name.endswith((".nii", ".nii.gz")) and not is_temporary(p))


def _by_case(files: list[Path]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in files:
        ids = CASE_ID.findall(path.name)
        if not ids:
            continue
        if ids[-1] in found:
            raise InputError(ids[-1], path, f"second file for this case (first: {found[ids[-1]]})")
        found[ids[-1]] = path
    return found


def pair_cases(pred_dir: str | Path, ref_dir: str | Path) -> tuple[list[CasePair], list[Path]]:
    """Every reference (`…-seg.nii[.gz]`) with its prediction, and the predictions that have no reference.

    Raises:
        InputError: a folder is missing, holds no reference, or holds two files for one case.
    """
    references = _by_case([p for p in _nifti_files(Path(ref_dir), "reference")
                           if re.search(r"-seg\.nii(\.gz)?$", p.name)])
    if not references:
        raise InputError(None, None, f"{ref_dir}: no reference segmentations (…-seg.nii.gz with a case id) found")
    predictions = _by_case(_nifti_files(Path(pred_dir), "prediction"))
    pairs = [CasePair(case, path, predictions.get(case)) for case, path in sorted(references.items())]
    orphans = [path for case, path in sorted(predictions.items()) if case not in references]
    return pairs, orphans
