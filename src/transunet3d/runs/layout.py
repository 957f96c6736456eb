"""The layout of a run on disk: the only place that spells the names of a run's files and folders.

A training run (`transunet3d train --out RUN`) holds one model folder per fold and what is computed across them:

    RUN/fold_K/           a cross-validation fold's model (a `ModelFolder`); fold_all/ the all-data model
    RUN/cv/               every finished fold's out-of-fold validation, pooled (metrics.csv, summary.json, ...)
    RUN/postprocessing.json   post-processing tuned on the pooled out-of-fold probabilities (`transunet3d tune`)

A model folder (a fold, the all-data model, or a `transunet3d pretrain` run) holds:

    config.yaml, splits.json, cache.json (the cached cases it trains on), log.csv, progress.png, tensorboard/,
    init_encoder.json, reconstruction.png (MAE)
    checkpoints/latest.json -> checkpoints/epoch_NNNN/, checkpoints/best/
    validation/           the fold's out-of-fold predictions/, their references/ and the scores (metrics.csv, ...)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transunet3d.data.layout import CaseFiles
from transunet3d.errors import UserError
from transunet3d.files import read_json
from transunet3d.runs.folds import ALL_DATA, Fold

CONFIG_FILE = "config.yaml"
SPLITS_FILE = "splits.json"
_FOLD_FOLDER = re.compile(r"fold_(\d+|all)")


def folder_fold(name: str) -> Fold | None:
    """The fold that a run sub-folder named `name` holds; None when the name is not a fold folder's."""
    match = _FOLD_FOLDER.fullmatch(name)
    if match is None:
        return None
    return ALL_DATA if match[1] == "all" else int(match[1])


@dataclass(frozen=True)
class EvaluationFiles:
    """The files of one evaluation in a folder: per-case metrics, summary and per-lesion table."""

    folder: Path

    def __post_init__(self):
        object.__setattr__(self, "folder", Path(self.folder))  # str paths too

    @property
    def metrics(self) -> Path:
        return self.folder / "metrics.csv"

    @property
    def summary(self) -> Path:
        return self.folder / "summary.json"

    @property
    def lesions(self) -> Path:
        return self.folder / "lesions.csv"

    def exists(self) -> bool:
        return self.metrics.is_file() and self.summary.is_file()


@dataclass(frozen=True)
class ValidationFolder:
    """A fold's out-of-fold validation: predictions/ (label maps and probabilities, as `predict` writes them),
    references/ (the cases' label maps in their input geometry) and the evaluation of the first against the second."""

    folder: Path

    def __post_init__(self):
        object.__setattr__(self, "folder", Path(self.folder))  # str paths too

    predictions = property(lambda self: self.folder / "predictions")
    references = property(lambda self: self.folder / "references")
    evaluation = property(lambda self: EvaluationFiles(self.folder))

    def reference(self, case_id: str) -> Path:
        """The reference label map of a case, named as in the BraTS layout."""
        return self.references / CaseFiles(case_id).expected_name("seg")


@dataclass(frozen=True)
class ModelFolder:
    """One trained (or training) model: its config, splits, log, checkpoints and out-of-fold validation."""

    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))  # str paths too

    config = property(lambda self: self.path / CONFIG_FILE)
    splits = property(lambda self: self.path / SPLITS_FILE)
    log = property(lambda self: self.path / "log.csv")
    progress = property(lambda self: self.path / "progress.png")
    events = property(lambda self: self.path / "tensorboard")
    cache = property(lambda self: self.path / "cache.json")
    init_encoder = property(lambda self: self.path / "init_encoder.json")
    reconstruction = property(lambda self: self.path / "reconstruction.png")
    checkpoints = property(lambda self: self.path / "checkpoints")
    validation = property(lambda self: ValidationFolder(self.path / "validation"))

    @property
    def latest_pointer(self) -> Path:
        """checkpoints/latest.json: {"folder": ..., "epoch": ...} of the latest complete checkpoint."""
        return self.checkpoints / "latest.json"

    @property
    def best_checkpoint(self) -> Path:
        return self.checkpoints / "best"

    def epoch_checkpoint(self, epoch: int) -> Path:
        """The checkpoint folder written after `epoch` epochs."""
        return self.checkpoints / f"epoch_{epoch:04d}"

    def epoch_checkpoints(self) -> list[Path]:
        """Every epoch checkpoint folder on disk (the latest, and any that a killed run left), sorted."""
        return sorted(path for path in self.checkpoints.glob("epoch_[0-9]*") if path.is_dir())

    def latest_checkpoint(self) -> Path | None:
        """The latest checkpoint's folder, as its pointer names it; None before the first checkpoint."""
        content = self._pointer()
        return None if content is None else self.checkpoints / content["folder"]

    def latest_epoch(self) -> int:
        """The epochs trained when the latest checkpoint was written, as its pointer records them (without loading
        the checkpoint); 0 before the first checkpoint."""
        content = self._pointer()
        return 0 if content is None else content["epoch"]

    def _pointer(self) -> dict[str, Any] | None:
        pointer = self.latest_pointer
        if not pointer.is_file():
            return None
        content = read_json(pointer)
        if not (isinstance(content, dict) and isinstance(content.get("folder"), str)
                and type(content.get("epoch")) is int):
            raise UserError(f"{pointer}: damaged, not a checkpoint pointer ({{\"folder\": ..., \"epoch\": ...}})")
        return content

    def is_model(self) -> bool:
        """Whether the folder holds a model's config (a run started here)."""
        return self.config.is_file()

    @property
    def fold(self) -> Fold | None:
        """The fold the folder holds, from its name; None for a single-model folder."""
        return folder_fold(self.path.name)


@dataclass(frozen=True)
class RunFolder:
    """A training run: fold folders, the pooled cross-validation and the tuned post-processing."""

    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))  # str paths too

    @property
    def cv(self) -> EvaluationFiles:
        return EvaluationFiles(self.path / "cv")

    @property
    def postprocessing(self) -> Path:
        return self.path / "postprocessing.json"

    def fold(self, fold: Fold) -> ModelFolder:
        """The model folder of `fold`: fold_K, or fold_all for the all-data model (as nnU-Net names them)."""
        return ModelFolder(self.path / ("fold_all" if fold == ALL_DATA else f"fold_{fold}"))

    def folds(self) -> dict[Fold, ModelFolder]:
        """The model folders of the run that hold a model, by fold."""
        found = {}
        for path in sorted(self.path.glob("fold_*")):
            folder = ModelFolder(path)
            if folder.fold is not None and folder.is_model():
                found[folder.fold] = folder
        return found

    def numbered_folds(self) -> dict[int, ModelFolder]:
        """The cross-validation folds (not the all-data model), in fold order."""
        numbered = {fold: folder for fold, folder in self.folds().items() if fold != ALL_DATA}
        return {fold: numbered[fold] for fold in sorted(numbered)}
