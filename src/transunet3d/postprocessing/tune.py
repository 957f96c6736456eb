"""Choose post-processing settings on out-of-fold probabilities: coordinate descent over a grid, region by region.

The objective is what `transunet3d evaluate` reports as the overall mean lesion-wise Dice: the mean over cases of
the mean over the label scheme's regions (WT, TC and ET; RC too in brats-mets-2025), a region with nothing in
either map scoring 1 as the evaluator scores it.

The score of the chosen settings on the cases that chose them flatters them, the more so the fewer the cases. The
held-out score says what tuning is worth on new cases: each case scored with the settings tuned on the others
(leave one case out; beyond HELD_OUT_GROUPS cases, one group of cases out), reusing the table of scores that the
tuning itself filled.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from transunet3d.data.labels import DEFAULT_SCHEME, SCHEMES, LabelScheme
from transunet3d.errors import UserError
from transunet3d.files import parse_json, write_json
from transunet3d.parallel import map_cases
from transunet3d.postprocessing.objective import TuningCase, score_candidates
from transunet3d.postprocessing.rules import PostprocessSettings

CORE_STEP = "require_core"
MAX_PASSES = 5  # passes stop as soon as one changes nothing; this bounds the search where they keep changing
TIE = 1e-9  # a setting must beat a simpler one by more than this to be chosen over it
HELD_OUT_GROUPS = 10  # the held-out score leaves one case out up to this many cases, then this many groups


@dataclass(frozen=True)
class TuningGrid:
    """The values tried: every threshold with every minimum lesion size per region, and require_core off and on."""

    thresholds: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7)
    min_lesion_mm3: tuple[float, ...] = (0.0, 5.0, 10.0, 20.0, 40.0, 70.0, 100.0)
    require_core: tuple[bool, ...] = (False, True)


DEFAULT_GRID = TuningGrid()


@dataclass(frozen=True)
class Trial:
    """One settings scored during the search, in the step (a region, or require_core) of the pass that tried it."""

    pass_number: int
    step: str
    settings: PostprocessSettings
    score: float


@dataclass
class TuningResult:
    """The chosen settings, the objective before (default settings) and after, and every settings tried."""

    settings: PostprocessSettings
    cases: int
    score_before: float
    score_after: float
    score_held_out: float | None  # each case with the settings tuned on the others; None for a single case
    regions_before: dict[str, float]
    regions_after: dict[str, float]
    tried: list[Trial]
    seconds: float


class _Scores:
    """Lesion-wise Dice per case and region of every settings scored so far; each case is read once per batch."""

    def __init__(self, cases: Sequence[TuningCase], workers: int, progress: bool, regions: tuple[str, ...]):
        self.cases, self.workers, self.progress, self.region_names = list(cases), workers, progress, regions
        self.table: dict[PostprocessSettings, np.ndarray] = {}  # settings -> (cases, regions)

    def add(self, candidates: Sequence[PostprocessSettings], desc: str) -> None:
        new = [settings for settings in candidates if settings not in self.table]
        if new:
            jobs = [(case, new) for case in self.cases]
            per_case = np.stack(list(map_cases(score_candidates, jobs, self.workers, desc, self.progress)))
            for index, settings in enumerate(new):
                self.table[settings] = np.ascontiguousarray(per_case[:, index])

    def mean(self, settings: PostprocessSettings, cases: np.ndarray | None = None) -> float:
        """The objective: the mean over cases (all, or the indices `cases`) and regions, in the evaluator's order
        (case by case)."""
        table = self.table[settings]
        return float(np.mean(table if cases is None else table[cases]))

    def regions(self, settings: PostprocessSettings) -> dict[str, float]:
        return {region: float(value) for region, value in zip(self.region_names, self.table[settings].mean(axis=0))}


def tune_postprocessing(cases: Sequence[TuningCase], workers: int = 1, grid: TuningGrid = DEFAULT_GRID,
                        progress: bool = True, scheme: LabelScheme = SCHEMES[DEFAULT_SCHEME]) -> TuningResult:
    """The settings of `grid` that maximise the mean lesion-wise Dice of `cases`, by coordinate descent.

    From the default settings (0.5, 0 mm^3, require_core off), each step tries every threshold with every minimum
    size of one region (WT, then TC, then ET, then RC in brats-mets-2025), the others fixed, then require_core off
    and on; each candidate is scored on the full label map, since the nesting and the writing order couple the
    regions. Passes repeat until one changes nothing (at most MAX_PASSES). Within TIE of the best score the
    simpler settings win: the threshold nearest 0.5, then the smaller minimum size, then require_core off. The
    same descent without each case in turn (or group of cases, `_held_out_score`) gives the held-out score.

    Args:
        cases: the cases' saved probabilities and reference label maps.
        workers: processes that score cases in parallel; each reads its case once per step for all candidates.
        grid: the values tried.
        progress: show a progress bar per step.
        scheme: the label scheme of the cases (the run's `data.labels`).
    """
    if not cases:
        raise UserError("no cases to tune the post-processing on")
    start = time.perf_counter()
    default = PostprocessSettings.uniform(scheme=scheme)
    scores = _Scores(cases, workers, progress, scheme.region_names)
    settings, tried = _descend(scores, default, grid, np.arange(len(cases)), "tune")
    held_out = _held_out_score(scores, default, grid) if len(cases) > 1 else None
    return TuningResult(settings, len(cases), scores.mean(default), scores.mean(settings), held_out,
                        scores.regions(default), scores.regions(settings), tried, time.perf_counter() - start)


def _descend(scores: _Scores, start: PostprocessSettings, grid: TuningGrid, cases: np.ndarray,
             name: str) -> tuple[PostprocessSettings, list[Trial]]:
    """Coordinate descent from `start` on the cases with the indices `cases`: the chosen settings and every trial.

    Candidates are scored on every case (each read once for all of them), so that later descents on other subsets
    find them in the table; the progress bars of the scoring start with `name`.
    """
    settings, tried = start, []
    for pass_number in range(1, MAX_PASSES + 1):
        at_start = settings
        for step in (*start.scheme.region_names, CORE_STEP):
            candidates = _candidates(settings, step, grid)
            scores.add(candidates, f"{name} {step}, pass {pass_number}")
            means = [scores.mean(candidate, cases) for candidate in candidates]
            tried += [Trial(pass_number, step, candidate, mean) for candidate, mean in zip(candidates, means)]
            settings = _choose(candidates, means, step)
        if settings == at_start:
            break
    return settings, tried


def _held_out_score(scores: _Scores, start: PostprocessSettings, grid: TuningGrid) -> float:
    """The mean over cases of each case's objective under the settings tuned without it: leave one case out up to
    HELD_OUT_GROUPS cases, otherwise that many groups of cases (case i in group i mod HELD_OUT_GROUPS), each held
    out in turn, which bounds the extra descents."""
    count = len(scores.cases)
    groups = np.arange(count) % min(count, HELD_OUT_GROUPS)
    held_out = np.zeros(count)
    for group in np.unique(groups):
        name = f"tune without case group {group + 1} of {groups.max() + 1}:"
        settings, _ = _descend(scores, start, grid, np.flatnonzero(groups != group), name)
        held_out[groups == group] = scores.table[settings][groups == group].mean(axis=1)
    return float(np.mean(held_out))


def _candidates(current: PostprocessSettings, step: str, grid: TuningGrid) -> list[PostprocessSettings]:
    """The current settings and every variation of `step` in the grid, each once."""
    if step == CORE_STEP:
        variants = [replace(current, require_core=value) for value in grid.require_core]
    else:
        index = current.scheme.region_names.index(step)
        variants = [replace(current, thresholds=_with(current.thresholds, index, threshold),
                            min_lesion_mm3=_with(current.min_lesion_mm3, index, size))
                    for threshold in grid.thresholds for size in grid.min_lesion_mm3]
    return list(dict.fromkeys([current, *variants]))


def _with(values: tuple[float, ...], index: int, value: float) -> tuple[float, ...]:
    return (*values[:index], value, *values[index + 1:])


def _choose(candidates: list[PostprocessSettings], scores: list[float], step: str) -> PostprocessSettings:
    """The simplest of the candidates that score within TIE of the best."""
    best = max(scores)
    near = [candidate for candidate, score in zip(candidates, scores) if score >= best - TIE]
    if step == CORE_STEP:
        return min(near, key=lambda settings: settings.require_core)
    index = candidates[0].scheme.region_names.index(step)
    return min(near, key=lambda settings: (round(abs(settings.thresholds[index] - 0.5), 9),
                                           settings.min_lesion_mm3[index], settings.thresholds[index]))


def write_postprocessing(path: str | Path, result: TuningResult, tuned_on: dict[str, Any] | None = None) -> None:
    """The result as JSON (atomically): settings, objective before and after (and held out), per region, every
    trial, time, and `tuned_on`: what made the probabilities it was tuned on (`jobs.tuning.out_of_fold_source`)."""
    settings = result.settings
    write_json(path, {
        "settings": settings.to_json(),
        "cases": result.cases,
        "score_before": result.score_before,
        "score_after": result.score_after,
        "score_held_out": result.score_held_out,
        "regions": {region: {"before": result.regions_before[region], "after": result.regions_after[region],
                             "threshold": settings.thresholds[index],
                             "min_lesion_mm3": settings.min_lesion_mm3[index]}
                    for index, region in enumerate(settings.scheme.region_names)},
        "tried": [_trial_row(trial) for trial in result.tried],
        "seconds": result.seconds,
        **({"tuned_on": tuned_on} if tuned_on is not None else {}),
    })


def _trial_row(trial: Trial) -> dict[str, Any]:
    """The values a trial varied: a region's threshold and minimum size, or require_core (then null for those)."""
    regions = trial.settings.scheme.region_names
    index = regions.index(trial.step) if trial.step in regions else None
    return {
        "pass": trial.pass_number,
        "region": trial.step,
        "threshold": None if index is None else trial.settings.thresholds[index],
        "min_lesion_mm3": None if index is None else trial.settings.min_lesion_mm3[index],
        "require_core": trial.settings.require_core,
        "score": trial.score,
    }


def read_postprocessing(path: str | Path, scheme: LabelScheme = SCHEMES[DEFAULT_SCHEME]) -> PostprocessSettings:
    """The settings of a file that `write_postprocessing` wrote, for the regions of `scheme`; a missing or bad
    file, or one for other regions, is a one-line UserError."""
    path = Path(path)
    try:
        data = parse_json(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no such post-processing file") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UserError(f"{path}: not a readable JSON file ({error})") from None
    if not isinstance(data, dict) or "settings" not in data:
        raise UserError(f"{path}: holds no post-processing settings (no 'settings' key)")
    try:
        return PostprocessSettings.from_json(data["settings"], scheme)
    except UserError as error:
        raise UserError(f"{path}: {error}") from None
