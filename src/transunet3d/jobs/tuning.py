"""Post-processing of a run: tuned on its pooled out-of-fold predictions, and the settings `predict` applies.

`transunet3d tune RUN` writes RUN/postprocessing.json from every validated fold's probabilities and references
(RUN/fold_K/validation/); `transunet3d predict --model RUN` then applies it by default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transunet3d.config.io import load_config
from transunet3d.crossval import validated_folds, validation_cases
from transunet3d.data.labels import LabelScheme, label_scheme
from transunet3d.errors import UserError
from transunet3d.files import parse_json, prepare_output_files
from transunet3d.inference.cases import ENSEMBLE_FILE, probabilities_path
from transunet3d.inference.trained import TrainedModel
from transunet3d.postprocessing.objective import TuningCase
from transunet3d.postprocessing.rules import PostprocessSettings
from transunet3d.postprocessing.tune import (
    DEFAULT_GRID,
    TuningGrid,
    TuningResult,
    read_postprocessing,
    tune_postprocessing,
    write_postprocessing,
)
from transunet3d.runs.layout import ModelFolder, RunFolder


def out_of_fold_cases(run: RunFolder) -> list[TuningCase]:
    """The probabilities and references of every validated fold's validation cases."""
    cases = []
    for fold in validated_folds(run):
        folder = run.fold(fold)
        validation = folder.validation
        cases += [TuningCase(probabilities_path(validation.predictions, case), validation.reference(case))
                  for case in validation_cases(folder)]
    return cases


def run_scheme(run: RunFolder) -> LabelScheme:
    """The label scheme of a run's models (its folds share one config): the regions its post-processing is for.

    Raises:
        UserError: the run holds no model folder.
    """
    folds = run.folds()
    if not folds:
        raise UserError(f"{run.path}: not a training run (no fold_K folders)")
    return label_scheme(load_config(next(iter(folds.values())).config).data.labels)


def tune_run(run: RunFolder, workers: int = 1, grid: TuningGrid = DEFAULT_GRID,
             progress: bool = True) -> TuningResult:
    """Tune the post-processing on the run's out-of-fold predictions and write RUN/postprocessing.json.

    Raises:
        UserError: no fold of the run has been validated yet.
    """
    _check_run_folder(run)
    cases = out_of_fold_cases(run)
    if not cases:
        raise UserError(f"{run.path}: no validated fold to tune on (train the folds, or run `transunet3d crossval`)")
    prepare_output_files(run.postprocessing)
    result = tune_postprocessing(cases, workers=workers, grid=grid, progress=progress, scheme=run_scheme(run))
    write_postprocessing(run.postprocessing, result, out_of_fold_source(run))
    return result


def out_of_fold_source(run: RunFolder) -> dict[str, Any]:
    """What made the out-of-fold predictions that tuning reads: the TTA of each validated fold and its model's
    record (fold, checkpoint, weights' digest), from the folds' validation/predictions/ensemble.json."""
    ttas, models = set(), []
    for fold in validated_folds(run):
        record = _ensemble_of(run.fold(fold).validation.predictions / ENSEMBLE_FILE)
        settings = record.get("settings")
        ttas.add(settings.get("tta") if isinstance(settings, dict) else None)
        models += [model for model in record.get("models") or [] if isinstance(model, dict)]
    return {"tta": sorted(tta for tta in ttas if isinstance(tta, str)), "models": models}


def tuning_mismatches(run_dir: str | Path, models: list[TrainedModel], tta: str) -> list[str]:
    """Why the run's tuned post-processing may not suit a prediction by `models` with `tta`: other views than its
    out-of-fold predictions had, or a fold of the run whose weights changed since they were made (retrained).
    Files written before tuning recorded its source give none."""
    run = RunFolder(run_dir)
    try:
        source = parse_json(run.postprocessing.read_text()).get("tuned_on")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return []
    if not isinstance(source, dict):
        return []
    problems = []
    ttas = source.get("tta") or []
    if ttas and tta not in ttas:
        problems.append(f"{run.postprocessing}: tuned on out-of-fold predictions made with TTA {', '.join(ttas)}, "
                        f"and this prediction uses {tta}: its thresholds may not suit these probabilities")
    tuned_weights = {model.get("fold"): model.get("weights") for model in source.get("models", [])
                     if isinstance(model, dict)}
    for model in models:
        fold, weights = model.folder.fold, model.record().get("weights")
        if isinstance(fold, int) and tuned_weights.get(fold) not in (None, weights) \
                and model.folder.path.resolve().parent == run.path.resolve():
            problems.append(f"{model.folder.path}: other weights than the ones whose out-of-fold predictions "
                            f"tuned {run.postprocessing} (retrained since?); run `transunet3d tune {run.path}` again")
    return problems


def _ensemble_of(path: Path) -> dict[str, Any]:
    """A validation's ensemble record; an empty one where it is missing or damaged (its source is then unknown)."""
    try:
        record = parse_json(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def unvalidated_folds(run: RunFolder) -> list[int]:
    """The cross-validation folds of the run that have no out-of-fold validation yet (tuning leaves them out)."""
    validated = set(validated_folds(run))
    return [fold for fold in run.numbered_folds() if fold not in validated]


def _check_run_folder(run: RunFolder) -> None:
    """Name what the path is when it is not a run: missing, a file, or one of a run's folds."""
    if not run.path.exists():
        raise UserError(f"{run.path}: training run does not exist")
    if not run.path.is_dir():
        raise UserError(f"{run.path}: not a folder (give the training run)")
    folder = ModelFolder(run.path)
    if folder.fold is not None and folder.is_model():
        raise UserError(f"{run.path}: one fold of a run; tune the run itself ({run.path.parent}), on all its "
                        "validated folds")


def run_postprocessing(run_dir: str | Path, scheme: LabelScheme | None = None) -> PostprocessSettings | None:
    """The tuned settings of a run or of its exported folder (postprocessing.json), or None when it has none or is
    a single model.

    Args:
        scheme: the label scheme of the models they are for; by default the run's (an exported folder, which
            holds no fold folders, must name it).
    """
    run = RunFolder(run_dir)
    if not run.postprocessing.is_file():
        return None
    return read_postprocessing(run.postprocessing, scheme or run_scheme(run))
