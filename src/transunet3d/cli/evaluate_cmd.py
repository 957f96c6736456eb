"""`transunet3d evaluate`: BraTS 2023 lesion-wise metrics of a prediction folder against a reference folder."""

from __future__ import annotations

from pathlib import Path

import click

from transunet3d.errors import IncompleteBatch
from transunet3d.evaluation.batch import evaluate_folders
from transunet3d.evaluation.report import write_evaluation
from transunet3d.files import prepare_output_files

_PATH = click.Path(path_type=Path)


@click.command("evaluate")
@click.argument("pred_dir", type=_PATH)
@click.argument("ref_dir", type=_PATH)
@click.option("--out", type=_PATH, required=True, help="Per-case CSV: one row per case and region.")
@click.option("--summary", type=_PATH, default=None, help="Summary JSON: means per region and overall.")
@click.option("--lesions", type=_PATH, default=None,
              help="Per-lesion CSV: every reference lesion and predicted component with volume, centroid, "
                   "longest axial diameter, match and Dice.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Cases evaluated in parallel (one process each).")
@click.option("--allow-empty", is_flag=True,
              help="Score every case as an empty prediction when PRED_DIR holds no prediction at all (without "
                   "it, that is an error).")
def evaluate_command(pred_dir: Path, ref_dir: Path, out: Path, summary: Path | None, lesions: Path | None,
                     workers: int, allow_empty: bool) -> None:
    """Score predictions in PRED_DIR against the `…-seg.nii.gz` references in REF_DIR (BraTS-MET settings).

    Files are paired by the case id (00132-000) in their names. A reference without a prediction is scored as
    an empty prediction and flagged, but a PRED_DIR with no prediction for any reference is an error (exit code 2)
    unless --allow-empty is given; a case that cannot be scored is reported and the others go on (exit code 3).
    """
    prepare_output_files(out, summary, lesions)
    run = evaluate_folders(pred_dir, ref_dir, workers=workers, with_lesions=lesions is not None,
                           allow_empty=allow_empty)
    report = write_evaluation(run, pred_dir, ref_dir, out, summary, lesions)
    for path in run.orphan_predictions:
        click.echo(f"warning: {path}: no reference for this prediction, not scored", err=True)
    for case, flags in report["flagged"].items():
        click.echo(f"warning: {case}: {'; '.join(flags)}", err=True)
    _print_means(report)
    if run.failed:
        raise IncompleteBatch({result.case: result.error for result in run.failed})


def _print_means(report: dict) -> None:
    click.echo(f"{report['cases_scored']} cases scored")
    for region, means in report["regions"].items():
        if means:
            click.echo(f"{region}: lesion-wise Dice {means['mean_lesionwise_dice']:.4f}, "
                       f"HD95 {means['mean_lesionwise_hd95']:.2f} mm; legacy Dice {means['mean_legacy_dice']:.4f}")
