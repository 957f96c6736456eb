"""A reference for benchmarks: the BraTS 2023 lesion-wise algorithm in the official code's own style.

This re-states, step by step, what the challenge's evaluation script does (whole-volume arrays per lesion,
`get_fdata`, `binary_dilation` of the full volume, DeepMind's `compute_surface_distances`), so that
`bench_evaluate.py` can time our implementation against the same work and check that the numbers agree. It is
deliberately not optimised; it is not part of the package.
"""

from __future__ import annotations

import sys

import cc3d
import nibabel as nib
import numpy as np
from scipy import ndimage

np.Inf = np.inf  # the library predates NumPy 2
ndimage.filters = ndimage
ndimage.morphology = ndimage
from surface_distance import metrics as surface  # noqa: E402

REGIONS = {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}
STRUCTURE = ndimage.generate_binary_structure(3, 2)


def _dice(a, b):
    a, b = a.astype(bool), b.astype(bool)
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def _hd95(a, b, spacing):
    return surface.compute_robust_hausdorff(surface.compute_surface_distances(a.astype(bool), b.astype(bool),
                                                                              spacing), 95)


def _region(pred_file, ref_file, labels):
    pred_image, ref_image = nib.load(pred_file), nib.load(ref_file)
    pred = np.isin(pred_image.get_fdata(), labels).astype(np.float64)
    gt = np.isin(ref_image.get_fdata(), labels).astype(np.float64)
    sx, sy, sz = pred_image.header.get_zooms()[:3]
    both_empty = not gt.any() and not pred.any()
    legacy_dice = 1.0 if both_empty else _dice(pred, gt)
    legacy_hd95 = 0.0 if both_empty else _hd95(gt, pred, (sx, sy, sz))
    tp = np.logical_and(pred == 1, gt == 1).sum()
    sens = tp / (tp + (gt.sum() - tp) + sys.float_info.min)
    spec = np.count_nonzero((pred != 1) & (gt != 1)) / (
        np.count_nonzero((pred != 1) & (gt != 1)) + (pred.sum() - tp) + sys.float_info.min)
    if not pred.any() and not gt.any():
        sens = 1.0
    gt_cc = cc3d.connected_components(gt, connectivity=26)
    pred_cc = cc3d.connected_components(pred, connectivity=26)
    dilated_cc = cc3d.connected_components(ndimage.binary_dilation(gt, structure=STRUCTURE), connectivity=26)
    lesions = np.zeros_like(dilated_cc)
    for group in range(1, int(dilated_cc.max()) + 1):  # merge components that touch after dilation
        lesions += np.where((dilated_cc == group) * gt_cc > 0, group, 0).astype(lesions.dtype)
    matched_all, scores = [], []
    for lesion in range(1, int(lesions.max()) + 1):
        gt_lesion = (lesions == lesion).astype(np.int64)
        around = ndimage.binary_dilation(gt_lesion, structure=STRUCTURE)
        matched = [c for c in np.unique(pred_cc * around) if c != 0]
        matched_all += matched
        pred_lesion = np.isin(pred_cc, matched).astype(np.int64)
        volume = np.sum(gt_lesion) * sx * sy * sz
        hd = _hd95(gt_lesion, pred_lesion, (sx, sy, sz))
        scores.append((volume, _dice(pred_lesion, gt_lesion), 374.0 if np.isinf(hd) else hd, len(matched) > 0))
    fp = len(np.unique(pred_cc[np.isin(pred_cc, [*matched_all, 0], invert=True)]))
    kept = [s for s in scores if s[0] > 2]
    denominator = len(kept) + fp
    return {
        "lesionwise_dice": sum(s[1] for s in kept) / denominator if denominator else 1.0,
        "lesionwise_hd95": (sum(s[2] for s in kept) + 374.0 * fp) / denominator if denominator else 0.0,
        "legacy_dice": legacy_dice, "legacy_hd95": 374.0 if np.isinf(legacy_hd95) else legacy_hd95,
        "sensitivity": sens, "specificity": spec, "num_tp": sum(s[3] for s in kept),
        "num_fp": fp, "num_fn": sum(not s[3] for s in kept), "gt_volume": gt.sum() * sx * sy * sz,
    }


def evaluate_case(pred_file, ref_file) -> dict[str, dict[str, float]]:
    """Every number of one case, per region, the way the official script computes it."""
    return {region: _region(pred_file, ref_file, labels) for region, labels in REGIONS.items()}
