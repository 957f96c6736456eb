"""Read the encoder of a `transunet3d pretrain` run and put it into a segmentation network."""

from __future__ import annotations

from pathlib import Path

import torch

from transunet3d.errors import ConfigError
from transunet3d.models.transfer import transfer_encoder
from transunet3d.runs.layout import ModelFolder
from transunet3d.training.checkpoint import WEIGHTS, check_finite_weights, read_weights


def pretrained_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The latest checkpoint weights of a pretraining run folder.

    Raises:
        ConfigError: naming `run_dir`, which does not exist or holds no checkpoint.
    """
    if not Path(run_dir).exists():
        raise ConfigError(f"{run_dir}: does not exist (model.init_encoder names a `transunet3d pretrain` run)")
    checkpoint = ModelFolder(run_dir).latest_checkpoint()
    if checkpoint is None:
        raise ConfigError(f"{run_dir}: not a pretraining run with a checkpoint yet")
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
