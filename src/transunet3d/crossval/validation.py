"""Out-of-fold validation: a finished fold's final model predicts that fold's validation cases, which are scored.

The cases come from the training cache (preprocessed exactly as `predict` preprocesses a raw case), go through the
real predictor (sliding window, `infer.out_of_fold_tta`, probabilities back to the case's original grid, the run's
post-processing settings) and are written in their input geometry, with their probabilities, into
`fold_K/validation/predictions/`; their reference label maps, the original ones rather than the ones resampled for
training, go to `validation/references/`, and the lesion-wise evaluation of the one against the other beside them.
An interrupted validation continues with the cases it had not written.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from transunet3d.config.schema import DataConfig
from transunet3d.data.cache import damaged, image_path, open_case, read_dataset
from transunet3d.data.crop import uncrop
from transunet3d.data.grid import same_spacing
from transunet3d.data.nifti import Geometry, write_nifti
from transunet3d.data.orientation import AxisOrder
from transunet3d.data.splits import read_splits
from transunet3d.errors import IncompleteBatch, UserError
from transunet3d.evaluation.batch import evaluate_folders
from transunet3d.evaluation.report import write_evaluation
from transunet3d.evaluation.rules import VALIDATION_RULES
from transunet3d.files import read_json, remove_stale_temporaries, write_json
from transunet3d.inference.cases import (
    ENSEMBLE_FILE,
    ensemble_record,
    probabilities_path,
    same_ensemble,
    submission_path,
    write_prediction,
)
from transunet3d.inference.predictor import Predictor
from transunet3d.inference.trained import TrainedModel, load_trained_model
from transunet3d.runs.cache_record import check_cases_trained_on
from transunet3d.runs.layout import ModelFolder, ValidationFolder
from transunet3d.training.segmentation import check_labelled, check_readable


def validation_cases(folder: ModelFolder) -> list[str]:
    """The validation case ids of the fold that `folder` holds, from the splits it was trained with."""
    fold = folder.fold
    if not isinstance(fold, int):
        raise UserError(f"{folder.path}: not a cross-validation fold (fold_K), nothing to validate")
    splits = read_splits(folder.splits)
    if fold >= len(splits):
        raise UserError(f"{folder.splits}: has no fold {fold}")
    return list(splits[fold]["val"])


def _check_cache_is_the_runs(preprocessed: Path, data: DataConfig) -> None:
    """Refuse a cache of another label scheme or grid than the run trained on: its cases would fail one by one
    (another scheme), or be predicted on a grid the network never saw."""
    dataset = read_dataset(preprocessed)
    if dataset["labels"] != data.labels:
        raise UserError(f"{preprocessed}: holds {dataset['labels']} label maps, the run trained on {data.labels}; "
                        "validate with the cache the run trained on")
    cached = tuple(dataset["target_spacing"])
    if data.target_spacing is not None and not same_spacing(cached, data.target_spacing):
        raise UserError(f"{preprocessed}: its target spacing {list(cached)} is not the run's "
                        f"{list(data.target_spacing)}; validate with the cache the run trained on")


@dataclass
class FoldValidation:
    """A finished fold's model and validation cases, checked against its cache (`check_fold`): what
    `validate_fold` predicts and scores."""

    folder: ModelFolder
    model: TrainedModel
    preprocessed: Path
    cases: list[str]
    device: torch.device


def check_fold(folder: ModelFolder, preprocessed: str | Path, device: torch.device | str = "cpu") -> FoldValidation:
    """Load a fold's final model and check everything its validation reads, before anything is written.

    Raises:
        UserError: the fold has not finished training, the cache is not the run's, or a validation case is missing
            from it, damaged or without its label map.
    """
    model = load_trained_model(folder.path, "latest", device)
    if not model.finished:
        raise UserError(f"{folder.path}: trained for {model.epoch} of {model.config.loop.epochs} epochs; "
                        "out-of-fold validation needs the finished model (train --resume)")
    preprocessed = Path(preprocessed)
    _check_cache_is_the_runs(preprocessed, model.config.data)
    cases = validation_cases(folder)
    check_labelled(preprocessed, folder.fold, cases)
    check_readable(preprocessed, folder.fold, cases, folder.splits)
    check_cases_trained_on(folder, preprocessed, cases)
    return FoldValidation(folder, model, preprocessed, cases, torch.device(device))


def validate_fold(fold: FoldValidation, workers: int = 1, progress: bool = True) -> dict[str, Any]:
    """Predict and score the validation cases of a checked fold (`check_fold`); returns the evaluation summary.

    Args:
        workers: processes for the evaluation.

    Raises:
        IncompleteBatch: a validation case could not be scored (its evaluation, written, names it): the fold's
            score would leave it out, so it is not pooled.
    """
    infer = fold.model.config.infer
    predictor = Predictor([fold.model], replace(infer, tta=infer.out_of_fold_tta), fold.device)
    target = fold.folder.validation
    remove_stale_temporaries(target.folder, recursive=True)
    _start(target, ensemble_record(predictor))
    todo = [case for case in fold.cases if not _done(target, case)]
    for case_id in tqdm(todo, desc=f"validate {fold.folder.path.name}", unit="case", disable=not progress):
        _validate_case(predictor, fold.preprocessed, case_id, target)
    run = evaluate_folders(target.predictions, target.references, workers=workers, with_lesions=True,
                           progress=progress, rules=VALIDATION_RULES[fold.model.config.data.labels])
    files = target.evaluation
    summary = write_evaluation(run, target.predictions, target.references, files.metrics, files.summary,
                               files.lesions)
    if run.failed:
        raise IncompleteBatch({result.case: result.error for result in run.failed})
    return summary


def _recorded(path: Path) -> object:
    """The record of an interrupted validation; None when it is damaged (the validation then starts over)."""
    try:
        return read_json(path)
    except UserError:
        return None


def _start(target: ValidationFolder, record: dict) -> None:
    """Keep the predictions of an interrupted validation by the same model and settings; start over otherwise."""
    path = target.predictions / ENSEMBLE_FILE
    if path.is_file() and same_ensemble(_recorded(path), record):
        return
    for stale in (target.predictions, target.references):
        shutil.rmtree(stale, ignore_errors=True)
    target.predictions.mkdir(parents=True)
    write_json(path, record)


def _done(target: ValidationFolder, case_id: str) -> bool:
    return all(path.is_file() for path in (target.reference(case_id), submission_path(target.predictions, case_id),
                                          probabilities_path(target.predictions, case_id)))


def _validate_case(predictor: Predictor, preprocessed: Path, case_id: str, target: ValidationFolder) -> None:
    """The reference first, then the prediction: a case counts as done only when both are complete."""
    case = open_case(preprocessed, case_id)
    properties = case.properties
    geometry = Geometry.from_dict(properties["geometry"])
    box = tuple(tuple(bounds) for bounds in properties["crop_box"])
    # The label map as the input had it, not as resampled for training: predictions are scored on the input grid.
    reference = uncrop(np.asarray(case.original_seg), box, tuple(properties["canonical_shape"]))
    reference = AxisOrder.from_json(properties).undo(reference)
    write_nifti(reference.astype(np.uint8), geometry, target.reference(case_id))
    image = np.array(case.image)
    if not np.isfinite(image).all():  # every window would be NaN: an empty prediction, scored as the model's
        raise damaged(image_path(preprocessed, case_id), "values that are not finite")
    prediction = predictor.predict_preprocessed(case_id, image, case.properties, keep_probabilities=True)
    write_prediction(prediction, geometry, target.predictions)
