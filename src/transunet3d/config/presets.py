"""Named presets: each is a set of `section.field` overrides on the defaults of `schema.ExperimentConfig`."""

from __future__ import annotations

from typing import Any

from transunet3d.errors import ConfigError

# Toy size for CPU tests and the demo: the same code as the paper models, small widths and patches.
_TINY: dict[str, Any] = {
    "model.width": "tiny",
    # nnU-Net's SGD (momentum 0.99, lr 1e-2): on CPU-sized runs it learns all three regions where AdamW 3e-3
    # left TC behind (docs/training.md).
    "train.optimizer": "sgd",
    "train.lr": 1e-2,
    "train.patch_size": (64, 64, 64),
    "loop.batch_size": 2,
    "loop.epochs": 20,
    "loop.iterations_per_epoch": 25,
    "loop.num_workers": 0,
    "infer.tta": "flip",
}

_MAE_LOOP: dict[str, Any] = {
    "loop.epochs": 4800,
    "loop.iterations_per_epoch": 0,
    "loop.checkpoint_every": 10,
    "loop.val_every": 10,
    "loop.val_batches": 4,
    "loop.num_workers": 4,
}

PRESETS: dict[str, dict[str, Any]] = {
    "paper-encoder": {"model.name": "encoder"},
    "paper-decoder": {"model.name": "decoder", "train.cnn_deep_supervision": False},
    "paper-both": {"model.name": "both"},
    # The paper's nnU-Net baseline trains as nnU-Net does: SGD (Nesterov, momentum 0.99), lr 1e-2, weight decay
    # 3e-5, poly 0.9, 1000 epochs of 250 iterations.
    "unet": {"model.name": "unet", "train.optimizer": "sgd", "train.lr": 1e-2, "train.weight_decay": 3e-5,
             "train.momentum": 0.99, "train.poly_power": 0.9, "loop.epochs": 1000,
             "loop.iterations_per_epoch": 250},
    "tiny": {**_TINY, "model.name": "encoder"},
    "tiny-unet": {**_TINY, "model.name": "unet"},
    "tiny-decoder": {**_TINY, "model.name": "decoder", "train.cnn_deep_supervision": False},
    "tiny-both": {**_TINY, "model.name": "both"},
    # MAE's loop: 4800 epochs of one pass over the cases, checkpoints and validation every 10 epochs.
    "mae-paper": {"model.name": "encoder", **_MAE_LOOP},
    "mae-tiny": {
        "model.name": "encoder",
        "model.width": "tiny",
        "pretrain.patch_size": (64, 64, 64),
        **_MAE_LOOP,
        "loop.epochs": 20,
        "loop.iterations_per_epoch": 25,
        "loop.batch_size": 4,
        "pretrain.warmup_epochs": 2,
        # 1.5e-4 x 4 / 256 would barely move a toy model in a few hundred CPU steps: 1.6e-3 effective instead.
        "pretrain.base_lr": 0.1,
        "pretrain.decoder_dim": 64,
        "pretrain.decoder_heads": 4,
        "loop.val_every": 1,
        "loop.checkpoint_every": 1,
        "loop.num_workers": 0,
    },
}


# `transunet3d pretrain` trains the MAE presets, `transunet3d train` the others.
MAE_PRESETS = tuple(name for name in PRESETS if name.startswith("mae-"))
SEGMENTATION_PRESETS = tuple(name for name in PRESETS if name not in MAE_PRESETS)


def is_pretraining(preset: str | None) -> bool:
    """Whether a config of `preset` (as config.yaml records it) is a masked-autoencoder pre-training's."""
    return preset in MAE_PRESETS


def preset_overrides(name: str) -> dict[str, Any]:
    """The overrides that define preset `name`."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]

