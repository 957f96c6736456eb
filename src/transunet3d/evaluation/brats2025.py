"""BraTS 2025 lesion-wise metrics, number for number those of the official evaluation.

The official evaluation is two commands of the `brats-evaluation` package (0.0.10): `brats-evaluate --config mets`
(panoptica: per region, 26-connected components without dilation, matched one to one by maximum bipartite
matching on Dice; Dice, NSD and HD95 per matched lesion; global Dice, NSD and HD95 of the whole region), then
`brats-parse-metrics mets --vol_threshold 27 --overlap_threshold 0.2`, which turns those into the reported
quantities. Both steps happen here, per region, in `score_region_2025`:

- a reference lesion of at least 27 mm^3 is "large": its Dice, NSD and HD95 enter the lesion-wise means (a missed
  one as 0, 0 and 373 mm), and it is detected when matched with Dice >= 0.2;
- a smaller lesion is scored by detection only (matched with Dice >= 0.2);
- every unmatched predicted component is a false positive: 0, 0 and 373 mm in the lesion-wise means, and an FP
  of both the large and the small detection counts;
- quantities that the package leaves undefined (no lesion of a kind, 0/0) are NaN, as in its CSV.

Two behaviours of the package are kept on purpose, because they are what the official numbers are:
- it reads files with SimpleITK, whose arrays are indexed (z, y, x), and hands it the spacing in (x, y, z) order,
  so distances of lesions use the voxel size of the axes in reverse order (this matters for anisotropic voxels);
- the global HD95 and NSD are computed without the voxel size: in voxels, with an NSD tolerance of 0.5 voxel.
Lesion NSD uses the package's tolerance, the smallest voxel size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from transunet3d.data.crop import mask_bounds, union_bounds
from transunet3d.data.labels import label_scheme
from transunet3d.evaluation.border import (
    ComponentBorders,
    OpenBorder,
    hd95,
    hd95_needs_all,
    normalized_surface_dice,
    settle_for_hd95,
)
from transunet3d.evaluation.inputs import check_maps, checked_spacing
from transunet3d.evaluation.matching import InstanceMatching, components, match_components

VOLUME_THRESHOLD_MM3 = 27.0  # --vol_threshold 27: smaller lesions are scored by detection only
OVERLAP_THRESHOLD = 0.2  # --overlap_threshold 0.2: the Dice at which a matched lesion counts as detected
MISSED_HD95 = 373.0  # the parser's penalty (mm, the diagonal of the SRI atlas) for missed lesions and FPs
GLOBAL_NSD_TOLERANCE = 0.5  # the package computes global NSD without the voxel size: 0.5 voxel
_SCHEME = label_scheme("brats-mets-2025")

QUANTITIES = (
    "lesionwise_dsc_mean", "lesionwise_dsc_std", "lesionwise_nsd_mean", "lesionwise_nsd_std",
    "lesionwise_hd95_mean", "lesionwise_hd95_std",
    "large_instance_tp", "large_instance_fp", "large_instance_fn", "large_instance_prec", "large_instance_rec",
    "large_instance_f1",
    "small_instance_tp", "small_instance_fp", "small_instance_fn", "small_instance_prec", "small_instance_rec",
    "small_instance_f1",
    "all_instance_tp", "all_instance_fp", "all_instance_fn", "all_instance_prec", "all_instance_rec",
    "all_instance_f1",
    "global_dsc", "global_nsd", "global_hd95",
)


@dataclass
class ReferenceLesion:
    """One reference lesion (a connected component) and its match."""

    label: int  # its component label (1-based)
    volume_mm3: float
    matched: tuple[int, ...]  # the predicted component matched to it, or () when missed
    dice: float  # 0 when missed
    nsd: float  # 0 when missed
    hd95: float  # MISSED_HD95 when missed
    counted: bool = True  # every lesion counts (the small ones by detection); for the per-lesion report


@dataclass
class Brats2025Scores:
    """The quantities of one region as the official parser reports them (NaN where it reports NaN)."""

    quantities: dict[str, float]
    lesions: list[ReferenceLesion] = field(default_factory=list)
    false_positives: tuple[int, ...] = ()
    pred_components: np.ndarray | None = None  # labelled predicted components, for reports
    gt_lesions: np.ndarray | None = None  # labelled reference components, for reports
    labels_offset: tuple[int, int, int] = (0, 0, 0)  # where the label arrays start in the maps scored


def score_labels_2025(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, float, float],
                      volume_voxels: int | None = None) -> dict[str, Brats2025Scores]:
    """The official quantities of every region of the `brats-mets-2025` scheme, for two label maps (uint8) of one
    shape, such as the crop of a case to its labelled voxels. `volume_voxels` is unused (the 2023 rules need it).

    Each region is scored on its own bounding box, where its component labels stay (`labels_offset`).
    """
    check_maps(pred, ref, masks=False)
    spacing = checked_spacing(spacing)
    pred, ref = np.asfortranarray(pred), np.asfortranarray(ref)  # the package's numbering order (`components`)
    scores = {}
    for region, labels in _SCHEME.regions.items():
        pred_mask, ref_mask = _region_mask(pred, labels), _region_mask(ref, labels)
        bounds = union_bounds(mask_bounds(pred_mask), mask_bounds(ref_mask))
        if bounds is None:
            scores[region] = _nothing_to_score()
            continue
        box = tuple(slice(lo, hi) for lo, hi in bounds)
        region_scores = score_region_2025(np.asfortranarray(pred_mask[box]), np.asfortranarray(ref_mask[box]),
                                          spacing)
        region_scores.labels_offset = tuple(lo for lo, _ in bounds)
        scores[region] = region_scores
    return scores


def _region_mask(labels: np.ndarray, values: tuple[int, ...]) -> np.ndarray:
    """Voxels of the uint8 map `labels` holding any of `values`: one comparison per single value and two per run
    of consecutive values (WT's 1..3 is `labels - 1 <= 2` in uint8, where 0 wraps to 255), which keeps the
    Fortran order and beats both a comparison per value and a table lookup."""
    mask = None
    for first, last in _runs(sorted(values)):
        run = labels == first if first == last else np.subtract(labels, first, dtype=np.uint8) <= last - first
        mask = run if mask is None else np.logical_or(mask, run, out=mask)
    return mask


def _runs(values: list[int]) -> list[tuple[int, int]]:
    """Sorted distinct integers as runs (first, last) of consecutive ones."""
    runs = []
    for value in values:
        if runs and value == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


def _nothing_to_score() -> Brats2025Scores:
    """The scores of a region that neither map holds (the package: zero counts, every other quantity NaN)."""
    quantities = {**parse_lesions([], 0, 0), "global_dsc": math.nan, "global_nsd": math.nan, "global_hd95": math.nan}
    empty = np.zeros((1, 1, 1), dtype=np.uint32)
    return Brats2025Scores({name: quantities[name] for name in QUANTITIES}, [], (), empty, empty)


def score_region_2025(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, float, float]) -> Brats2025Scores:
    """The official BraTS 2025 quantities of boolean masks `pred` vs `ref` with voxel `spacing` (mm, per axis).

    The masks may be a crop that holds every labelled voxel of both (no number changes), best in Fortran order.

    Raises:
        ValueError: masks that are not boolean 3D arrays of one shape, or a voxel size that is not 3 sizes in mm.
    """
    check_maps(pred, ref)
    spacing = checked_spacing(spacing)
    ref_labels, n_ref = components(ref)
    pred_labels, n_pred = components(pred)
    matching = match_components(ref_labels, n_ref, pred_labels, n_pred, ref | pred)
    ref_borders = ComponentBorders.of(ref_labels, ref, n_ref)
    pred_borders = ComponentBorders.of(pred_labels, pred, n_pred)
    lesions = _reference_lesions(matching, ref_borders, pred_borders, spacing)
    quantities = {**parse_lesions(lesions, n_ref, n_pred),
                  **_global_scores(ref, pred, ref_borders, pred_borders, matching)}
    return Brats2025Scores({name: quantities[name] for name in QUANTITIES}, lesions, matching.false_positives,
                           pred_labels, ref_labels)


def _reference_lesions(matching: InstanceMatching, ref_borders: ComponentBorders, pred_borders: ComponentBorders,
                       spacing):
    """Every reference lesion with its volume and, when matched, its Dice, NSD and HD95, in the package's row
    order (matched lesions first, then missed ones, each by label)."""
    distance_spacing = spacing[::-1]  # the package's SimpleITK axis order (module docstring)
    voxel_volume = float(np.prod(spacing))
    lesions, components = list(matching.pairs), list(matching.pairs.values())
    to_pred = pred_borders.nearby([ref_borders.flat[r] for r in lesions], components, distance_spacing)
    to_ref = ref_borders.nearby([pred_borders.flat[c] for c in components], lesions, distance_spacing)
    distances, matched, missed = {}, [], []
    for label, component, lesion_to_pred, lesion_to_ref in zip(lesions, components, to_pred, to_ref):
        if hd95_needs_all(lesion_to_pred, lesion_to_ref):
            lesion, partner = ref_borders.points[label], pred_borders.points[component]
            (lesion_to_pred,), (lesion_to_ref,) = settle_for_hd95(
                OpenBorder([lesion], [lesion_to_pred], partner, distance_spacing),
                OpenBorder([partner], [lesion_to_ref], lesion, distance_spacing))
        distances[label] = (lesion_to_pred, lesion_to_ref)
    for label in range(1, len(matching.reference_sizes)):
        volume = float(matching.reference_sizes[label]) * voxel_volume
        if label not in matching.pairs:
            missed.append(ReferenceLesion(label, volume, (), 0.0, 0.0, MISSED_HD95))
            continue
        lesion_to_pred, lesion_to_ref = distances[label]
        matched.append(ReferenceLesion(label, volume, (matching.pairs[label],), matching.dice[label],
                                       normalized_surface_dice(lesion_to_pred, lesion_to_ref, min(distance_spacing)),
                                       hd95(lesion_to_pred, lesion_to_ref)))
    return matched + missed


def _global_scores(ref, pred, ref_borders: ComponentBorders, pred_borders: ComponentBorders,
                   matching: InstanceMatching) -> dict[str, float]:
    """Dice, NSD and HD95 of the whole region (in voxels); without overlap, the package's edge-case values."""
    overlap = int(np.count_nonzero(ref & pred))
    if overlap == 0:
        if len(ref_borders.points) == 1 and len(pred_borders.points) == 1:  # no lesion on either side
            return {"global_dsc": math.nan, "global_nsd": math.nan, "global_hd95": math.nan}
        return {"global_dsc": 0.0, "global_nsd": 0.0, "global_hd95": MISSED_HD95}
    dice = 2 * overlap / (int(matching.reference_sizes[1:].sum()) + int(matching.prediction_sizes[1:].sum()))
    unit = (1.0, 1.0, 1.0)
    ref_to_pred = pred_borders.nearby(ref_borders.flat[1:], [None] * (len(ref_borders.flat) - 1), unit)
    pred_to_ref = ref_borders.nearby(pred_borders.flat[1:], [None] * (len(pred_borders.flat) - 1), unit)
    if hd95_needs_all(*ref_to_pred, *pred_to_ref):
        ref_to_pred, pred_to_ref = settle_for_hd95(
            OpenBorder(ref_borders.points[1:], ref_to_pred, np.concatenate(pred_borders.points), unit),
            OpenBorder(pred_borders.points[1:], pred_to_ref, np.concatenate(ref_borders.points), unit))
    ref_to_pred, pred_to_ref = _joined(ref_to_pred), _joined(pred_to_ref)
    return {"global_dsc": float(dice),
            "global_nsd": normalized_surface_dice(ref_to_pred, pred_to_ref, GLOBAL_NSD_TOLERANCE),
            "global_hd95": hd95(ref_to_pred, pred_to_ref)}


def _joined(pieces: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(pieces) if pieces else np.zeros(0)


def parse_lesions(lesions: list[ReferenceLesion], n_ref: int, n_pred: int) -> dict[str, float]:
    """The lesion-wise and detection quantities of one region, as `brats-parse-metrics mets` computes them.

    Args:
        lesions: every reference lesion, matched ones first (the package's row order, which fixes the float sums).
        n_ref, n_pred: the numbers of reference lesions and predicted components.
    """
    tp = sum(1 for lesion in lesions if lesion.matched)
    fp, fn = n_pred - tp, n_ref - tp
    large = [lesion for lesion in lesions if lesion.volume_mm3 >= VOLUME_THRESHOLD_MM3]
    small = [lesion for lesion in lesions if lesion.volume_mm3 < VOLUME_THRESHOLD_MM3]
    return {
        **_lesionwise_means(large, fp, n_ref),
        **_detection("large_instance", large, fp),
        **_detection("small_instance", small, fp),
        "all_instance_tp": tp, "all_instance_fp": fp, "all_instance_fn": fn,
        "all_instance_prec": tp / (tp + fp) if tp + fp else math.nan,
        "all_instance_rec": tp / (tp + fn) if tp + fn else math.nan,
        "all_instance_f1": _recognition_quality(tp, fp, fn, n_ref, n_pred),
    }


def _recognition_quality(tp: int, fp: int, fn: int, n_ref: int, n_pred: int) -> float:
    """Panoptica's RQ (the F1 of matching): 0 without matches, NaN with nothing at all."""
    if tp == 0:
        return 0.0 if n_pred + n_ref > 0 else math.nan
    return tp / (tp + 0.5 * fp + 0.5 * fn)


def _lesionwise_means(large: list[ReferenceLesion], fp: int, n_ref: int) -> dict[str, float]:
    """Means and standard deviations over large lesions and false positives; NaN without large lesions."""
    names = [f"lesionwise_{metric}_{statistic}" for metric in ("dsc", "nsd", "hd95") for statistic in ("mean", "std")]
    if n_ref == 0 or not large:
        return dict.fromkeys(names, math.nan)
    dsc = [lesion.dice for lesion in large] + [0] * fp
    nsd = [lesion.nsd for lesion in large] + [0] * fp
    distances = [lesion.hd95 for lesion in large] + [MISSED_HD95] * fp
    return dict(zip(names, (float(np.mean(dsc)), float(np.std(dsc)), float(np.mean(nsd)), float(np.std(nsd)),
                            float(np.mean(distances)), float(np.std(distances)))))


def _detection(prefix: str, lesions: list[ReferenceLesion], fp: int) -> dict[str, float]:
    """Detection counts, precision, recall and F1 of one size class (NaN when it has no lesion); every false
    positive counts for both size classes."""
    names = [f"{prefix}_{name}" for name in ("tp", "fp", "fn", "prec", "rec", "f1")]
    if not lesions:
        return dict.fromkeys(names, math.nan)
    tp = sum(1 for lesion in lesions if lesion.matched and lesion.dice >= OVERLAP_THRESHOLD)
    fn = len(lesions) - tp
    precision = tp / (tp + fp) if tp + fp > 0 else 0
    recall = tp / (tp + fn) if tp + fn > 0 else 0
    f1 = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn > 0 else 0
    return dict(zip(names, (tp, fp, fn, precision, recall, f1)))

