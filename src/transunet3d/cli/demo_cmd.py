"""`transunet3d demo` and `transunet3d report`."""

from __future__ import annotations

from pathlib import Path

import click

from transunet3d.cli.options import PATH
from transunet3d.data.phantom.generate import MAX_CASE_INDEX, MAX_SIDE
from transunet3d.demo.pipeline import DemoSettings, run_demo
from transunet3d.devices import parse_device
from transunet3d.errors import UserError
from transunet3d.report.build import write_report

_DEFAULTS = DemoSettings()


@click.command("demo")
@click.argument("out", type=PATH)
@click.option("--mae", is_flag=True, help="Pre-train the ViT as a masked autoencoder first (its own "
              f"{_DEFAULTS.mae_epochs} epochs of mae-tiny), then transfer it.")
@click.option("--train-cases", type=click.IntRange(2, MAX_CASE_INDEX - 1), default=_DEFAULTS.train_cases,
              show_default=True)
@click.option("--test-cases", type=click.IntRange(1, MAX_CASE_INDEX - 2), default=_DEFAULTS.test_cases,
              show_default=True)
@click.option("--shape", type=click.IntRange(64, MAX_SIDE), nargs=3, default=_DEFAULTS.shape, show_default=True,
              help="Phantom size in voxels (the voxel size follows: the brain always fits).")
@click.option("--epochs", type=click.IntRange(min=1), default=_DEFAULTS.epochs, show_default=True,
              help="Epochs of the segmentation training.")
@click.option("--iterations", type=click.IntRange(min=1), default=_DEFAULTS.iterations_per_epoch,
              show_default=True, help="Iterations per epoch of the segmentation training.")
@click.option("--workers", type=click.IntRange(min=1), default=_DEFAULTS.workers, show_default=True,
              help="Processes for phantoms and preprocessing (a rerun may use another number).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, ...")
def demo_command(out: Path, mae: bool, train_cases: int, test_cases: int, shape: tuple[int, int, int], epochs: int,
                 iterations: int, workers: int, device: str) -> None:
    """The whole pipeline on synthetic phantoms into OUT, ending with OUT/report.html.

    Phantoms (training and held-out test cases) -> preprocess -> splits -> [MAE] -> train the tiny encoder on
    fold 0 and validate it on the fold's validation cases -> tune the post-processing on them -> predict the test
    cases with TTA -> lesion-wise evaluation -> report. With the defaults about 12 minutes on 2 CPU cores with bf16
    units, 37-42 on cores without (fp32; README); a rerun continues where it stopped.
    """
    target = parse_device(device)
    if train_cases + test_cases > MAX_CASE_INDEX:
        raise UserError(f"--train-cases {train_cases} and --test-cases {test_cases}: together at most "
                        f"{MAX_CASE_INDEX} (case ids have five digits, as BraTS-MET-00001-000)")
    settings = DemoSettings(train_cases=train_cases, test_cases=test_cases, shape=tuple(shape), epochs=epochs,
                            iterations_per_epoch=iterations, mae=mae, workers=workers)
    result = run_demo(out, settings, device=target)
    timing = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in result.seconds.items())
    before, after, held_out = result.out_of_fold
    held_out_text = "" if held_out is None else (
        f", {held_out:.3f} held out (each case with the settings tuned without it)")
    click.echo(f"out-of-fold mean lesion-wise Dice on the {result.out_of_fold_cases} validation cases: {before:.3f}, "
               f"{after:.3f} with the post-processing tuned on them{held_out_text}")
    click.echo(f"mean lesion-wise Dice on the {test_cases} test phantoms (WT, TC, ET): "
               f"{result.mean_lesionwise_dice:.3f}")
    click.echo(f"time: {timing}")
    click.echo(f"report: {result.report}")


@click.command("report")
@click.argument("folder", type=PATH)
def report_command(folder: Path) -> None:
    """Write FOLDER/report.html for the training runs and evaluations in FOLDER (demo, run or evaluation)."""
    click.echo(f"report: {write_report(folder)}")
