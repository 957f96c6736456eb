"""Evaluate a folder of predictions against a folder of references, in parallel over cases."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from transunet3d.evaluation.case import CaseResult, evaluate_pair
from transunet3d.evaluation.pairing import pair_cases
from transunet3d.parallel import map_cases


@dataclass
class EvaluationRun:
    """All case results (in case order) and the predictions that had no reference."""

    results: list[CaseResult]
    orphan_predictions: list[Path]

    @property
    def failed(self) -> list[CaseResult]:
        return [r for r in self.results if r.error is not None]


def evaluate_folders(
    pred_dir: str | Path, ref_dir: str | Path, workers: int = 1, with_lesions: bool = False, progress: bool = True,
) -> EvaluationRun:
    """Pair the files by case id and score every case; a broken case is reported in its result."""
    pairs, orphans = pair_cases(pred_dir, ref_dir)
    evaluate = functools.partial(evaluate_pair, with_lesions=with_lesions)
    return EvaluationRun(list(map_cases(evaluate, pairs, workers, "evaluate", progress)), orphans)
