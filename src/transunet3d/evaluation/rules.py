"""The rule sets that `transunet3d evaluate` can score by, chosen by name (`--rules`).

- `brats2023` (default): the BraTS 2023 lesion-wise metrics, BraTS-MET settings (`lesionwise.score_region`), on
  the regions of the `brats-mets-2023` label scheme.
- `brats2023-rc`: the same BraTS 2023 lesion-wise metrics on the regions of the `brats-mets-2025` scheme (WT, TC,
  ET and RC, the resection cavity): what out-of-fold validation and post-processing tuning of a 2025 run score
  with, so that cross-validation, tuning and the report read one kind of numbers for either scheme. It is not a
  challenge's ranking; `brats2025` is.
- `brats2025`: the official BraTS 2025 evaluation, the `brats-evaluation` package's mets config followed by
  `brats-parse-metrics mets --vol_threshold 27 --overlap_threshold 0.2` (`brats2025.score_region_2025`), on the
  regions of the `brats-mets-2025` label scheme (label 4, resection cavity, is allowed and scored as RC).

A rule set says which labels a map may hold and which regions are scored (its label scheme), how the regions of
one case are scored, which quantities are reported per case and region, and how they are summarised over cases.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from transunet3d.data.labels import LabelScheme, label_scheme
from transunet3d.errors import UserError
from transunet3d.evaluation import summaries
from transunet3d.evaluation.brats2025 import QUANTITIES, score_labels_2025
from transunet3d.evaluation.lesionwise import score_region

DEFAULT_RULES = "brats2023"

COLUMNS_2023 = ("lesionwise_dice", "lesionwise_hd95", "legacy_dice", "legacy_hd95", "sensitivity", "specificity",
                "num_tp", "num_fp", "num_fn", "gt_volume")


@dataclass(frozen=True)
class RuleSet:
    """One way of scoring a case.

    Args:
        name: the rule set's name (`--rules`).
        scheme: the label scheme: the labels a label map may hold, and the regions scored, in report order.
        score_labels: (prediction crop, reference crop, spacing, uncropped voxel count) -> {region: scores}, for
            two label maps cut to a box that holds every labelled voxel of both.
        columns: the quantities reported per case and region, in CSV order.
        quantities: the values of `columns` of one region's scores.
        summarize: (per-(case, region) rows, regions) -> the summary over cases (JSON).
        summary_line: (region, its summary) -> the line printed for it.
        same_pixdim: a prediction's header must give the reference's pixdim exactly (the 2025 package refuses
            any difference); otherwise the two voxel sizes may differ by `data.nifti.PIXDIM_AGREEMENT`, and the
            prediction's is measured with, as the 2023 code does.
    """

    name: str
    scheme: LabelScheme
    score_labels: Callable[[np.ndarray, np.ndarray, tuple[float, float, float], int], dict[str, Any]]
    columns: tuple[str, ...]
    quantities: Callable[[Any], dict[str, Any]]
    summarize: Callable[[list[dict[str, Any]], tuple[str, ...]], dict[str, Any]]  # (rows, regions)
    summary_line: Callable[[str, dict[str, Any]], str]
    same_pixdim: bool = False


def _score_labels_2023(pred, ref, spacing, volume_voxels, scheme: str) -> dict[str, Any]:
    """The BraTS 2023 lesion-wise scores of every region of `scheme`."""
    regions = label_scheme(scheme)
    return {region: score_region(regions.region_mask(pred, region), regions.region_mask(ref, region), spacing,
                                 volume_voxels=volume_voxels)
            for region in regions.region_names}


def _line_2023(region: str, means: dict[str, Any]) -> str:
    return (f"{region}: lesion-wise Dice {means['mean_lesionwise_dice']:.4f}, "
            f"HD95 {means['mean_lesionwise_hd95']:.2f} mm; legacy Dice {means['mean_legacy_dice']:.4f}")


def _line_2025(region: str, summary: dict[str, Any]) -> str:
    mean = summary["mean"]
    if not any(mean[f"all_instance_{count}"] for count in ("tp", "fp", "fn")):
        return f"{region}: nothing to score (no lesion and no prediction in any case)"

    def show(name: str, digits: int, unit: str = "") -> str:
        return "n/a" if mean[name] is None else f"{mean[name]:.{digits}f}{unit}"

    return (f"{region}: lesion-wise DSC {show('lesionwise_dsc_mean', 4)}, NSD {show('lesionwise_nsd_mean', 4)}, "
            f"HD95 {show('lesionwise_hd95_mean', 2, ' mm')}; F1 large {show('large_instance_f1', 3)}, "
            f"small {show('small_instance_f1', 3)}; global DSC {show('global_dsc', 4)}")


def _lesionwise_2023(name: str, scheme: str) -> RuleSet:
    """The BraTS 2023 lesion-wise metrics over the regions of `scheme`."""
    return RuleSet(
        name=name,
        scheme=label_scheme(scheme),
        score_labels=functools.partial(_score_labels_2023, scheme=scheme),
        columns=COLUMNS_2023,
        quantities=lambda scores: {column: getattr(scores, column) for column in COLUMNS_2023},
        summarize=summaries.means_and_totals,
        summary_line=_line_2023,
    )


RULE_SETS: dict[str, RuleSet] = {
    "brats2023": _lesionwise_2023("brats2023", "brats-mets-2023"),
    "brats2023-rc": _lesionwise_2023("brats2023-rc", "brats-mets-2025"),
    "brats2025": RuleSet(
        name="brats2025",
        scheme=label_scheme("brats-mets-2025"),
        score_labels=score_labels_2025,
        columns=QUANTITIES,
        quantities=lambda scores: dict(scores.quantities),
        summarize=functools.partial(summaries.mean_std_median, columns=QUANTITIES),
        summary_line=_line_2025,
        same_pixdim=True,
    ),
}


# The rule set that out-of-fold validation scores a run of each label scheme with (the BraTS 2023 metrics).
VALIDATION_RULES: dict[str, str] = {"brats-mets-2023": "brats2023", "brats-mets-2025": "brats2023-rc"}


def rule_set(name: str | RuleSet = DEFAULT_RULES) -> RuleSet:
    """The rule set called `name` (a RuleSet is returned as is).

    Raises:
        UserError: no rule set has that name.
    """
    if isinstance(name, RuleSet):
        return name
    try:
        return RULE_SETS[name]
    except KeyError:
        raise UserError(f"--rules: unknown rule set {name!r}; known: {', '.join(RULE_SETS)}") from None
