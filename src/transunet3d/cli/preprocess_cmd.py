"""`transunet3d preprocess`: reorient, crop, normalise, resample and cache a folder of BraTS cases."""

from __future__ import annotations

from pathlib import Path

import click

from transunet3d.cli.options import PATH, FiniteRange, case_workers, label_scheme
from transunet3d.data.preprocess import DEFAULT_FOREGROUND_SAMPLES, preprocess_dataset
from transunet3d.errors import IncompleteBatch


@click.command("preprocess")
@click.argument("raw", type=PATH)
@click.argument("out", type=PATH)
@case_workers
@click.option("--foreground-samples", type=click.IntRange(min=1), default=DEFAULT_FOREGROUND_SAMPLES,
              show_default=True, help="Tumour voxel locations kept per region for oversampling.")
@click.option("--target-spacing", type=FiniteRange(min=0, min_open=True), nargs=3, default=None,
              metavar="X Y Z", help="Voxel size in mm (canonical RAS order) of the training grid "
                                    "[default: nnU-Net's plan, the median voxel size of the cases].")
@label_scheme
def preprocess_command(raw: Path, out: Path, workers: int, foreground_samples: int, target_spacing,
                       labels: str) -> None:
    """Reorient to RAS, crop, z-score, resample to the target spacing and cache every case under RAW into OUT,
    recording the label scheme (which `train` then uses); complete cases at the same target and with the same
    scheme are skipped on a rerun."""
    report = preprocess_dataset(raw, out, workers=workers, foreground_samples=foreground_samples,
                                target_spacing=target_spacing or None, labels=labels)
    spacing = " x ".join(f"{s:.4g}" for s in report.target_spacing)
    click.echo(f"preprocessed {len(report.written)}, already done {len(report.skipped)}, "
               f"failed {len(report.failed)} -> {out} (target spacing {spacing} mm, labels {report.labels})")
    if report.failed:
        raise IncompleteBatch(report.failed)
