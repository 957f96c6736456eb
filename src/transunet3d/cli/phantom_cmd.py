"""`transunet3d phantom`: synthetic BraTS-like cases, also stored at other voxel sizes and axis orders."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from transunet3d.cli.options import PATH, FiniteRange, case_workers
from transunet3d.config.schema import MAX_SEED
from transunet3d.data.orientation import AxisOrder
from transunet3d.data.phantom import PhantomSpec, Variant, write_phantoms
from transunet3d.data.phantom.generate import MANIFEST_FILE, MAX_CASE_INDEX, MAX_SIDE, brain_cut, shortfalls
from transunet3d.data.resample import resampled_shape
from transunet3d.errors import UserError
from transunet3d.files import read_json

MAX_DIAMETER_MM = 100.0  # lesions and cavities: the brain is about 140 x 170 x 140 mm
# per case: BraTS-METS cases hold up to about a hundred; 1000 take 20-30 s to place and draw, and placing one
# costs time linear in those already placed, so 100000 ran for hours
MAX_LESIONS = 1000


@click.command("phantom")
@click.argument("out", type=PATH)
@click.option("--cases", type=click.IntRange(1, MAX_CASE_INDEX), default=8, show_default=True,
              help="Number of cases.")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=0, show_default=True,
              help="Series seed: same seed, same cases.")
@click.option("--shape", type=click.IntRange(16, MAX_SIDE), nargs=3, default=(240, 240, 155), show_default=True,
              help="Volume size in voxels (BraTS: 240 240 155).")
@click.option("--spacing", type=FiniteRange(min=0.1), nargs=3, default=None,
              help="Voxel size in mm [default: smallest isotropic size >= 1 mm at which the brain fits].")
@click.option("--lesions", type=click.IntRange(0, MAX_LESIONS), nargs=2, default=(1, 12), show_default=True,
              help="Range of the number of metastases per case.")
@click.option("--diameter", type=FiniteRange(0.5, MAX_DIAMETER_MM), nargs=2, default=(3.0, 40.0), show_default=True,
              help="Range of lesion diameters in mm (drawn log-uniformly).")
@click.option("--cavities", type=FiniteRange(0.0, 1.0), default=0.0, show_default=True, metavar="P",
              help="Probability that a lesion has a resection cavity (BraTS 2025 label 4, RC) next to it; "
                   "0 gives the BraTS 2023 labels.")
@click.option("--cavity-diameter", type=FiniteRange(0.5, MAX_DIAMETER_MM), nargs=2, default=(8.0, 30.0),
              show_default=True,
              help="Range of resection cavity diameters in mm (drawn log-uniformly).")
@click.option("--resample-to", type=FiniteRange(min=0.1), nargs=3, default=None, metavar="SX SY SZ",
              help="Store the series as acquired at this voxel size in mm, along the world's x, y and z (partial "
                   "volume along coarser axes, cubic spline along finer ones; labels per region).")
@click.option("--axis-order", default=None, metavar="CODES",
              help="Store the series with its voxel axes in this order, e.g. LPS, PRS, SAR (same world positions).")
@case_workers
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
    manifest = read_json(Path(out) / MANIFEST_FILE)["cases"]
    for note in [brain_cut(spec), *shortfalls(spec, {case_id: manifest[case_id] for case_id in written})]:
        if note is not None:
            click.echo(f"warning: {note}", err=True)
    click.echo(f"wrote {len(written)} cases to {out} ({_stored_as(spec, variant)})")


def _stored_as(spec: PhantomSpec, variant: Variant | None) -> str:
    """The voxel size (and axis order) the cases were stored with, in words: "voxel size 1.19 mm". A size asked
    with --resample-to becomes the nearest one whose grid keeps the field of view (a whole number of voxels)."""
    spacing = spec.resolved_spacing()
    size = spacing
    if variant is not None and variant.voxel_size:
        shape = resampled_shape(spec.shape, spacing, variant.voxel_size)
        size = tuple(n * s / m for n, s, m in zip(spec.shape, spacing, shape))
    words = f"voxel size {_sizes(size)} mm"
    if variant is not None and variant.voxel_size and not np.allclose(size, variant.voxel_size, rtol=1e-3):
        words += f" (asked {_sizes(variant.voxel_size)}: the nearest that keeps the field of view)"
    return words + (f", axes {variant.axis_codes}" if variant is not None and variant.axis_codes else "")


def _sizes(size: tuple[float, ...]) -> str:
    return "x".join(f"{s:.4g}" for s in size) if len(set(size)) > 1 else f"{size[0]:.4g}"
