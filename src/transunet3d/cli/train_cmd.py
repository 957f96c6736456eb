"""`transunet3d train`: train one fold, every fold or the all-data model of an experiment on a preprocessed cache."""

from __future__ import annotations

from pathlib import Path

import click

from transunet3d.cli.config_cmd import set_option, warn_unapplied, warn_unread
from transunet3d.cli.options import PATH
from transunet3d.config import ExperimentConfig, build_config, load_config
from transunet3d.config.presets import SEGMENTATION_PRESETS
from transunet3d.config.schema import SEGMENTATION_SECTIONS
from transunet3d.devices import parse_device
from transunet3d.jobs.training import (
    TrainingJob,
    cache_defaults,
    check_split_overrides,
    folds_to_train,
    train_folds,
)
from transunet3d.runs.layout import RunFolder
from transunet3d.training.distributed import Distributed


@click.command("train")
@click.argument("preprocessed", type=PATH)
@click.option("--preset", type=click.Choice(list(SEGMENTATION_PRESETS)), default="tiny", show_default=True,
              help="Experiment preset (paper-encoder, paper-decoder, paper-both, unet, tiny, ...).")
@click.option("--fold", default="0", show_default=True,
              help="Cross-validation fold K (into OUT/fold_K), 'all' (every fold in turn) or 'all-data' (one model "
                   "on every case, into OUT/fold_all).")
@click.option("--out", "run_dir", type=PATH, required=True, help="Run folder.")
@set_option
@click.option("--resume", is_flag=True, help="Continue each fold from its latest checkpoint, with its saved config.")
@click.option("--init-encoder", "pretrain_run", type=PATH, default=None,
              help="A `transunet3d pretrain` run: its MAE encoder blocks initialise the model's ViT.")
@click.option("--validate/--no-validate", default=True, show_default=True,
              help="After each fold: predict and score its validation cases (OUT/fold_K/validation), then pool "
                   "the finished folds into OUT/cv.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes for scoring the validation cases.")
@click.option("--device", default=None, help="cpu, cuda, cuda:1, ... [default: cuda when available]")
def train_command(preprocessed: Path, preset: str, fold: str, run_dir: Path, overrides: tuple[str, ...],
                  resume: bool, pretrain_run: Path | None, validate: bool, workers: int, device: str | None) -> None:
    """Train on the cases of PREPROCESSED (see `transunet3d preprocess`) with the given preset, one output per
    region of the cache's label scheme (recorded as data.labels)."""
    target = parse_device(device)
    check_split_overrides(list(overrides), preprocessed)
    warn_unread(list(overrides), SEGMENTATION_SECTIONS, "training")
    config = build_config(preset, [*cache_defaults(preprocessed), *overrides])
    if pretrain_run is not None:
        config.model.init_encoder = str(pretrain_run)
    given = click.get_current_context().get_parameter_source("preset") == click.core.ParameterSource.COMMANDLINE
    if resume and (given or overrides or pretrain_run is not None):
        _warn_unapplied(RunFolder(run_dir), config, preset if given else None, overrides, pretrain_run is not None)
    job = TrainingJob(preprocessed, RunFolder(run_dir), config, folds_to_train(fold, preprocessed, config),
                      resume=resume, device=target, validate=validate, workers=workers)
    processes = Distributed.from_environment(use_cuda=target.type == "cuda", tell=click.echo)
    try:
        summary = train_folds(job, processes, echo=click.echo)
    finally:
        processes.close()
    if summary is not None:
        click.echo(f"cross-validation ({len(summary['folds'])} fold(s), {summary['cases_scored']} cases): mean "
                   f"lesion-wise Dice {summary['overall'].get('mean_lesionwise_dice', float('nan')):.4f} -> "
                   f"{job.run.cv.folder}")


def _warn_unapplied(run: RunFolder, given: ExperimentConfig, preset: str | None, overrides: tuple[str, ...],
                    init_encoder: bool = False) -> None:
    """`warn_unapplied` against the saved config of a resumed run's first started fold (a run without a started
    fold trains with the given settings)."""
    started = list(run.folds().values())
    if started:
        warn_unapplied(run.path, load_config(started[0].config), given, preset, overrides,
                       ("--init-encoder",) if init_encoder else ())
