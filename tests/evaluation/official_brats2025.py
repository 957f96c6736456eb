"""The official BraTS 2025 evaluation, run as its two commands run it, for the parity tests.

`brats-evaluate --config mets` evaluates each (prediction, reference) pair with the bundled mets config and writes
a JSON; `brats-parse-metrics mets --vol_threshold 27 --overlap_threshold 0.2` turns that JSON into a CSV with one
row per case (columns `<quantity>_<region>`) and three rows more: mean, std and median. Both run here in-process
through the package's own functions (the commands' `main` only adds the folder walk), so that panoptica is
imported once per test session. `brats-evaluation` is a test-only dependency (the `dev` extra).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import warnings
from importlib.resources import files
from pathlib import Path

import pandas as pd
from brats_evaluation.evaluation import evaluate_single_exam
from brats_evaluation.metrics_parser import parse_mets_results
from panoptica import Panoptica_Evaluator

SUMMARY_ROWS = ("mean", "std", "median")


def official_scores(pairs: dict[str, tuple[Path, Path]], workdir: Path) -> dict[str, dict[str, dict[str, float]]]:
    """{case or summary row: {region (ours, upper case): {quantity: value}}} of the official evaluation.

    Args:
        pairs: case id -> (prediction file, reference file).
        workdir: where the JSON and the CSV of the two steps are written.
    """
    config = files("brats_evaluation").joinpath("configs", "config_mets.yaml")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # panoptica warns about float label maps and its NSD default
        evaluator = Panoptica_Evaluator.load_from_config(str(config))
        metrics = [evaluate_single_exam(str(pred), str(ref), case, evaluator) for case, (pred, ref) in pairs.items()]
        failed = [m for m in metrics if "error" in m]
        if failed:
            raise RuntimeError(f"the official evaluation failed: {failed}")
        (workdir / "official.json").write_text(json.dumps({"metrics": metrics, "missings": []}))
        parse_mets_results(str(workdir / "official.json"), 27.0, 0.2, str(workdir / "official.csv"))
    table = pd.read_csv(workdir / "official.csv")
    scores: dict[str, dict[str, dict[str, float]]] = {}
    for row in table.to_dict("records"):
        per_region = scores.setdefault(str(row.pop("subject_id")), {})
        for column, value in row.items():
            quantity, region = column.rsplit("_", 1)
            per_region.setdefault(region.upper(), {})[quantity] = float(value)
    return scores


def same_number(ours: float, official: float, rel: float = 1e-12, abs_: float = 1e-9) -> bool:
    """Equal to floating-point rounding; NaN equals NaN (the package's undefined quantities)."""
    if math.isnan(official) or math.isnan(ours):
        return math.isnan(official) and math.isnan(ours)
    return math.isclose(ours, official, rel_tol=rel, abs_tol=abs_)
