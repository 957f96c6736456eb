"""`transunet3d splits`: the k-fold cross-validation splits of a preprocessed dataset."""

from __future__ import annotations

from pathlib import Path

import click

from transunet3d.cli.options import PATH
from transunet3d.config.schema import MAX_SEED, DataConfig
from transunet3d.data.splits import write_splits


@click.command("splits")
@click.argument("preprocessed", type=PATH)
@click.option("--folds", type=int, default=DataConfig.num_folds, show_default=True,
              help="Number of cross-validation folds.")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=DataConfig.split_seed, show_default=True,
              help="Shuffling seed.")
def splits_command(preprocessed: Path, folds: int, seed: int) -> None:
    """Write PREPROCESSED/splits.json: deterministic k-fold splits, time points of a patient kept together."""
    path = write_splits(preprocessed, folds, seed, setting="--folds")
    click.echo(f"wrote {folds} folds to {path}")
