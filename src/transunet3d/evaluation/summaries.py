"""Summaries over cases of the per-(case, region) metric rows, one convention per rule set."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

_MEANS_2023 = ["lesionwise_dice", "lesionwise_hd95", "legacy_dice", "legacy_hd95", "sensitivity", "specificity"]
_TOTALS_2023 = ["num_tp", "num_fp", "num_fn"]


def means_and_totals(rows: list[dict[str, Any]], regions: tuple[str, ...]) -> dict[str, Any]:
    """BraTS 2023: the mean of each score and the total of each lesion count, per region and over all regions."""
    return {"regions": {region: _means_and_totals([r for r in rows if r["region"] == region]) for region in regions},
            "overall": _means_and_totals(rows)}


def _means_and_totals(rows: list[dict[str, Any]]) -> dict[str, float]:
    if not rows:
        return {}
    means = {f"mean_{name}": float(np.mean([r[name] for r in rows])) for name in _MEANS_2023}
    return {**means, **{f"total_{name}": int(sum(r[name] for r in rows)) for name in _TOTALS_2023}}


def mean_std_median(rows: list[dict[str, Any]], regions: tuple[str, ...], columns: tuple[str, ...]) -> dict[str, Any]:
    """BraTS 2025: per region, the mean, standard deviation and median of each quantity over cases, as the
    official parser's last three CSV rows give them (pandas: NaN skipped, standard deviation with n - 1).
    A statistic without any value is None (the parser's NaN)."""
    summary = {}
    for region in regions:
        region_rows = [r for r in rows if r["region"] == region]
        if not region_rows:
            summary[region] = {}
            continue
        values = {name: np.array([r[name] for r in region_rows], dtype=np.float64) for name in columns}
        summary[region] = {statistic: {name: _statistic(statistic, v[~np.isnan(v)]) for name, v in values.items()}
                           for statistic in ("mean", "std", "median")}
    return {"regions": summary}


def _statistic(name: str, values: np.ndarray) -> float | None:
    if len(values) < (2 if name == "std" else 1):
        return None
    value = {"mean": np.mean, "median": np.median, "std": lambda v: np.std(v, ddof=1)}[name](values)
    return None if math.isnan(value) else float(value)
