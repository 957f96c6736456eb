"""Read the encoder of a `transunet3d pretrain` run and put it into a segmentation network."""

from __future__ import annotations

from pathlib import Path

import torch

from transunet3d.config.io import load_config
from transunet3d.config.presets import is_pretraining
from transunet3d.errors import ConfigError
from transunet3d.models.transfer import transfer_encoder
from transunet3d.runs.layout import ModelFolder, RunFolder
from transunet3d.training.checkpoint import WEIGHTS, check_finite_weights, read_weights


def pretrained_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The latest checkpoint weights of a pretraining run folder.

    Raises:
        ConfigError: naming `run_dir`, which does not exist or holds no checkpoint.
    """
    if not Path(run_dir).exists():
        raise ConfigError(f"{run_dir}: does not exist (model.init_encoder names a `transunet3d pretrain` run)")
    if not Path(run_dir).is_dir():
        raise ConfigError(f"{run_dir}: not a folder (model.init_encoder names a `transunet3d pretrain` run)")
    folder = ModelFolder(run_dir)
    if folder.fold is not None or RunFolder(run_dir).folds() or (
            folder.is_model() and not is_pretraining(load_config(folder.config).preset)):
        raise ConfigError(f"{run_dir}: a segmentation training run, not a `transunet3d pretrain` run; "
                          "model.init_encoder takes the encoder of a masked-autoencoder pre-training")
    if not folder.is_model():
        raise ConfigError(f"{run_dir}: not a `transunet3d pretrain` run (no {folder.config.name})")
    checkpoint = folder.latest_checkpoint()
    if checkpoint is None:
        raise ConfigError(f"{run_dir}: a pre-training run without a checkpoint yet")
    weights = read_weights(checkpoint)
    check_finite_weights(weights, checkpoint / WEIGHTS)  # NaN weights trained on with a finite loss, unnoticed
    return weights


def load_pretrained_encoder(network: torch.nn.Module, run_dir: Path) -> list[str]:
    """Initialise `network`'s ViT from the MAE of `run_dir`; returns the names of the tensors it loaded.

    Raises:
        ConfigError: naming `run_dir` once: no pretraining run there, or its encoder does not fit `network`.
    """
    weights = pretrained_weights(run_dir)
    try:
        return transfer_encoder(network, weights)
    except ConfigError as error:
        raise ConfigError(f"{run_dir}: {error}") from None
