"""Deterministic k-fold cross-validation splits, grouped by patient so time points never straddle folds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from transunet3d.data.cache import SPLITS_FILE, cached_case_ids
from transunet3d.data.layout import patient_id
from transunet3d.errors import InputError, UserError
from transunet3d.files import write_json

Split = dict[str, list[str]]


def make_splits(case_ids: list[str], folds: int, seed: int) -> list[Split]:
    """`folds` train/val splits: patients shuffled with `seed`, dealt into folds of near-equal size.

    Every case is in exactly one validation fold; all cases of one patient share that fold.
    """
    patients = sorted({patient_id(case_id) for case_id in case_ids})
    if folds < 2:
        raise UserError(f"--folds must be at least 2, got {folds}")
    if folds > len(patients):
        raise UserError(f"cannot make {folds} folds from {len(patients)} patients")
    order = np.random.default_rng(seed).permutation(len(patients))
    fold_of = {patients[index]: fold for fold, chunk in enumerate(np.array_split(order, folds)) for index in chunk}
    return [
        {
            "train": sorted(c for c in case_ids if fold_of[patient_id(c)] != fold),
            "val": sorted(c for c in case_ids if fold_of[patient_id(c)] == fold),
        }
        for fold in range(folds)
    ]


def write_splits(preprocessed: str | Path, folds: int, seed: int) -> Path:
    """Make splits for the complete cases of a preprocessed folder and save them as its `splits.json`."""
    root = Path(preprocessed)
    if not root.is_dir():
        raise InputError(None, None, f"{root}: not a folder")
    case_ids = cached_case_ids(root)
    if not case_ids:
        raise InputError(None, None, f"{root}: no preprocessed cases found (run `transunet3d preprocess` first)")
    path = root / SPLITS_FILE
    write_json(path, make_splits(case_ids, folds, seed))
    return path
