"""Deterministic k-fold cross-validation splits, grouped by patient so time points never straddle folds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from transunet3d.data.cache import DATASET_FILE, SPLITS_FILE, cached_case_ids, open_case, read_dataset
from transunet3d.data.layout import patient_id
from transunet3d.errors import InputError, UserError
from transunet3d.files import read_json, write_json

Split = dict[str, list[str]]


def make_splits(case_ids: list[str], folds: int, seed: int, setting: str = "data.num_folds") -> list[Split]:
    """`folds` train/val splits: patients shuffled with `seed`, dealt into folds of near-equal size.

    Every case is in exactly one validation fold; all cases of one patient share that fold.

    Args:
        setting: where the fold count came from (the config's `data.num_folds`, or `splits --folds`), named in
            the error so that the user knows what to change.

    Raises:
        UserError: fewer than 2 folds, or more folds than patients.
    """
    patients = sorted({patient_id(case_id) for case_id in case_ids})
    if folds < 2:
        raise UserError(f"{setting}: must be at least 2, not {folds}")
    if folds > len(patients):
        raise UserError(f"{setting}: cannot make {folds} folds from {len(patients)} patients "
                        "(each fold needs a patient of its own)")
    order = np.random.default_rng(seed).permutation(len(patients))
    fold_of = {patients[index]: fold for fold, chunk in enumerate(np.array_split(order, folds)) for index in chunk}
    return [
        {
            "train": sorted(c for c in case_ids if fold_of[patient_id(c)] != fold),
            "val": sorted(c for c in case_ids if fold_of[patient_id(c)] == fold),
        }
        for fold in range(folds)
    ]


def preprocessed_case_ids(preprocessed: str | Path) -> list[str]:
    """The cases that the cache's dataset.json lists (those preprocessed at its target spacing and label scheme),
    sorted, each still complete.

    Raises:
        InputError: the folder does not exist or lists no case.
        UserError: dataset.json is missing or damaged, or a case it lists is now missing or incomplete: leaving it
            out would split, train and validate on fewer cases without a word.
    """
    root = Path(preprocessed)
    if not root.is_dir():
        raise InputError(None, None, f"{root}: not a folder")
    listed = sorted(read_dataset(root)["cases"])
    if not listed:
        raise InputError(None, None, f"{root}: no preprocessed cases found (run `transunet3d preprocess` first)")
    complete = set(cached_case_ids(root))
    lost = [case for case in listed if case not in complete]
    if lost:
        shown = ", ".join(lost[:3]) + (", ..." if len(lost) > 3 else "")
        raise UserError(f"{root}: {len(lost)} case(s) that {DATASET_FILE} lists are missing or incomplete ({shown}); "
                        "preprocess into the folder again (it redoes only those)")
    for case_id in listed:  # their arrays' headers: a truncated or misshapen one is named now, not in training
        try:
            open_case(root, case_id)
        except FileNotFoundError as error:
            raise UserError(f"{error.filename or root}: missing from the preprocessed cache (case {case_id}); remove "
                            "the case's files and preprocess it again") from None
    return listed


def write_splits(preprocessed: str | Path, folds: int, seed: int, setting: str = "data.num_folds") -> Path:
    """Make splits for the complete cases of a preprocessed folder and save them as its `splits.json`
    (`setting`: as for `make_splits`)."""
    path = Path(preprocessed) / SPLITS_FILE
    write_json(path, make_splits(preprocessed_case_ids(preprocessed), folds, seed, setting))
    return path


def read_splits(path: str | Path) -> list[Split]:
    """Splits as `write_splits` saved them, checked: a list of {"train": [...], "val": [...]} of case ids.

    Raises:
        UserError: the file is missing, damaged or not splits, naming it.
    """
    splits = read_json(path)
    if not isinstance(splits, list) or not splits or not all(map(_is_split, splits)):
        raise UserError(f"{path}: damaged, not a list of folds with 'train' and 'val' case lists")
    if len(splits) < 2:
        raise UserError(f"{path}: holds {len(splits)} fold; a cross-validation needs at least 2")
    validated: dict[str, int] = {}
    for fold, split in enumerate(splits):
        if not split["train"]:
            raise UserError(f"{path}: fold {fold} has no training case")
        if not split["val"]:  # it would train, then have nothing to validate or pool
            raise UserError(f"{path}: fold {fold} has no validation case")
        leaked = sorted(set(split["train"]) & set(split["val"]))
        if leaked:  # its out-of-fold score would count cases the model trained on
            raise UserError(f"{path}: fold {fold} validates on case(s) it trains on ({_listed(leaked)})")
        repeated = sorted(case for case in set(split["val"]) if case in validated)
        if repeated:  # the pooled out-of-fold score would count them twice
            raise UserError(f"{path}: folds {validated[repeated[0]]} and {fold} both validate on "
                            f"{_listed(repeated)}; each case is validated by one fold at most")
        validated.update(dict.fromkeys(split["val"], fold))
    return splits


def _listed(cases: list[str]) -> str:
    return ", ".join(cases[:3]) + (", ..." if len(cases) > 3 else "")


def _is_split(split: object) -> bool:
    return isinstance(split, dict) and all(
        isinstance(split.get(part), list) and all(isinstance(case, str) for case in split[part])
        for part in ("train", "val"))
