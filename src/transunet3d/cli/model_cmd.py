"""`transunet3d model-info`: parameters and forward GFLOPs of a model variant."""

from __future__ import annotations

import click

from transunet3d.models import list_models, model_info


@click.command("model-info")
@click.argument("name", type=click.Choice(list_models()))
@click.option("--width", type=click.Choice(["full", "tiny"]), default="full", show_default=True)
@click.option("--patch", type=click.IntRange(min=64, max=1024), default=128, show_default=True,
              help="Cubic patch edge in voxels: a multiple of 32, at least 64 (the bottleneck needs 2^3 voxels), "
                   "at most 1024.")
def model_info_command(name: str, width: str, patch: int) -> None:
    """Print parameters and forward GFLOPs (one 4-channel patch, inference mode) of model NAME."""
    if patch % 32:
        raise click.BadParameter("the patch edge must be a multiple of 32 (five 2x downsamplings)",
                                 param_hint="--patch")
    info = model_info(name, width, patch)
    click.echo(f"{name} ({width}): {info.parameters / 1e6:.2f}M parameters, "
               f"{info.gflops:.1f} GFLOP per forward pass of a 4x{patch}^3 patch")
