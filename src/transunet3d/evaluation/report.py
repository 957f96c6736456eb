"""Tables and summaries of an evaluation: the per-case CSV, the summary JSON, the per-lesion CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from transunet3d.config.schema import REGIONS
from transunet3d.evaluation.batch import EvaluationRun
from transunet3d.evaluation.case import CaseResult
from transunet3d.files import atomic_path, write_json

METRIC_COLUMNS = [
    "case", "region", "lesionwise_dice", "lesionwise_hd95", "legacy_dice", "legacy_hd95", "sensitivity",
    "specificity", "num_tp", "num_fp", "num_fn", "gt_volume",
]
_MEANS = ["lesionwise_dice", "lesionwise_hd95", "legacy_dice", "legacy_hd95", "sensitivity", "specificity"]
_TOTALS = ["num_tp", "num_fp", "num_fn"]
LESION_COLUMNS = [
    "case", "region", "source", "lesion_id", "volume_mm3", "centroid_x", "centroid_y", "centroid_z",
    "centroid_x_mm", "centroid_y_mm", "centroid_z_mm", "longest_axial_diameter_mm", "matched", "lesion_dice",
    "counted",
]


def metric_rows(results: list[CaseResult]) -> list[dict[str, Any]]:
    """One row per (case, region) of every case that could be scored."""
    return [
        {"case": result.case, "region": region,
         **{name: getattr(scores, name) for name in METRIC_COLUMNS[2:]}}
        for result in results if result.error is None
        for region, scores in result.regions.items()
    ]


def lesion_table(results: list[CaseResult]) -> list[dict[str, Any]]:
    """The per-lesion rows of every case, flattened for CSV."""
    rows = []
    for result in results:
        for lesion in result.lesions:
            row = asdict(lesion)
            (cx, cy, cz), (wx, wy, wz) = row.pop("centroid_voxel"), row.pop("centroid_mm")
            row.update(centroid_x=cx, centroid_y=cy, centroid_z=cz, centroid_x_mm=wx, centroid_y_mm=wy,
                       centroid_z_mm=wz)
            rows.append(row)
    return rows


def summarize(results: list[CaseResult]) -> dict[str, Any]:
    """Means per region and over all regions, lesion totals, and the cases that failed or were flagged."""
    return {**summarize_rows(metric_rows(results)),
            "failed": {r.case: r.error for r in results if r.error is not None},
            "flagged": {r.case: r.flags for r in results if r.flags}}


def summarize_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means per region and over all regions, and lesion totals, of per-(case, region) metric rows."""
    per_region = {region: _aggregate([r for r in rows if r["region"] == region]) for region in REGIONS}
    return {"cases_scored": len({r["case"] for r in rows}), "regions": per_region, "overall": _aggregate(rows)}


def read_metric_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a per-case CSV written by `write_evaluation`, with numbers as numbers."""
    with Path(path).open(newline="") as file:
        rows = list(csv.DictReader(file))
    return [{name: (value if name in ("case", "region") else float(value)) for name, value in row.items()}
            for row in rows]


def _aggregate(rows: list[dict[str, Any]]) -> dict[str, float]:
    if not rows:
        return {}
    means = {f"mean_{name}": float(np.mean([r[name] for r in rows])) for name in _MEANS}
    return {**means, **{f"total_{name}": int(sum(r[name] for r in rows)) for name in _TOTALS}}


def write_csv(path: str | Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Atomic CSV write with exactly `columns`, in that order; floats at full precision."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue())


def write_evaluation(run: EvaluationRun, pred_dir: Path, ref_dir: Path, metrics: Path, summary: Path | None = None,
                     lesions: Path | None = None) -> dict[str, Any]:
    """Write the per-case CSV and, when asked, the summary JSON (with the two folders, for the report's
    overlays) and the per-lesion CSV; returns the summary."""
    write_csv(metrics, metric_rows(run.results), METRIC_COLUMNS)
    report = {**summarize(run.results), "folders": {"predictions": str(Path(pred_dir).resolve()),
                                                    "references": str(Path(ref_dir).resolve())}}
    if summary is not None:
        write_json(summary, report)
    if lesions is not None:
        write_csv(lesions, lesion_table(run.results), LESION_COLUMNS)
    return report
