"""Evaluate a folder of predictions against a folder of references, in parallel over cases."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from transunet3d.errors import UserError
from transunet3d.evaluation.case import CaseResult, evaluate_pair
from transunet3d.evaluation.pairing import CasePair, pair_cases
from transunet3d.evaluation.rules import DEFAULT_RULES, rule_set
from transunet3d.parallel import map_cases


@dataclass
class EvaluationRun:
    """All case results (in case order), the files left out with the reason (`pairing.Pairing.ignored`), and the
    rule set scored by."""

    results: list[CaseResult]
    ignored: list[tuple[Path, str]]
    rules: str = DEFAULT_RULES
    other_prefix: list[CasePair] = field(default_factory=list)  # `pairing.Pairing.other_prefix`

    @property
    def failed(self) -> list[CaseResult]:
        return [r for r in self.results if r.error is not None]


def evaluate_folders(
    pred_dir: str | Path, ref_dir: str | Path, workers: int = 1, with_lesions: bool = False, progress: bool = True,
    allow_empty: bool = False, rules: str = DEFAULT_RULES,
) -> EvaluationRun:
    """Pair the files by case id and score every case; a broken case is reported in its result.

    A missing prediction scores as an empty one. When no reference has a prediction at all, the folder is most
    likely the wrong one (or the prediction failed), so that is an error unless `allow_empty` asks for the scores.

    Raises:
        UserError: `rules` names no rule set; no reference has a prediction in `pred_dir`, and `allow_empty` is off.
    """
    rules = rule_set(rules).name
    pairing = pair_cases(pred_dir, ref_dir)
    pairs = pairing.pairs
    if not allow_empty and all(pair.prediction is None for pair in pairs):
        raise UserError(f"{pred_dir}: nothing was predicted: no prediction for any of the {len(pairs)} references; "
                        "give --allow-empty to score every case as an empty prediction")
    evaluate = functools.partial(evaluate_pair, with_lesions=with_lesions, rules=rules)
    return EvaluationRun(list(map_cases(evaluate, pairs, workers, "evaluate", progress)), pairing.ignored, rules,
                         pairing.other_prefix)
