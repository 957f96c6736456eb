"""Trained models from run folders: one fold (`train --fold K`) or a cross-validation run (`train --fold all`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from transunet3d.config.io import load_config
from transunet3d.config.schema import ExperimentConfig
from transunet3d.errors import UserError
from transunet3d.models import model_from_config
from transunet3d.models.network import TransUNet3D
from transunet3d.training.checkpoint import STATE, WEIGHTS, is_complete, latest_checkpoint

CHECKPOINTS = ("latest", "best")
_FOLD_FOLDER = re.compile(r"fold_(\d+)")


@dataclass
class TrainedModel:
    """A network in eval mode with the config it was trained with.

    `epoch` counts the epochs it had been trained for when its checkpoint was saved.
    """

    network: TransUNet3D
    config: ExperimentConfig
    checkpoint: Path
    epoch: int

    @property
    def finished(self) -> bool:
        return self.epoch >= self.config.train.epochs


def fold_folders(run_dir: str | Path, fold: str | None = None) -> list[Path]:
    """The single-model folders that `run_dir` and `fold` ("all", a number, or None = all) name.

    Raises:
        UserError: `run_dir` is not a run, or has no such fold.
    """
    run_dir = Path(run_dir)
    if (run_dir / "config.yaml").is_file():
        if fold not in (None, "all"):
            raise UserError(f"{run_dir}: holds one trained model, not fold folders; leave out --fold")
        return [run_dir]
    folds = {int(m[1]): p for p in run_dir.glob("fold_*")
             if (m := _FOLD_FOLDER.fullmatch(p.name)) and (p / "config.yaml").is_file()}
    if not folds:
        raise UserError(f"{run_dir}: not a training run (no config.yaml and no fold_K folders)")
    if fold in (None, "all"):
        return [folds[k] for k in sorted(folds)]
    if not fold.isdigit() or int(fold) not in folds:
        raise UserError(f"{run_dir}: no fold {fold!r}; it has folds {', '.join(map(str, sorted(folds)))}")
    return [folds[int(fold)]]


def checkpoint_folder(run_dir: Path, which: str = "latest") -> tuple[Path, int]:
    """The checkpoint folder of a single-model run ("latest" or "best") and the epochs trained when it was saved."""
    folder = run_dir / "checkpoints" / "best" if which == "best" else latest_checkpoint(run_dir)
    if folder is None:
        raise UserError(f"{run_dir}: no checkpoint yet (checkpoints/latest.json is missing)")
    if not is_complete(folder):
        raise UserError(f"{folder}: checkpoint is missing or incomplete")
    epoch = torch.load(folder / STATE, weights_only=True)["trainer"]["epoch"]
    return folder, int(epoch)


def load_trained_model(run_dir: str | Path, which: str = "latest",
                       device: torch.device | str = "cpu") -> TrainedModel:
    """The network of a single-model run folder with its checkpoint's weights, in eval mode on `device`."""
    run_dir = Path(run_dir)
    config = load_config(run_dir / "config.yaml")
    folder, epoch = checkpoint_folder(run_dir, which)
    network = model_from_config(config.model, tuple(config.train.patch_size))
    try:
        network.load_state_dict(load_file(str(folder / WEIGHTS)))
    except (RuntimeError, SafetensorError) as error:
        first_line = str(error).strip().splitlines()[0]
        raise UserError(f"{folder / WEIGHTS}: does not fit the model of config.yaml ({first_line})") from None
    network = network.to(device).eval()
    return TrainedModel(network, config, folder, epoch)


def load_models(run_dirs: list[str | Path], fold: str | None = None, which: str = "latest",
                device: torch.device | str = "cpu") -> list[TrainedModel]:
    """Every model that `--model RUN_DIR ... --fold` names, for an ensemble."""
    return [load_trained_model(folder, which, device) for run in run_dirs for folder in fold_folders(run, fold)]
