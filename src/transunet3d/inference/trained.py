"""Trained models from run folders: one fold (`train --fold K`) or a cross-validation run (`train --fold all`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from transunet3d.config.io import load_config
from transunet3d.config.presets import is_pretraining
from transunet3d.config.schema import ExperimentConfig
from transunet3d.data.labels import LabelScheme, label_scheme
from transunet3d.errors import UserError
from transunet3d.files import sha256_of
from transunet3d.models import model_from_config
from transunet3d.models.network import TransUNet3D
from transunet3d.runs.folds import select_folds
from transunet3d.runs.layout import ModelFolder, RunFolder
from transunet3d.training.checkpoint import WEIGHTS, check_finite_weights, is_complete, read_state, read_weights

CHECKPOINTS = ("latest", "best")


@dataclass
class TrainedModel:
    """A network in eval mode with the config it was trained with.

    `epoch` counts the epochs it had been trained for when its checkpoint was saved.
    """

    network: TransUNet3D
    config: ExperimentConfig
    checkpoint: Path
    epoch: int

    folder: ModelFolder

    @property
    def finished(self) -> bool:
        return self.epoch >= self.config.loop.epochs

    @property
    def scheme(self) -> LabelScheme:
        """The label scheme it was trained with: its outputs are the scheme's regions."""
        return label_scheme(self.config.data.labels)

    def record(self) -> dict:
        """Which model this is, for the record of an ensemble: model folder, fold, checkpoint, epochs and the
        SHA-256 of its weights (which tell the same model in a run that was moved or copied)."""
        return {"folder": str(self.folder.path.resolve()), "fold": self.folder.fold,
                "checkpoint": self.checkpoint.name, "epoch": self.epoch,
                "weights": sha256_of(self.checkpoint / WEIGHTS)}


def fold_folders(run_dir: str | Path, fold: str | None = None, draw: int | None = None,
                 seed: int = 0) -> list[ModelFolder]:
    """The model folders that `run_dir` and a fold choice name.

    Args:
        run_dir: a model folder (`RUN/fold_K`, or a pre-training run), or a run with fold_K/ and fold_all/ folders.
        fold: None (every cross-validation fold; the all-data model when there are none), "all" (every
            cross-validation fold), or a comma list of fold numbers and "all-data" ("0,3,5").
        draw: instead of `fold`, this many cross-validation folds drawn at random with `seed`.

    Raises:
        UserError: `run_dir` does not exist, is not a run, or has no such fold.
    """
    if not Path(run_dir).exists():
        raise UserError(f"{run_dir}: training run does not exist")
    single = ModelFolder(run_dir)
    if single.is_model():
        if fold not in (None, "all") or draw is not None:
            raise UserError(f"{run_dir}: holds one trained model, not fold folders; leave out --fold")
        return [single]
    folds = RunFolder(run_dir).folds()
    if not folds:
        raise UserError(f"{run_dir}: not a training run (no config.yaml and no fold_K folders)")
    _refuse_folds_without_config(Path(run_dir))
    return [folds[f] for f in select_folds(list(folds), run_dir, fold, draw, seed)]


def _refuse_folds_without_config(run_dir: Path) -> None:
    """A fold folder with checkpoints but no config.yaml is a damaged model, not an absent one: leaving it out of
    the default folds would make the ensemble smaller without a word."""
    for path in sorted(run_dir.glob("fold_*")):
        model = ModelFolder(path)
        if model.fold is not None and not model.is_model() and model.checkpoints.is_dir():
            raise UserError(f"{model.config}: missing beside {path.name}'s checkpoints, so the fold cannot be loaded; "
                            "restore it, or remove the folder to leave the fold out")


def checkpoint_folder(model: ModelFolder, which: str = "latest") -> tuple[Path, int]:
    """The checkpoint folder of a model ("latest" or "best") and the epochs trained when it was saved."""
    folder = model.best_checkpoint if which == "best" else model.latest_checkpoint()
    if folder is None:
        raise UserError(f"{model.path}: no checkpoint yet")
    if not is_complete(folder):
        raise UserError(f"{folder}: checkpoint is missing or incomplete")
    return folder, int(read_state(folder)["trainer"]["epoch"])


def load_trained_model(model: ModelFolder | str | Path, which: str = "latest",
                       device: torch.device | str = "cpu") -> TrainedModel:
    """The network of a model folder with its checkpoint's weights, in eval mode on `device`."""
    model = model if isinstance(model, ModelFolder) else ModelFolder(model)
    config = load_config(model.config)
    if is_pretraining(config.preset):
        raise UserError(f"{model.path}: a pre-training run ({config.preset}), whose encoder does not segment; train "
                        f"a model with `transunet3d train ... --init-encoder {model.path}`")
    folder, epoch = checkpoint_folder(model, which)
    network = model_from_config(config)
    weights = read_weights(folder)
    check_finite_weights(weights, folder / WEIGHTS)
    try:
        network.load_state_dict(weights)
    except RuntimeError as error:
        first_line = str(error).strip().splitlines()[0]
        raise UserError(f"{folder / WEIGHTS}: does not fit the model of {model.config.name} ({first_line})") from None
    network = network.to(device).eval()
    return TrainedModel(network, config, folder, epoch, model)


def unfinished_warning(model: str, epoch: int, epochs: int) -> str | None:
    """The `warning:` line for a model whose weights were saved before its training finished; None once finished.

    Args:
        model: how the line names the model (its checkpoint folder, or an exported network).
        epoch, epochs: the epochs it was trained for, and those its config asks for.
    """
    if epoch >= epochs:
        return None
    return f"warning: {model}: trained for {epoch} of {epochs} epochs"


def ensemble_scheme(models: list[TrainedModel]) -> LabelScheme:
    """The label scheme that every model of an ensemble was trained with.

    Raises:
        UserError: the models predict the regions of different schemes, which cannot be averaged.
    """
    schemes = {model.scheme.name: model for model in models}
    if len(schemes) > 1:
        (first, one), (second, other) = list(schemes.items())[:2]
        raise UserError(f"{other.folder.path}: trained with the labels {second}, {one.folder.path} with {first}; "
                        "an ensemble needs models of one label scheme")
    return models[0].scheme


def load_models(run_dirs: list[str | Path], fold: str | None = None, which: str = "latest",
                device: torch.device | str = "cpu", draw: int | None = None, seed: int = 0) -> list[TrainedModel]:
    """Every model that `--model RUN_DIR ... --fold` (or `--random-folds`) names, for an ensemble.

    Raises:
        UserError: as `fold_folders` and `load_trained_model`, or a model named twice (`--model RUN --model
            RUN/fold_0`): it would count twice in the ensemble's mean.
        TypeError, ValueError: `run_dirs` is one path instead of a list, or empty.
    """
    if isinstance(run_dirs, (str, Path)):  # iterating a path's string would name a run per character
        raise TypeError(f"run_dirs: a list of run folders, not one {type(run_dirs).__name__} ({run_dirs!r})")
    if not run_dirs:
        raise ValueError("run_dirs: no run folder given; an ensemble needs at least one model")
    folders = [folder for run in run_dirs for folder in fold_folders(run, fold, draw, seed)]
    refuse_repeated_models([folder.path for folder in folders])
    return [load_trained_model(folder, which, device) for folder in folders]


def refuse_repeated_models(paths: list[Path]) -> None:
    """Refuse an ensemble that names one model twice (through two --model paths, or a link)."""
    seen: dict[Path, Path] = {}
    for path in paths:
        real = path.resolve()
        if real in seen:
            raise UserError(f"{path}: the same model as {seen[real]}; an ensemble that names it twice would weigh "
                            "it twice")
        seen[real] = path
