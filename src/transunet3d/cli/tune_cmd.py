"""`transunet3d tune`: choose a run's post-processing on its pooled out-of-fold predictions."""

from __future__ import annotations

from pathlib import Path

import click

from transunet3d.cli.options import PATH
from transunet3d.jobs.tuning import tune_run, unvalidated_folds
from transunet3d.runs.layout import RunFolder


@click.command("tune")
@click.argument("run_dir", metavar="RUN", type=PATH)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Cases scored in parallel (one process each).")
def tune_command(run_dir: Path, workers: int) -> None:
    """Choose per region the threshold and minimum lesion size, and the coreless-WT rule, that maximise the mean
    lesion-wise Dice of RUN's out-of-fold predictions (every validated fold, see `transunet3d crossval`); the
    simpler setting wins ties. Writes RUN/postprocessing.json, which `predict --model RUN` then applies."""
    run = RunFolder(run_dir)
    result = tune_run(run, workers=workers)
    settings = result.settings
    click.echo(f"{result.cases} out-of-fold cases, {len(result.tried)} settings scored in {result.seconds:.0f} s")
    for index, region in enumerate(settings.scheme.region_names):
        click.echo(f"{region}: threshold {settings.thresholds[index]:g}, minimum lesion "
                   f"{settings.min_lesion_mm3[index]:g} mm^3; lesion-wise Dice {result.regions_before[region]:.4f} "
                   f"-> {result.regions_after[region]:.4f}")
    click.echo(f"WT without a core dropped: {'yes' if settings.require_core else 'no'}")
    click.echo(f"mean lesion-wise Dice {result.score_before:.4f} -> {result.score_after:.4f} -> {run.postprocessing}")
    if result.score_held_out is not None:
        click.echo(f"held out (each case with the settings tuned on the others): {result.score_held_out:.4f}, "
                   "what tuning is worth on new cases")
    else:
        click.echo(f"warning: {run.path}: tuned on {result.cases} case(s): no held-out estimate of what the settings "
                   "are worth on new cases, and `predict` applies them by default", err=True)
    left_out = unvalidated_folds(run)
    if left_out:
        click.echo(f"warning: {run.path}: fold(s) {', '.join(map(str, left_out))} have no out-of-fold validation "
                   "and are not in the tuning (`transunet3d crossval RUN` validates them)", err=True)
