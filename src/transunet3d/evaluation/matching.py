"""Lesions as connected components, matched one to one by maximum bipartite matching on Dice (BraTS 2025 rules).

This is what the official `brats-evaluation` package does through panoptica: 26-connected components of each
region (no dilation, no merging), then the assignment of reference to predicted components that maximises the
summed Dice, among the pairs with Dice >= 1e-6 (SciPy's `linear_sum_assignment` on the cost 1 - Dice).
"""

from __future__ import annotations

from dataclasses import dataclass

import cc3d
import numpy as np
from scipy.optimize import linear_sum_assignment

MATCHING_THRESHOLD = 1e-6  # the mets config's `matching_threshold`: Dice at least this makes a pair matchable
_UNMATCHABLE_COST = 1.0 + 1e-6  # the package's cost of a pair below the threshold
_COUNTED_PAIRS = 1 << 22  # up to this many (reference, prediction) label pairs, overlaps are counted in a table


def components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """26-connected components of a boolean (X, Y, Z) mask, numbered as the package numbers them.

    The package reads NIfTI files with SimpleITK, whose arrays are indexed (z, y, x), and cc3d numbers components
    in the order their first voxel appears in memory. Numbering our (x, y, z) array in Fortran order is the same
    order, and with it the same ties are broken the same way in the matching.
    """
    labels, count = cc3d.connected_components(np.asfortranarray(mask), connectivity=26, return_N=True)
    return labels, int(count)


@dataclass(frozen=True)
class InstanceMatching:
    """The one-to-one matching of reference components (1..n_ref) with predicted components (1..n_pred)."""

    pairs: dict[int, int]  # reference component -> its predicted component
    dice: dict[int, float]  # reference component -> Dice with its predicted component
    reference_sizes: np.ndarray  # voxels per reference component (index 0 unused)
    prediction_sizes: np.ndarray  # voxels per predicted component (index 0 unused)

    @property
    def false_positives(self) -> tuple[int, ...]:
        """The predicted components matched to no reference component."""
        matched = set(self.pairs.values())
        return tuple(p for p in range(1, len(self.prediction_sizes)) if p not in matched)


def match_components(reference: np.ndarray, n_reference: int, prediction: np.ndarray, n_prediction: int,
                     foreground: np.ndarray | None = None) -> InstanceMatching:
    """Match labelled components of one shape (0 is background) one to one by maximum summed Dice.

    Only voxels in either mask are looked at, so the work follows the lesions, not the volume.

    Args:
        foreground: where either side has a component (boolean, the same shape), when the caller has it at hand:
            finding those voxels in a boolean array costs a fifth of finding them in the labels.
    """
    if foreground is None:
        foreground = (reference != 0) | (prediction != 0)
    voxels = np.flatnonzero(foreground.ravel(order="F"))
    ref_at, pred_at = reference.ravel(order="F")[voxels], prediction.ravel(order="F")[voxels]
    reference_sizes = np.bincount(ref_at, minlength=n_reference + 1)
    prediction_sizes = np.bincount(pred_at, minlength=n_prediction + 1)
    both = (ref_at != 0) & (pred_at != 0)
    codes = ref_at[both].astype(np.int64) * (n_prediction + 1) + pred_at[both]
    if (n_reference + 1) * (n_prediction + 1) <= _COUNTED_PAIRS:  # a table of every pair is cheaper than a sort
        table = np.bincount(codes, minlength=(n_reference + 1) * (n_prediction + 1))
        codes = np.flatnonzero(table)
        overlaps = table[codes]
    else:
        codes, overlaps = np.unique(codes, return_counts=True)
    pair_ref, pair_pred = np.divmod(codes, n_prediction + 1)
    # Dice as the package computes it: float64 counts, 2 * overlap / (sum of sizes).
    dice = 2.0 * overlaps.astype(np.float64) / (reference_sizes[pair_ref].astype(np.float64)
                                                 + prediction_sizes[pair_pred].astype(np.float64))
    pairs: dict[int, int] = {}
    if n_reference and n_prediction:
        cost = np.full((n_reference, n_prediction), _UNMATCHABLE_COST)
        matchable = dice >= MATCHING_THRESHOLD
        cost[pair_ref[matchable] - 1, pair_pred[matchable] - 1] = 1.0 - dice[matchable]
        rows, columns = linear_sum_assignment(cost)
        pairs = {int(r) + 1: int(c) + 1 for r, c in zip(rows, columns) if cost[r, c] < 1.0}
    pair_dice = {(int(r), int(p)): float(d) for r, p, d in zip(pair_ref, pair_pred, dice)}
    return InstanceMatching(pairs, {r: pair_dice[(r, p)] for r, p in pairs.items()}, reference_sizes,
                            prediction_sizes)
