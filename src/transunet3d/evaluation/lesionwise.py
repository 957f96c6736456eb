"""BraTS 2023 lesion-wise metrics (BraTS-MET settings), numerically identical to the challenge's code.

Per region: 26-connected components; ground-truth components that touch after one 18-connected dilation form
one lesion; each lesion is matched with every predicted component touching its own one-voxel dilation and scored
against their union; unmatched predicted components are false positives; lesions of <= 2 mm^3 are ignored.
All work per lesion happens on bounding boxes, and components are computed once per region.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import cc3d
import numpy as np
from scipy import ndimage

from transunet3d.data.crop import mask_bounds
from transunet3d.evaluation.surface import robust_hausdorff, surface_distances

REGION_LABELS: dict[str, tuple[int, ...]] = {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}
MISSED_HD95 = 374.0  # the challenge's penalty distance (mm) for missed lesions and false positives
MIN_LESION_MM3 = 2.0  # BraTS-MET: ground-truth lesions of at most this volume are ignored
_DILATION = ndimage.generate_binary_structure(3, 2)  # 18-connected, one iteration


@dataclass
class Lesion:
    """One ground-truth lesion and how the prediction covers it."""

    label: int  # id among the region's merged ground-truth lesions (1-based)
    volume_mm3: float
    matched: tuple[int, ...]  # ids of the predicted components that touch it
    dice: float
    hd95: float
    counted: bool  # False for lesions of <= MIN_LESION_MM3, which the challenge ignores


@dataclass
class RegionScores:
    """Every number the official code reports for one region of one case, plus the per-lesion detail."""

    lesionwise_dice: float
    lesionwise_hd95: float
    legacy_dice: float
    legacy_hd95: float
    sensitivity: float
    specificity: float
    num_tp: int
    num_fp: int
    num_fn: int
    gt_volume: float
    lesions: list[Lesion] = field(default_factory=list)
    false_positives: tuple[int, ...] = ()
    pred_components: np.ndarray | None = None  # labelled predicted components, for reports
    gt_lesions: np.ndarray | None = None  # labelled merged ground-truth lesions, for reports


def region_mask(labels: np.ndarray, region: str) -> np.ndarray:
    """Voxels whose label value belongs to `region` (exact comparison: 1.5 or 4 belong to no region)."""
    return np.isin(labels, REGION_LABELS[region])


def score_region(
    pred: np.ndarray, gt: np.ndarray, spacing: tuple[float, float, float], volume_voxels: int | None = None
) -> RegionScores:
    """Lesion-wise and legacy scores of boolean masks `pred` vs `gt` with voxel `spacing` (mm).

    The masks may be a crop of the volume that holds every labelled voxel of both: the scores are the same, and
    `volume_voxels` (the uncropped size) keeps the specificity's true negatives right.
    """
    voxel_mm3 = tuple(float(s) for s in spacing)  # the official volume is count * sx * sy * sz, left to right
    pred_components = cc3d.connected_components(pred, connectivity=26)
    gt_lesions = merged_lesions(gt)
    boxes = cc3d.statistics(pred_components)["bounding_boxes"]
    lesions = [_score_lesion(label, box, gt_lesions, pred_components, boxes, spacing, voxel_mm3)
               for label, box in _lesion_boxes(gt_lesions)]
    matched = {c for lesion in lesions for c in lesion.matched}
    false_positives = tuple(c for c in range(1, int(pred_components.max()) + 1) if c not in matched)
    kept = [lesion for lesion in lesions if lesion.counted]
    denominator = len(kept) + len(false_positives)
    legacy_dice, legacy_hd95 = _legacy(pred, gt, spacing)
    sensitivity, specificity = _sensitivity_specificity(pred, gt, volume_voxels or pred.size)
    return RegionScores(
        lesionwise_dice=sum(lesion.dice for lesion in kept) / denominator if denominator else 1.0,
        lesionwise_hd95=(sum(lesion.hd95 for lesion in kept) + MISSED_HD95 * len(false_positives)) / denominator
        if denominator else 0.0,
        legacy_dice=legacy_dice,
        legacy_hd95=legacy_hd95,
        sensitivity=sensitivity,
        specificity=specificity,
        num_tp=sum(1 for lesion in kept if lesion.matched),
        num_fp=len(false_positives),
        num_fn=sum(1 for lesion in kept if not lesion.matched),
        gt_volume=float(np.count_nonzero(gt)) * voxel_mm3[0] * voxel_mm3[1] * voxel_mm3[2],
        lesions=lesions,
        false_positives=false_positives,
        pred_components=pred_components,
        gt_lesions=gt_lesions,
    )


def merged_lesions(gt: np.ndarray) -> np.ndarray:
    """Ground-truth lesion labels: 26-connected components merged when they touch after one 18-dilation."""
    lesions = np.zeros(gt.shape, dtype=np.uint32)
    if not gt.any():
        return lesions
    box = _grow(tuple(slice(lo, hi) for lo, hi in mask_bounds(gt)), 1, gt.shape)
    dilated = ndimage.binary_dilation(gt[box], structure=_DILATION)
    groups = cc3d.connected_components(dilated, connectivity=26)
    lesions[box] = np.where(gt[box], groups, 0)
    return lesions


def _lesion_boxes(lesions: np.ndarray) -> list[tuple[int, tuple[slice, ...]]]:
    stats = cc3d.statistics(lesions)
    return [(label, stats["bounding_boxes"][label]) for label in range(1, int(lesions.max()) + 1)
            if stats["voxel_counts"][label] > 0]


def _score_lesion(label, box, gt_lesions, pred_components, pred_boxes, spacing, voxel_mm3) -> Lesion:
    near = _grow(box, 1, gt_lesions.shape)
    lesion_near = gt_lesions[near] == label
    touching = ndimage.binary_dilation(lesion_near, structure=_DILATION)
    matched = tuple(int(c) for c in np.unique(pred_components[near][touching]) if c != 0)
    window = _union_box([near, *(pred_boxes[c] for c in matched)])
    gt_mask = gt_lesions[window] == label
    pred_mask = np.isin(pred_components[window], matched) if matched else np.zeros_like(gt_mask)
    count = int(np.count_nonzero(gt_mask))
    volume = float(count) * voxel_mm3[0] * voxel_mm3[1] * voxel_mm3[2]
    dice = 2.0 * np.count_nonzero(gt_mask & pred_mask) / (count + np.count_nonzero(pred_mask))
    hd95 = robust_hausdorff(surface_distances(gt_mask, pred_mask, spacing))
    return Lesion(label, volume, matched, float(dice), MISSED_HD95 if np.isinf(hd95) else hd95,
                  volume > MIN_LESION_MM3)


def _legacy(pred: np.ndarray, gt: np.ndarray, spacing) -> tuple[float, float]:
    """Whole-region Dice and HD95 (1 and 0 when both are empty; HD95 374 when only one is)."""
    pred_count, gt_count = np.count_nonzero(pred), np.count_nonzero(gt)
    if pred_count == 0 and gt_count == 0:
        return 1.0, 0.0
    dice = 2.0 * np.count_nonzero(pred & gt) / (pred_count + gt_count)
    hd95 = robust_hausdorff(surface_distances(gt, pred, spacing))
    return float(dice), MISSED_HD95 if np.isinf(hd95) else hd95


def _sensitivity_specificity(pred: np.ndarray, gt: np.ndarray, volume_voxels: int) -> tuple[float, float]:
    """As the challenge code computes them (GaNDLF's formulas, with its tiny-denominator guard)."""
    predicted, actual = float(np.count_nonzero(pred)), float(np.count_nonzero(gt))
    tp = int(np.count_nonzero(pred & gt))
    tn = int(volume_voxels - np.count_nonzero(pred | gt))
    sensitivity = 1.0 * tp / (tp + (actual - tp) + sys.float_info.min)
    specificity = 1.0 * tn / (tn + (predicted - tp) + sys.float_info.min)
    if predicted == 0 and actual == 0:
        sensitivity = 1.0
    return sensitivity, specificity


def _grow(box: tuple[slice, ...], margin: int, shape: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(max(s.start - margin, 0), min(s.stop + margin, n)) for s, n in zip(box, shape))


def _union_box(boxes: list[tuple[slice, ...]]) -> tuple[slice, ...]:
    return tuple(slice(min(b[a].start for b in boxes), max(b[a].stop for b in boxes)) for a in range(3))
