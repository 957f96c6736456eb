"""`transunet3d pretrain`: masked-autoencoder pre-training of the ViT encoder on a preprocessed cache."""

from __future__ import annotations

from pathlib import Path

import click

from transunet3d.cli.config_cmd import set_option, warn_unapplied, warn_unread
from transunet3d.cli.options import PATH
from transunet3d.config import build_config, load_config
from transunet3d.config.presets import MAE_PRESETS
from transunet3d.config.schema import PRETRAINING_SECTIONS
from transunet3d.devices import parse_device
from transunet3d.jobs.training import pretrain_model
from transunet3d.runs.layout import ModelFolder
from transunet3d.training.distributed import Distributed


@click.command("pretrain")
@click.argument("preprocessed", type=PATH)
@click.option("--out", "run_dir", type=PATH, required=True, help="Run folder.")
@click.option("--preset", type=click.Choice(list(MAE_PRESETS)), default="mae-tiny", show_default=True,
              help="mae-paper: the paper's setting (128^3 crops, slice2d tokens, 4800 epochs); mae-tiny: CPU size.")
@set_option
@click.option("--resume", is_flag=True, help="Continue from the run folder's latest checkpoint and its config.")
@click.option("--device", default=None, help="cpu, cuda, cuda:1, ... [default: cuda when available]")
def pretrain_command(preprocessed: Path, run_dir: Path, preset: str, overrides: tuple[str, ...], resume: bool,
                     device: str | None) -> None:
    """Pre-train the ViT encoder as a masked autoencoder on the cases of PREPROCESSED (labels are not used).

    Use the result with `transunet3d train ... --init-encoder RUN_DIR`.
    """
    target = parse_device(device)
    warn_unread(list(overrides), PRETRAINING_SECTIONS, "MAE pre-training")
    config = build_config(preset, overrides)
    folder = ModelFolder(run_dir)
    given = click.get_current_context().get_parameter_source("preset") == click.core.ParameterSource.COMMANDLINE
    if resume and (given or overrides) and folder.config.is_file():
        warn_unapplied(folder.path, load_config(folder.config), config, preset if given else None, overrides)
    processes = Distributed.from_environment(use_cuda=target.type == "cuda", tell=click.echo)
    try:
        trainer = pretrain_model(preprocessed, folder, config, resume, target, processes)
    finally:
        processes.close()
    if processes.is_main:
        last = trainer.log.rows[-1]["val_loss"] if trainer.log.rows else float("nan")
        click.echo(f"pretrained {trainer.state.epoch} epochs, validation loss {last:.4f} -> {run_dir}")
