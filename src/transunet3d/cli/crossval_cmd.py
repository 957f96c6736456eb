"""`transunet3d crossval`: out-of-fold validation of the finished folds of a run, pooled into RUN/cv."""

from __future__ import annotations

from pathlib import Path

import click

from transunet3d.cli.options import PATH
from transunet3d.config.io import load_config
from transunet3d.crossval import check_fold, pool_folds, validate_fold
from transunet3d.devices import Launch, parse_device
from transunet3d.errors import UserError
from transunet3d.runs.folds import parse_fold_list
from transunet3d.runs.layout import ModelFolder, RunFolder


@click.command("crossval")
@click.argument("run_dir", metavar="RUN", type=PATH)
@click.option("--fold", default=None, help="Folds to validate: a number or a comma list.  [default: every fold]")
@click.option("--preprocessed", type=PATH, default=None,
              help="The training cache.  [default: the one each fold was trained on, from its config]")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes for scoring the validation cases.")
@click.option("--device", default=None, help="cpu, cuda, cuda:1, ...  [default: cuda when available]")
def crossval_command(run_dir: Path, fold: str | None, preprocessed: Path | None, workers: int,
                     device: str | None) -> None:
    """Predict and score each fold's validation cases with its final model (RUN/fold_K/validation), then pool
    every validated fold into RUN/cv. `train` does this after each fold; this command does it for existing runs,
    and continues an interrupted validation where it stopped."""
    world = Launch.from_environment().world
    if world > 1:  # every process validated every fold into the same files
        raise UserError(f"crossval runs in one process (WORLD_SIZE={world}): start it without torchrun; it "
                        "predicts on one device")
    target = parse_device(device)
    run = RunFolder(run_dir)
    folds = run.numbered_folds()
    if not folds:
        raise UserError(f"{run_dir}: no cross-validation folds (fold_K with a config.yaml)")
    chosen = parse_fold_list(fold) if fold is not None else list(folds)
    missing = [str(f) for f in chosen if f not in folds]
    if missing:
        raise UserError(f"{run_dir}: no fold {', '.join(missing)}; it has folds {', '.join(map(str, folds))}")
    # every fold is checked (config, weights, cache, cases) before the first one writes its validation
    checked = {number: check_fold(folds[number], _cache(folds[number], preprocessed), target) for number in chosen}
    for number, fold_validation in checked.items():
        summary = validate_fold(fold_validation, workers)
        click.echo(f"fold {number}: mean lesion-wise Dice "
                   f"{summary['overall'].get('mean_lesionwise_dice', float('nan')):.4f} on "
                   f"{summary['cases_scored']} cases")
    pooled = pool_folds(run)
    click.echo(f"cross-validation ({len(pooled['folds'])} fold(s), {pooled['cases_scored']} cases): mean "
               f"lesion-wise Dice {pooled['overall'].get('mean_lesionwise_dice', float('nan')):.4f} -> "
               f"{run.cv.folder}")


def _cache(folder: ModelFolder, given: Path | None) -> Path:
    """The preprocessed cache of a fold: the one given, else the one its config records."""
    if given is not None:
        return given
    recorded = load_config(folder.config).data.preprocessed
    if not recorded:
        raise UserError(f"{folder.config}: does not record its preprocessed cache; give --preprocessed")
    return Path(recorded)
