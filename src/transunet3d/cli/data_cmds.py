"""Data commands: phantom, validate, preprocess, splits."""

from __future__ import annotations

from pathlib import Path

import click

from transunet3d.config.schema import DataConfig
from transunet3d.data.labels import DEFAULT_SCHEME, SCHEMES
from transunet3d.data.orientation import AxisOrder
from transunet3d.data.phantom import PhantomSpec, Variant, write_phantoms
from transunet3d.data.preprocess import DEFAULT_FOREGROUND_SAMPLES, preprocess_dataset
from transunet3d.data.splits import write_splits
from transunet3d.data.validate import validate_cases
from transunet3d.errors import IncompleteBatch, UserError

_FOLDER = click.Path(path_type=Path)
_workers = click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
                        help="Cases processed in parallel (one process each).")
_labels = click.option("--labels", type=click.Choice(list(SCHEMES)), default=DEFAULT_SCHEME, show_default=True,
                       help="Label scheme of the label maps: brats-mets-2023 (labels 0-3; regions WT, TC, ET) or "
                            "brats-mets-2025 (adds 4, resection cavity, and its region RC).")


@click.command("phantom")
@click.argument("out", type=_FOLDER)
@click.option("--cases", type=click.IntRange(min=1), default=8, show_default=True, help="Number of cases.")
@click.option("--seed", type=int, default=0, show_default=True, help="Series seed: same seed, same cases.")
@click.option("--shape", type=click.IntRange(min=16), nargs=3, default=(240, 240, 155), show_default=True,
              help="Volume size in voxels (BraTS: 240 240 155).")
@click.option("--spacing", type=click.FloatRange(min=0.1), nargs=3, default=None,
              help="Voxel size in mm [default: smallest isotropic size >= 1 mm at which the brain fits].")
@click.option("--lesions", type=click.IntRange(min=0), nargs=2, default=(1, 12), show_default=True,
              help="Range of the number of metastases per case.")
@click.option("--diameter", type=click.FloatRange(min=0.5), nargs=2, default=(3.0, 40.0), show_default=True,
              help="Range of lesion diameters in mm (drawn log-uniformly).")
@click.option("--cavities", type=click.FloatRange(0.0, 1.0), default=0.0, show_default=True, metavar="P",
              help="Probability that a lesion has a resection cavity (BraTS 2025 label 4, RC) next to it; "
                   "0 gives the BraTS 2023 labels.")
@click.option("--cavity-diameter", type=click.FloatRange(min=0.5), nargs=2, default=(8.0, 30.0), show_default=True,
              help="Range of resection cavity diameters in mm (drawn log-uniformly).")
@click.option("--resample-to", type=click.FloatRange(min=0.1), nargs=3, default=None, metavar="SX SY SZ",
              help="Store the series as acquired at this voxel size in mm (partial volume along coarser axes, cubic "
                   "spline along finer ones; labels per region).")
@click.option("--axis-order", default=None, metavar="CODES",
              help="Store the series with its voxel axes in this order, e.g. LPS, PRS, SAR (same world positions).")
@_workers
def phantom_command(out: Path, cases: int, seed: int, shape, spacing, lesions, diameter, cavities: float,
                    cavity_diameter, resample_to, axis_order, workers: int) -> None:
    """Generate BraTS-like synthetic cases (four contrasts + labels) in OUT, in the BraTS layout."""
    for option, (low, high) in (("--lesions", lesions), ("--diameter", diameter),
                                ("--cavity-diameter", cavity_diameter)):
        if low > high:
            raise UserError(f"{option} {low:g} {high:g}: give MIN MAX with MIN <= MAX")
    if axis_order is not None:
        try:
            axis_order = AxisOrder.from_codes(axis_order).codes
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--axis-order") from None
    spec = PhantomSpec(shape=tuple(shape), spacing=tuple(spacing) if spacing else None,
                       lesions=tuple(lesions), diameter_mm=tuple(diameter), cavities=cavities,
                       cavity_diameter_mm=tuple(cavity_diameter))
    variant = Variant(tuple(resample_to) if resample_to else None, axis_order) if resample_to or axis_order else None
    written = write_phantoms(out, cases, seed, spec, workers=workers, variant=variant)
    click.echo(f"wrote {len(written)} cases to {out} ({_stored_as(spec, variant)})")


def _stored_as(spec: PhantomSpec, variant: Variant | None) -> str:
    """The voxel size (and axis order) the cases were stored with, in words: "voxel size 1.19 mm"."""
    size = variant.voxel_size if variant is not None and variant.voxel_size else spec.resolved_spacing()
    words = "voxel size " + ("x".join(f"{s:.3g}" for s in size) if len(set(size)) > 1 else f"{size[0]:.3g}") + " mm"
    return words + (f", axes {variant.axis_codes}" if variant is not None and variant.axis_codes else "")


@click.command("validate")
@click.argument("raw", type=_FOLDER)
@_workers
@_labels
def validate_command(raw: Path, workers: int, labels: str) -> None:
    """Check every BraTS case under RAW: four modalities, 3D, same grid, finite values, labels of the scheme
    (--labels: {0,1,2,3}, or {0,1,2,3,4} for brats-mets-2025)."""
    count, problems = validate_cases(raw, workers=workers, labels=labels)
    click.echo(f"{count - len(problems)} of {count} cases are valid")
    if problems:
        raise IncompleteBatch(problems)


@click.command("preprocess")
@click.argument("raw", type=_FOLDER)
@click.argument("out", type=_FOLDER)
@_workers
@click.option("--foreground-samples", type=click.IntRange(min=1), default=DEFAULT_FOREGROUND_SAMPLES,
              show_default=True, help="Tumour voxel locations kept per region for oversampling.")
@click.option("--target-spacing", type=click.FloatRange(min=0, min_open=True), nargs=3, default=None,
              metavar="X Y Z", help="Voxel size in mm (canonical RAS order) of the training grid "
                                    "[default: nnU-Net's plan, the median voxel size of the cases].")
@_labels
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


@click.command("splits")
@click.argument("preprocessed", type=_FOLDER)
@click.option("--folds", type=int, default=DataConfig.num_folds, show_default=True,
              help="Number of cross-validation folds.")
@click.option("--seed", type=int, default=DataConfig.split_seed, show_default=True, help="Shuffling seed.")
def splits_command(preprocessed: Path, folds: int, seed: int) -> None:
    """Write PREPROCESSED/splits.json: deterministic k-fold splits, time points of a patient kept together."""
    path = write_splits(preprocessed, folds, seed, setting="--folds")
    click.echo(f"wrote {folds} folds to {path}")
