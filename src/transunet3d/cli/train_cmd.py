"""`transunet3d train`: train one fold (or all folds) of an experiment on a preprocessed cache."""

from __future__ import annotations

import json
from pathlib import Path

import click
import torch

from transunet3d.cli.config_cmd import set_option
from transunet3d.config import PRESETS, ExperimentConfig, build_config, load_config
from transunet3d.data.cache import SPLITS_FILE
from transunet3d.errors import UserError
from transunet3d.training.checkpoint import latest_checkpoint
from transunet3d.training.distributed import Distributed
from transunet3d.training.folds import ALL_DATA, Fold, fold_folder_name, fold_label, parse_fold
from transunet3d.training.segmentation import INIT_ENCODER_FILE, SegmentationTask
from transunet3d.training.trainer import Trainer

_PATH = click.Path(path_type=Path)


@click.command("train")
@click.argument("preprocessed", type=_PATH)
@click.option("--preset", type=click.Choice(list(PRESETS)), default="tiny", show_default=True,
              help="Experiment preset (paper-encoder, paper-decoder, paper-both, unet, tiny, ...).")
@click.option("--fold", default="0", show_default=True,
              help="Cross-validation fold K (into OUT), 'all' (every fold in turn, into OUT/fold_K) or 'all-data' "
                   "(one model on every case, into OUT/fold_all).")
@click.option("--out", "run_dir", type=_PATH, required=True, help="Run folder.")
@set_option
@click.option("--resume", is_flag=True, help="Continue from the run folder's latest checkpoint and its config.")
@click.option("--init-encoder", "pretrain_run", type=_PATH, default=None,
              help="A `transunet3d pretrain` run: its MAE encoder blocks initialise the model's ViT.")
@click.option("--device", default=None, help="cpu, cuda, cuda:1, ... [default: cuda when available]")
def train_command(preprocessed: Path, preset: str, fold: str, run_dir: Path, overrides: tuple[str, ...],
                  resume: bool, pretrain_run: Path | None, device: str | None) -> None:
    """Train on the cases of PREPROCESSED (see `transunet3d preprocess`) with the given preset."""
    if not preprocessed.is_dir():
        raise UserError(f"{preprocessed}: not a folder")
    config = build_config(preset, overrides)
    if pretrain_run is not None:
        config.model.init_encoder = str(pretrain_run)
    processes = Distributed.from_environment(use_cuda=torch.cuda.is_available() and device != "cpu")
    try:
        for number, folder in _fold_folders(fold, preprocessed, config, run_dir):
            _train_fold(config, preprocessed, number, folder, resume, device, processes)
    finally:
        processes.close()


def _fold_folders(fold: str, preprocessed: Path, config: ExperimentConfig, run_dir: Path) -> list[tuple[Fold, Path]]:
    """(fold, run folder) of each model that `--fold` asks for."""
    if fold == "all":
        return [(number, run_dir / fold_folder_name(number)) for number in range(_fold_count(preprocessed, config))]
    chosen = parse_fold(fold)
    return [(chosen, (run_dir / fold_folder_name(ALL_DATA)) if chosen == ALL_DATA else run_dir)]


def _train_fold(config: ExperimentConfig, preprocessed: Path, number: Fold, folder: Path, resume: bool,
                device: str | None, processes: Distributed) -> None:
    """Train (or resume) one fold into `folder`."""
    started = latest_checkpoint(folder) is not None
    if not resume and started:
        raise UserError(f"{folder} already holds a training run: add --resume, or choose another --out")
    fold_config = load_config(folder / "config.yaml") if resume and (folder / "config.yaml").exists() else config
    task = SegmentationTask(fold_config, preprocessed, number, processes, initialise=not (resume and started))
    if task.transferred and processes.is_main:
        click.echo(f"initialised {len(task.transferred)} ViT tensors from {fold_config.model.init_encoder} "
                   f"(listed in {folder / INIT_ENCODER_FILE})")
    trainer = Trainer(task, folder, device, processes)
    if resume:
        trainer.resume()
    state = trainer.fit()
    if processes.is_main:
        click.echo(f"{fold_label(number)}: {state.epoch} epochs, EMA pseudo-Dice {state.ema_score:.4f} -> {folder}")


def _fold_count(preprocessed: Path, config: ExperimentConfig) -> int:
    """Folds of PREPROCESSED/splits.json when it exists, else the config's number of folds."""
    splits = preprocessed / SPLITS_FILE
    return len(json.loads(splits.read_text())) if splits.exists() else config.data.num_folds
