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

from transunet3d.data.crop import mask_bounds, union_bounds
from transunet3d.data.labels import label_scheme
from transunet3d.evaluation.inputs import check_maps, checked_spacing
from transunet3d.evaluation.surface import (
    DirectedPercentiles,
    NearestCorner,
    Surface,
    component_surfaces,
    corner_box,
    nearest_box_distance,
    weighted_percentile,
)

_SCHEME_2023 = label_scheme("brats-mets-2023")
MISSED_HD95 = 374.0  # the challenge's penalty distance (mm) for missed lesions and false positives
MIN_LESION_MM3 = 2.0  # BraTS-MET: ground-truth lesions of at most this volume are ignored


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
    """Voxels whose label value belongs to `region` of the BraTS 2023 scheme (exact comparison: 1.5 or 4 belong
    to no region)."""
    return _SCHEME_2023.region_mask(labels, region)


@dataclass(frozen=True)
class ReferenceLesions:
    """The merged ground-truth lesions of one region, found once and matched against any number of predictions."""

    labels: np.ndarray  # the lesion label of every ground-truth voxel, 0 elsewhere
    reach: np.ndarray  # the lesion label of every voxel of the lesions' one-voxel 18-dilation
    sizes: np.ndarray  # voxels per lesion label (index 0 unused)
    volumes_mm3: tuple[float, ...]  # per lesion label from 1
    counted: tuple[int, ...]  # the lesions of more than MIN_LESION_MM3, which the challenge scores

    @classmethod
    def of(cls, gt: np.ndarray, spacing: tuple[float, float, float]) -> ReferenceLesions:
        """The lesions of the boolean mask `gt` with voxel `spacing` (mm)."""
        labels, reach = merged_lesions(gt)
        sizes = np.bincount(labels.ravel()[np.flatnonzero(gt)], minlength=1)  # from its voxels: gt is sparse
        volumes = tuple(float(size) * spacing[0] * spacing[1] * spacing[2] for size in sizes[1:].tolist())
        return cls(labels, reach, sizes, volumes, tuple(i for i, v in enumerate(volumes, 1) if v > MIN_LESION_MM3))

    def match(self, pred: np.ndarray) -> Matching:
        """The components of the boolean mask `pred` (of the reference's shape) that each lesion matches."""
        pred_components, count = cc3d.connected_components(pred, connectivity=26, return_N=True)
        # Predictions are sparse: everything below looks at their voxels only, not at the whole volume.
        voxels = np.flatnonzero(pred)
        components = pred_components.ravel()[voxels]
        component_sizes = np.bincount(components, minlength=count + 1)
        matches = _pairs(self.reach.ravel()[voxels], components)  # lesion -> components touching its dilation
        overlaps = _pairs(self.labels.ravel()[voxels], components)  # lesion -> {component: overlapping voxels}
        matched, dice = {}, {}
        for label in range(1, len(self.sizes)):
            matched[label] = tuple(sorted(matches.get(label, {})))
            predicted = int(sum(component_sizes[c] for c in matched[label]))
            dice[label] = float(2.0 * sum(overlaps.get(label, {}).values()) / (int(self.sizes[label]) + predicted))
        matched_any = {c for components in matched.values() for c in components}
        false_positives = tuple(c for c in range(1, len(component_sizes)) if c not in matched_any)
        return Matching(pred_components, matched, dice, false_positives, self.counted)


@dataclass(frozen=True)
class Matching:
    """How a prediction covers the reference lesions of one region (lesion labels as in `ReferenceLesions`)."""

    pred_components: np.ndarray  # labelled 26-connected components of the prediction
    matched: dict[int, tuple[int, ...]]  # lesion -> the predicted components that touch it
    dice: dict[int, float]  # lesion -> Dice against the union of its matched components
    false_positives: tuple[int, ...]  # predicted components that touch no lesion
    counted: tuple[int, ...]  # the reference's counted lesions, in label order

    @property
    def lesionwise_dice(self) -> float:
        """Mean Dice over counted lesions and false positives (which score 0); 1 when there are neither."""
        denominator = len(self.counted) + len(self.false_positives)
        return sum(self.dice[label] for label in self.counted) / denominator if denominator else 1.0


def lesionwise_dice(pred: np.ndarray, gt: np.ndarray, spacing: tuple[float, float, float]) -> float:
    """`score_region(pred, gt, spacing).lesionwise_dice`, without the surface distances that take most of its time.

    The masks are cut to what either holds first: as in `evaluate_labels`, no score changes, and the work shrinks.
    """
    check_maps(pred, gt)
    spacing = checked_spacing(spacing)
    bounds = union_bounds(mask_bounds(pred), mask_bounds(gt)) or tuple((0, 1) for _ in pred.shape)
    box = tuple(slice(lo, hi) for lo, hi in bounds)
    return ReferenceLesions.of(gt[box], spacing).match(pred[box]).lesionwise_dice


def score_region(
    pred: np.ndarray, gt: np.ndarray, spacing: tuple[float, float, float], volume_voxels: int | None = None
) -> RegionScores:
    """Lesion-wise and legacy scores of boolean masks `pred` vs `gt` with voxel `spacing` (mm).

    The masks may be a crop of the volume that holds every labelled voxel of both: the scores are the same, and
    `volume_voxels` (the uncropped size) keeps the specificity's true negatives right.

    Raises:
        ValueError: masks that are not boolean 3D arrays of one shape, or a voxel size that is not 3 sizes in mm.
    """
    check_maps(pred, gt)
    spacing = checked_spacing(spacing)
    reference = ReferenceLesions.of(gt, spacing)
    matching = reference.match(pred)
    gt_stats, pred_stats = cc3d.statistics(reference.labels), cc3d.statistics(matching.pred_components)
    gt_parts = component_surfaces(reference.labels, gt_stats["bounding_boxes"], spacing)
    pred_parts = component_surfaces(matching.pred_components, pred_stats["bounding_boxes"], spacing)
    lesion_hd95, legacy_hd95 = _hausdorff(gt_parts, pred_parts, matching.matched, spacing)
    lesions = [Lesion(label, volume, matching.matched[label], matching.dice[label],
                      MISSED_HD95 if np.isinf(lesion_hd95[label]) else lesion_hd95[label], label in matching.counted)
               for label, volume in enumerate(reference.volumes_mm3, 1)]
    kept = [lesion for lesion in lesions if lesion.counted]
    false_positives = matching.false_positives
    denominator = len(kept) + len(false_positives)
    legacy_dice = _legacy_dice(pred, gt)
    sensitivity, specificity = _sensitivity_specificity(pred, gt, volume_voxels or pred.size)
    return RegionScores(
        lesionwise_dice=matching.lesionwise_dice,
        lesionwise_hd95=(sum(lesion.hd95 for lesion in kept) + MISSED_HD95 * len(false_positives)) / denominator
        if denominator else 0.0,
        legacy_dice=legacy_dice,
        legacy_hd95=legacy_hd95,
        sensitivity=sensitivity,
        specificity=specificity,
        num_tp=sum(1 for lesion in kept if lesion.matched),
        num_fp=len(false_positives),
        num_fn=sum(1 for lesion in kept if not lesion.matched),
        gt_volume=float(np.count_nonzero(gt)) * spacing[0] * spacing[1] * spacing[2],
        lesions=lesions,
        false_positives=false_positives,
        pred_components=matching.pred_components,
        gt_lesions=reference.labels,
    )


def merged_lesions(gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth lesions (26-connected components merged when they touch after one 18-dilation) and their reach.

    Returns:
        The lesion label of every ground-truth voxel, and the label of every voxel of the dilated mask. Each
        lesion's one-voxel dilation is exactly its part of the dilated mask: the dilations of different lesions
        neither overlap nor touch, or they would be one lesion.
    """
    lesions = np.zeros(gt.shape, dtype=np.uint32)
    reach = np.zeros(gt.shape, dtype=np.uint32)
    bounds = mask_bounds(gt)
    if bounds is None:
        return lesions, reach
    box = _grow(tuple(slice(lo, hi) for lo, hi in bounds), 1, gt.shape)
    dilated = dilate_18(gt[box])
    reach[box] = cc3d.connected_components(dilated, connectivity=26)
    lesions[box] = np.where(gt[box], reach[box], 0)
    return lesions, reach


def dilate_18(mask: np.ndarray) -> np.ndarray:
    """One binary dilation with the 18-connected structuring element (zero outside the array).

    The element is the union of the 3x3 squares in the three axis planes, and each square is two 1-D dilations,
    which is several times faster than a generic dilation with the 3x3x3 element.
    """
    along = [_dilate_line(mask, axis) for axis in (0, 1)]
    return _dilate_line(along[0], 1) | _dilate_line(along[0], 2) | _dilate_line(along[1], 2)


def _dilate_line(mask: np.ndarray, axis: int) -> np.ndarray:
    out = mask.copy()
    lower = [slice(None)] * mask.ndim
    upper = [slice(None)] * mask.ndim
    lower[axis], upper[axis] = slice(None, -1), slice(1, None)
    out[tuple(upper)] |= mask[tuple(lower)]
    out[tuple(lower)] |= mask[tuple(upper)]
    return out


def _pairs(first: np.ndarray, second: np.ndarray) -> dict[int, dict[int, int]]:
    """For each label of `first`, the labels of `second` on the same voxels with their voxel counts.

    Args:
        first, second: the labels of the same voxels, as two arrays of one shape.
    """
    both = (first != 0) & (second != 0)
    base = int(second.max(initial=0)) + 1
    codes, counts = np.unique(first[both].astype(np.int64) * base + second[both], return_counts=True)
    pairs: dict[int, dict[int, int]] = {}
    for code, count in zip(codes.tolist(), counts.tolist()):
        label, other = divmod(code, base)
        pairs.setdefault(label, {})[other] = count
    return pairs


def _legacy_dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Whole-region Dice; 1 when both are empty."""
    pred_count, gt_count = np.count_nonzero(pred), np.count_nonzero(gt)
    if pred_count == 0 and gt_count == 0:
        return 1.0
    return float(2.0 * np.count_nonzero(pred & gt) / (pred_count + gt_count))


def _hausdorff(
    gt_parts: dict[int, Surface], pred_parts: dict[int, Surface], matches: dict[int, tuple[int, ...]], spacing,
) -> tuple[dict[int, float], float]:
    """HD95 of every lesion against its matched components, and of the whole region (legacy).

    A lesion's distances to its matched components are its distances to the whole prediction wherever no other
    component can be nearer (judged from bounding boxes), and bound the search elsewhere. The prediction's side
    of each HD95 needs only its percentile (`DirectedPercentiles`), which spares searching most of a large
    false-positive region's surface against every lesion it touches.
    """
    whole_gt = Surface.join(list(gt_parts.values()))
    whole_pred = Surface.join(list(pred_parts.values()))
    pred_search = NearestCorner(whole_pred.corners, spacing)
    pred_boxes = {label: corner_box(part) for label, part in pred_parts.items()}
    matched_parts: dict[tuple[int, ...], tuple[NearestCorner, DirectedPercentiles]] = {}

    def matched_part(components: tuple[int, ...]) -> tuple[NearestCorner, DirectedPercentiles]:
        """The search over the union of `components` and its distances to lesions, shared by every lesion they
        are matched to."""
        if components not in matched_parts:
            part = Surface.join([pred_parts[c] for c in components])
            matched_parts[components] = NearestCorner(part.corners, spacing), DirectedPercentiles(part, spacing)
        return matched_parts[components]

    lesion_hd95, gt_to_pred, gt_areas = {}, [], []
    for label, gt_part in gt_parts.items():
        matched = tuple(sorted(matches[label]))
        search, from_pred = matched_part(matched)
        to_pred = search.distances(gt_part.corners)
        lesion_hd95[label] = max(weighted_percentile(to_pred, gt_part.areas),
                                 from_pred.of(NearestCorner(gt_part.corners, spacing)))
        if matched:
            others = np.array([box for c, box in pred_boxes.items() if c not in matched]).reshape(-1, 2, 3)
            gt_to_pred.append(_whole_distances(gt_part.corners, to_pred, pred_search, others, spacing))
        else:
            gt_to_pred.append(pred_search.distances(gt_part.corners))
        gt_areas.append(gt_part.areas)
    legacy = max(weighted_percentile(_concat(gt_to_pred), _concat(gt_areas)),
                 DirectedPercentiles(whole_pred, spacing).of(NearestCorner(whole_gt.corners, spacing)))
    if not gt_parts and not pred_parts:
        legacy = 0.0  # the challenge scores two empty masks as HD95 0
    return lesion_hd95, MISSED_HD95 if np.isinf(legacy) else legacy


def _whole_distances(corners: np.ndarray, to_matched: np.ndarray, whole: NearestCorner, other_boxes: np.ndarray,
                     spacing) -> np.ndarray:
    """Distances to a whole surface, from the distances to its matched part and the boxes of the other parts."""
    result = to_matched.copy()
    # Where the matched part is no farther than any other part could be, it holds the nearest element.
    unsure = to_matched > nearest_box_distance(corners, other_boxes, spacing) - 1e-6
    if unsure.any():
        result[unsure] = whole.distances(corners[unsure], bound=float(to_matched[unsure].max()))
    return result


def _concat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.zeros(0)


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


