"""`transunet3d evaluate`: lesion-wise metrics (BraTS 2023 or 2025 rules) of a prediction folder against a
reference folder."""

from __future__ import annotations

from pathlib import Path

import click

from transunet3d.cli.options import OUTPUT_FILE, PATH
from transunet3d.data.layout import NIFTI_NAME
from transunet3d.errors import IncompleteBatch, UserError
from transunet3d.evaluation.batch import evaluate_folders
from transunet3d.evaluation.report import write_evaluation
from transunet3d.evaluation.rules import DEFAULT_RULES, RULE_SETS, rule_set
from transunet3d.files import prepare_output_files


@click.command("evaluate")
@click.argument("pred_dir", type=PATH)
@click.argument("ref_dir", type=PATH)
@click.option("--out", type=OUTPUT_FILE, required=True, help="Per-case CSV: one row per case and region.")
@click.option("--rules", default=DEFAULT_RULES, show_default=True, metavar="|".join(RULE_SETS),
              help="Rule set: brats2023 (BraTS 2023 lesion-wise Dice and HD95, BraTS-MET settings; labels 0-3, "
                   "regions WT, TC, ET), brats2023-rc (the same metrics on labels 0-4, regions WT, TC, ET, RC: "
                   "what out-of-fold validation of a brats-mets-2025 run uses) or brats2025 (the official BraTS "
                   "2025 evaluation, `brats-evaluation` mets config + `brats-parse-metrics mets --vol_threshold 27 "
                   "--overlap_threshold 0.2`; labels 0-4, regions WT, TC, ET, RC). See docs/evaluation.md.")
@click.option("--summary", type=OUTPUT_FILE, default=None,
              help="Summary JSON: per region, the means (brats2023: also overall and lesion totals; brats2025: "
                   "mean, standard deviation and median, as the official parser).")
@click.option("--lesions", type=OUTPUT_FILE, default=None,
              help="Per-lesion CSV: every reference lesion and predicted component with volume, centroid, "
                   "longest axial diameter, match and Dice.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Cases evaluated in parallel (one process each).")
@click.option("--allow-empty", is_flag=True,
              help="Score every case as an empty prediction when PRED_DIR holds no prediction at all (without "
                   "it, that is an error).")
def evaluate_command(pred_dir: Path, ref_dir: Path, out: Path, rules: str, summary: Path | None,
                     lesions: Path | None, workers: int, allow_empty: bool) -> None:
    """Score predictions in PRED_DIR against the `…-seg.nii.gz` references in REF_DIR.

    Files are paired by the case id (00132-000) in their names. A reference without a prediction is scored as
    an empty prediction and flagged, but a PRED_DIR with no prediction for any reference is an error (exit code 2)
    unless --allow-empty is given; a case that cannot be scored (a label outside the rule set's labels, say) is
    reported and the others go on (exit code 3).
    """
    rules = rule_set(rules).name  # an unknown name is a user error before anything is written
    for option, path in (("--out", out), ("--summary", summary), ("--lesions", lesions)):
        if path is not None and NIFTI_NAME.search(path.name):
            raise UserError(f"{option} {path}: names a NIfTI file, which the table would replace (a label map to "
                            "score, perhaps); give a .csv or .json path")
    prepare_output_files(out, summary, lesions)
    run = evaluate_folders(pred_dir, ref_dir, workers=workers, with_lesions=lesions is not None,
                           allow_empty=allow_empty, rules=rules)
    report = write_evaluation(run, pred_dir, ref_dir, out, summary, lesions)
    for path, reason in run.ignored:
        click.echo(f"warning: {path}: {reason}, not scored", err=True)
    for pair in run.other_prefix:
        click.echo(f"warning: {pair.prediction}: scored against {pair.reference.name}, a case of the same number "
                   "under another BraTS prefix", err=True)
    for case, flags in report["flagged"].items():
        click.echo(f"warning: {case}: {'; '.join(flags)}", err=True)
    click.echo(f"{report['cases_scored']} cases scored ({rules} rules)")
    for region, means in report["regions"].items():
        if means:
            click.echo(rule_set(rules).summary_line(region, means))
    if run.failed:
        raise IncompleteBatch({result.case: result.error for result in run.failed})
