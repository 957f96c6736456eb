"""The cross-validation score of a run: every finished fold's out-of-fold evaluation, pooled into RUN/cv/."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from transunet3d.crossval.validation import validation_cases
from transunet3d.errors import UserError
from transunet3d.evaluation.report import LESION_COLUMNS, METRIC_COLUMNS, read_metric_rows, summarize_rows, write_csv
from transunet3d.evaluation.rules import DEFAULT_RULES
from transunet3d.files import read_json, remove_stale_temporaries, write_json
from transunet3d.runs.layout import RunFolder


def validated_folds(run: RunFolder) -> list[int]:
    """The cross-validation folds of `run` whose out-of-fold evaluation is written, in fold order."""
    return [fold for fold, folder in run.numbered_folds().items() if folder.validation.evaluation.exists()]


def pool_folds(run: RunFolder) -> dict[str, Any] | None:
    """Write RUN/cv/ (metrics.csv and lesions.csv with a fold column, summary.json) from every validated fold.

    Returns:
        The pooled summary (its `folds` lists the folds and their cases), or None when no fold is validated yet.
    """
    folds = validated_folds(run)
    if not folds:
        return None
    metrics, lesions, cases, rules = [], [], {}, set()
    for fold in folds:
        evaluation = run.fold(fold).validation.evaluation
        rows = read_metric_rows(evaluation.metrics)
        rules.add(read_json(evaluation.summary).get("rules", DEFAULT_RULES))
        metrics += [{"fold": fold, **row} for row in rows]
        cases[fold] = sorted(validation_cases(run.fold(fold)))
        if evaluation.lesions.is_file():
            lesions += [{"fold": fold, **row} for row in _read_csv(evaluation.lesions)]
    _refuse_repeated_cases(run, cases)
    if len(rules) > 1:
        raise UserError(f"{run.path}: its folds were validated by different rules ({', '.join(sorted(rules))}); "
                        "validate them again (transunet3d crossval RUN)")
    target = run.cv
    remove_stale_temporaries(target.folder)
    write_csv(target.metrics, metrics, ["fold", *METRIC_COLUMNS])
    write_csv(target.lesions, lesions, ["fold", *LESION_COLUMNS])
    summary = {**summarize_rows(metrics, rules.pop()), "folds": {str(fold): cases[fold] for fold in folds}}
    write_json(target.summary, summary)
    return summary


def _refuse_repeated_cases(run: RunFolder, cases: dict[int, list[str]]) -> None:
    """Refuse folds that validated the same case: they were trained on different splits, so the pooled score would
    count that case twice and leave others out."""
    seen: dict[str, int] = {}
    for fold, ids in cases.items():
        for case_id in ids:
            if case_id in seen:
                raise UserError(f"{run.path}: folds {seen[case_id]} and {fold} both validated {case_id}: they were "
                                "trained on different splits, and pooling them would count it twice; retrain one "
                                "of them on the other's splits")
            seen[case_id] = fold


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))
