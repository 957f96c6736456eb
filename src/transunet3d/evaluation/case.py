"""Evaluate one case: read both label maps, crop to where anything is labelled, score the rule set's regions."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import nibabel as nib
import numpy as np

from transunet3d.data.crop import mask_bounds, union_bounds
from transunet3d.data.grid import onto_grid, sizes_on_grid
from transunet3d.data.nifti import PIXDIM_AGREEMENT, load_header_3d, voxel_size
from transunet3d.data.validate import read_label_values
from transunet3d.errors import InputError
from transunet3d.evaluation.inputs import check_maps, checked_spacing
from transunet3d.evaluation.lesions import LesionRow, lesion_rows
from transunet3d.evaluation.pairing import CasePair
from transunet3d.evaluation.rules import DEFAULT_RULES, RuleSet, rule_set

MISSING_PREDICTION = "missing prediction (scored as empty)"


@dataclass
class CaseResult:
    """The scores of one case per region (the rule set's scores type), its flags, or the error that stopped it."""

    case: str
    regions: dict[str, Any] = field(default_factory=dict)
    lesions: list[LesionRow] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    error: str | None = None


def evaluate_labels(
    pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, float, float], rules: str | RuleSet = DEFAULT_RULES,
) -> tuple[dict[str, Any], tuple[int, int, int]]:
    """Scores per region of two label maps of one shape, and the offset of the crop they were computed on.

    The crop is the bounding box of every nonzero voxel of either map: everything outside it is background in
    all regions, so no score changes, and the work shrinks from the head to the tumours. The maps may be of any
    integer type holding labels up to 255 (`read_label_values`); only the crop becomes uint8.

    Raises:
        ValueError: maps that are not 3D arrays of one shape, or a voxel size that is not 3 sizes in mm.
    """
    check_maps(pred, ref, masks=False)
    spacing = checked_spacing(spacing)
    bounds = union_bounds(mask_bounds(pred), mask_bounds(ref)) or tuple((0, 1) for _ in pred.shape)
    box = tuple(slice(lo, hi) for lo, hi in bounds)
    pred_crop, ref_crop = (labels[box].astype(np.uint8, copy=False) for labels in (pred, ref))
    scores = rule_set(rules).score_labels(pred_crop, ref_crop, spacing, pred.size)
    return scores, tuple(lo for lo, _ in bounds)


class CaseMaps(NamedTuple):
    """A case's label maps on the reference's grid, and the voxel size its scores measure with."""

    prediction: np.ndarray | None  # None when missing
    reference: np.ndarray
    reference_header: nib.Nifti1Image
    # The prediction's (the official 2023 code reads the prediction's header), in the reference's axis order; the
    # reference's for a missing prediction.
    voxel_size: tuple[float, float, float]


def read_pair(pair: CasePair, labels: tuple[int, ...], same_pixdim: bool = False) -> CaseMaps:
    """The prediction and the reference label maps of a case on the reference's grid (a prediction stored in
    another axis order is reordered onto it).

    Args:
        same_pixdim: refuse a prediction whose header's pixdim is not exactly the reference's (the BraTS 2025
            package compares them as they are); otherwise they may differ by PIXDIM_AGREEMENT.

    Raises:
        InputError: a file cannot be read, holds a label outside `labels`, or the grids or voxel sizes differ.
    """
    ref_header = load_header_3d(pair.reference, pair.case)
    ref = read_label_values(ref_header, pair.reference, pair.case, labels)
    if pair.prediction is None:
        return CaseMaps(None, ref, ref_header, voxel_size(ref_header))
    pred_header = load_header_3d(pair.prediction, pair.case)
    move = onto_grid(pair.case, pair.prediction, pred_header, pair.reference, ref_header)
    sizes = sizes_on_grid(voxel_size(pred_header), pred_header, ref_header)
    _refuse_other_voxel_size(pair, sizes, voxel_size(ref_header), "voxel size")
    if same_pixdim:
        _refuse_other_voxel_size(pair, sizes_on_grid(_pixdim(pred_header), pred_header, ref_header),
                                 _pixdim(ref_header), "pixdim", exact=True)
    pred = move(read_label_values(pred_header, pair.prediction, pair.case, labels))
    return CaseMaps(pred, ref, ref_header, sizes)


def _pixdim(header: nib.Nifti1Image) -> tuple[float, float, float]:
    return tuple(float(size) for size in header.header.get_zooms()[:3])


def _refuse_other_voxel_size(pair: CasePair, pred: tuple[float, ...], ref: tuple[float, ...], what: str,
                             exact: bool = False) -> None:
    """A prediction on the reference's grid within the grid tolerance may still declare other voxel sizes. The
    official 2023 code measures with the prediction's (a lesion of 2 voxels at 1.00009 mm is over its 2 mm^3
    threshold), and so do we up to PIXDIM_AGREEMENT: beyond it, the prediction was written for another grid. The
    2025 package refuses any difference in pixdim (`exact`)."""
    same = pred == ref if exact else np.allclose(pred, ref, rtol=PIXDIM_AGREEMENT, atol=0)
    if same:
        return
    digits = 9 if exact else 6
    shown = [" x ".join(f"{side:.{digits}g}" for side in sizes) for sizes in (pred, ref)]
    rule = " (the BraTS 2025 evaluation takes only the same pixdim)" if exact else ""
    raise InputError(pair.case, pair.prediction, f"{what} {shown[0]} mm differs from {pair.reference.name} "
                                                 f"{shown[1]} mm{rule}: write the prediction with the reference's "
                                                 "header")


def evaluate_pair(pair: CasePair, with_lesions: bool = False, rules: str = DEFAULT_RULES) -> CaseResult:
    """Score one case from its files; problems become the result's `error` instead of stopping a batch."""
    rules = rule_set(rules)
    result = CaseResult(pair.case)
    try:
        maps = read_pair(pair, rules.scheme.labels, rules.same_pixdim)
    except InputError as error:
        result.error = str(error)
        return result
    pred, ref, ref_header, spacing = maps
    if pred is None:
        pred = np.zeros(ref.shape, dtype=np.uint8)
        result.flags.append(MISSING_PREDICTION)
    result.regions, offset = evaluate_labels(pred, ref, spacing, rules)
    if with_lesions:
        for region, scores in result.regions.items():
            result.lesions += lesion_rows(pair.case, region, scores, spacing, ref_header.affine, offset)
    result.regions = {r: dataclasses.replace(s, pred_components=None, gt_lesions=None)
                      for r, s in result.regions.items()}
    return result
