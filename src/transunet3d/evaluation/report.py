"""Tables and summaries of an evaluation: the per-case CSV, the summary JSON, the per-lesion CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from pathlib import Path
from typing import Any

from transunet3d.evaluation.batch import EvaluationRun
from transunet3d.evaluation.case import CaseResult
from transunet3d.evaluation.rules import COLUMNS_2023, DEFAULT_RULES, RuleSet, rule_set
from transunet3d.files import atomic_path, write_json

METRIC_COLUMNS = ["case", "region", *COLUMNS_2023]  # the per-case CSV of the default (BraTS 2023) rules
LESION_COLUMNS = [
    "case", "region", "source", "lesion_id", "volume_mm3", "centroid_x", "centroid_y", "centroid_z",
    "centroid_x_mm", "centroid_y_mm", "centroid_z_mm", "longest_axial_diameter_mm", "matched", "lesion_dice",
    "counted",
]


def metric_columns(rules: str | RuleSet = DEFAULT_RULES) -> list[str]:
    """The columns of the per-case CSV under `rules`."""
    return ["case", "region", *rule_set(rules).columns]


def metric_rows(results: list[CaseResult], rules: str | RuleSet = DEFAULT_RULES) -> list[dict[str, Any]]:
    """One row per (case, region) of every case that could be scored."""
    quantities = rule_set(rules).quantities
    return [
        {"case": result.case, "region": region, **quantities(scores)}
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


def summarize(results: list[CaseResult], rules: str | RuleSet = DEFAULT_RULES) -> dict[str, Any]:
    """The summary over cases (`summarize_rows`) and the cases that failed or were flagged."""
    return {**summarize_rows(metric_rows(results, rules), rules),
            "failed": {r.case: r.error for r in results if r.error is not None},
            "flagged": {r.case: r.flags for r in results if r.flags}}


def summarize_rows(rows: list[dict[str, Any]], rules: str | RuleSet = DEFAULT_RULES) -> dict[str, Any]:
    """The summary of per-(case, region) metric rows as `rules` summarise them: for BraTS 2023 the means per region
    and over all regions and the lesion totals; for BraTS 2025 the mean, standard deviation and median per region.
    """
    rules = rule_set(rules)
    return {"rules": rules.name, "cases_scored": len({r["case"] for r in rows}),
            **rules.summarize(rows, rules.scheme.region_names)}


def read_metric_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a per-case CSV written by `write_evaluation`, with numbers as numbers."""
    with Path(path).open(newline="") as file:
        rows = list(csv.DictReader(file))
    return [{name: (value if name in ("case", "region") else float(value)) for name, value in row.items()}
            for row in rows]


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
    overlays, and the summary's own folder, so that a report of a moved or copied folder finds those inside it)
    and the per-lesion CSV; returns the summary."""
    write_csv(metrics, metric_rows(run.results, run.rules), metric_columns(run.rules))
    folders = {"predictions": str(Path(pred_dir).resolve()), "references": str(Path(ref_dir).resolve())}
    if summary is not None:
        folders["summary"] = str(Path(summary).resolve().parent)
    report = {**summarize(run.results, run.rules), "folders": folders}
    if summary is not None:
        write_json(summary, report)
    if lesions is not None:
        write_csv(lesions, lesion_table(run.results), LESION_COLUMNS)
    return report
