"""The models a run can hold: cross-validation folds 0..K-1 and one model trained on every case ("all-data").

This module alone knows how a fold is spelled on the command line (`3`, `0,3,5`, `all-data`); which sub-folder
of a run holds it is the run layout's business (runs/layout.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from transunet3d.errors import UserError

ALL_DATA = "all-data"  # every training case, no validation: the paper's validation-phase submission
Fold = int | Literal["all-data"]


def parse_fold(text: str) -> Fold:
    """One fold as the command line writes it: a number, or 'all-data'."""
    fold = _fold(text)
    if fold is None:
        raise UserError(f"--fold {text!r}: neither a fold number nor {ALL_DATA!r}")
    return fold


def _fold(text: str) -> Fold | None:
    text = text.strip()
    if text == ALL_DATA:
        return ALL_DATA
    # not '²', which isdigit() takes and int() refuses
    return int(text) if text.isascii() and text.isdigit() else None


def parse_fold_list(text: str) -> list[Fold]:
    """Folds as a comma-separated list ("0,3,5,7,9"), each once, in the order given."""
    folds = [_fold(part) for part in text.split(",")]
    if None in folds:
        part = text.split(",")[folds.index(None)].strip()
        raise UserError(f"--fold {text!r}: {part!r} is neither a fold number nor {ALL_DATA!r}")
    if len(set(folds)) != len(folds):
        raise UserError(f"--fold {text!r} names a fold twice")
    return folds


def fold_label(fold: Fold) -> str:
    """How logs and records name a fold."""
    return ALL_DATA if fold == ALL_DATA else f"fold {fold}"


def draw_folds(folds: list[int], count: int, seed: int) -> list[int]:
    """`count` of the cross-validation `folds` drawn at random with `seed` (the paper's 5 of 10), sorted."""
    if not 1 <= count <= len(folds):
        raise UserError(f"cannot draw {count} of {len(folds)} cross-validation folds")
    chosen = np.random.default_rng(seed).choice(sorted(folds), size=count, replace=False)
    return sorted(int(fold) for fold in chosen)


def select_folds(present: list[Fold], where: str | Path, fold: str | None = None, draw: int | None = None,
                 seed: int = 0) -> list[Fold]:
    """The folds of a run (training run or exported folder) that a fold choice names, in order.

    Args:
        present: the folds the run holds (cross-validation folds and/or the all-data model).
        where: the run, for messages.
        fold: None (every cross-validation fold; the all-data model when there are none), "all" (every
            cross-validation fold), or a comma list of fold numbers and "all-data" ("0,3,5").
        draw: instead of `fold`, this many cross-validation folds drawn at random with `seed`.

    Raises:
        UserError: the run has no such fold.
    """
    numbered = sorted(f for f in present if f != ALL_DATA)
    if draw is not None:
        return draw_folds(numbered, draw, seed)
    if fold is None and not numbered:
        return [ALL_DATA]
    if fold in (None, "all"):
        if not numbered:
            raise UserError(f"{where}: holds no cross-validation folds, only the {ALL_DATA} model")
        return numbered
    chosen = parse_fold_list(fold)
    missing = [str(f) for f in chosen if f not in present]
    if missing:
        listed = ", ".join(map(str, [*numbered, *([ALL_DATA] if ALL_DATA in present else [])]))
        raise UserError(f"{where}: no fold {', '.join(missing)!r}; it has folds {listed}")
    return chosen
