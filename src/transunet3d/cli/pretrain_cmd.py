"""`transunet3d pretrain`: masked-autoencoder pre-training of the ViT encoder on a preprocessed cache."""

from __future__ import annotations

from pathlib import Path

import click
import torch

from transunet3d.cli.config_cmd import set_option
from transunet3d.config import PRESETS, build_config, load_config
from transunet3d.errors import UserError
from transunet3d.training.checkpoint import latest_checkpoint
from transunet3d.training.distributed import Distributed
from transunet3d.training.pretraining import PretrainTask
from transunet3d.training.trainer import Trainer

_PATH = click.Path(path_type=Path)
MAE_PRESETS = [name for name in PRESETS if name.startswith("mae-")]


@click.command("pretrain")
@click.argument("preprocessed", type=_PATH)
@click.option("--out", "run_dir", type=_PATH, required=True, help="Run folder.")
@click.option("--preset", type=click.Choice(MAE_PRESETS), default="mae-tiny", show_default=True,
              help="mae-paper: the paper's setting (128^3 crops, slice2d tokens, 4800 epochs); mae-tiny: CPU size.")
@set_option
@click.option("--resume", is_flag=True, help="Continue from the run folder's latest checkpoint and its config.")
@click.option("--device", default=None, help="cpu, cuda, cuda:1, ... [default: cuda when available]")
def pretrain_command(preprocessed: Path, run_dir: Path, preset: str, overrides: tuple[str, ...], resume: bool,
                     device: str | None) -> None:
    """Pre-train the ViT encoder as a masked autoencoder on the cases of PREPROCESSED (labels are not used).

    Use the result with `transunet3d train ... --init-encoder RUN_DIR`.
    """
    if not preprocessed.is_dir():
        raise UserError(f"{preprocessed}: not a folder")
    if not resume and latest_checkpoint(run_dir) is not None:
        raise UserError(f"{run_dir} already holds a run: add --resume, or choose another --out")
    config = (load_config(run_dir / "config.yaml") if resume and (run_dir / "config.yaml").exists()
              else build_config(preset, overrides))
    processes = Distributed.from_environment(use_cuda=torch.cuda.is_available() and device != "cpu")
    try:
        trainer = Trainer(PretrainTask(config, preprocessed, processes), run_dir, device, processes)
        if resume:
            trainer.resume()
        state = trainer.fit()
        if processes.is_main:
            last = trainer.log.rows[-1]["val_loss"] if trainer.log.rows else float("nan")
            click.echo(f"pretrained {state.epoch} epochs, validation loss {last:.4f} -> {run_dir}")
    finally:
        processes.close()
