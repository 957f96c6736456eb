"""`transunet3d export`, `transunet3d container` and `transunet3d challenge-entry`: a trained run without the
training stack (ONNX), and as a BraTS challenge container."""

from __future__ import annotations

from pathlib import Path

import click

from transunet3d.cli.options import PATH
from transunet3d.deploy.challenge import DEFAULT_INPUT, DEFAULT_OUTPUT, MODEL_IN_IMAGE, read_parameters, run_challenge
from transunet3d.deploy.container import DEVICES, FORMATS, write_build_context
from transunet3d.deploy.export import export_run
from transunet3d.errors import IncompleteBatch
from transunet3d.inference.trained import CHECKPOINTS, unfinished_warning


@click.command("export")
@click.argument("run_dir", metavar="RUN", type=PATH)
@click.argument("out", type=PATH)
@click.option("--fold", default=None,
              help="Folds to export, as `predict --fold`: 'all', a number, 'all-data', or a comma list.  "
                   "[default: every cross-validation fold; the all-data model when the run has no other]")
@click.option("--checkpoint", type=click.Choice(CHECKPOINTS), default="latest", show_default=True,
              help="The final weights, or those with the best validation pseudo-Dice.")
def export_command(run_dir: Path, out: Path, fold: str | None, checkpoint: str) -> None:
    """Export every fold's network of RUN to ONNX in OUT (a new or empty folder), with export.json: what
    `predict --model OUT --backend onnxruntime` needs to predict exactly as `predict --model RUN`."""
    record = export_run(run_dir, out, fold, checkpoint, on_model=lambda name: click.echo(f"exporting {name}"))
    for model in record["models"]:
        warning = unfinished_warning(f"{out / model['onnx']} ({model['checkpoint']})", model["epoch"], model["epochs"])
        if warning:
            click.echo(warning, err=True)
    worst = max(model["max_difference_to_torch"] for model in record["models"])
    click.echo(f"exported {len(record['models'])} network(s) (ONNX opset {record['onnx']['opset']}, largest "
               f"difference to torch {worst:.1e}) -> {out}")


@click.command("challenge-entry")
@click.argument("task", metavar="[TASK]", required=False, type=click.Choice(["infer"]))
@click.option("--data_path", "--data-path", "data_path", type=PATH, default=DEFAULT_INPUT, show_default=True,
              help="The cases, in the BraTS layout (a folder per case, or flat); read only.")
@click.option("--output_path", "--output-path", "output_path", type=PATH, default=DEFAULT_OUTPUT,
              show_default=True, help="Where <case-id>.nii.gz go, one per input case.")
@click.option("--parameters_file", "--parameters-file", "parameters_file", type=PATH, default=None,
              help="YAML with any of fold, checkpoint, tta, step, batch_windows, postprocessing (run|none).  "
                   "[default: the model's own settings]")
@click.option("--model", "model_dir", type=PATH, default=MODEL_IN_IMAGE, show_default=True,
              help="A training run (torch) or a folder written by `transunet3d export` (ONNX Runtime).")
def challenge_entry_command(task: str | None, data_path: Path, output_path: Path, parameters_file: Path | None,
                            model_dir: Path) -> None:
    """The entry point of a BraTS challenge container: every case of --data_path to --output_path/<case-id>.nii.gz
    in its input's geometry, on every GPU given (else the CPU), without network; then the outputs are checked (one
    per input case, in the input's geometry, none all zero) and the exit code says whether all passed.

    TASK is MLCube's task name (`infer`), which MLCube puts before the options; it may be left out.
    """
    settings = read_parameters(parameters_file)
    report = run_challenge(data_path, output_path, model_dir, settings)
    for warning in report.warnings:
        click.echo(warning, err=True)
    checked = len(report.written) - sum(case in report.failed for case in report.written)
    click.echo(f"challenge-entry: {len(report.cases)} case(s), {report.backend} on {', '.join(report.devices)}: "
               f"wrote {len(report.written)}, passed the checks {checked} -> {output_path}")
    if report.failed:
        raise IncompleteBatch(report.failed)


@click.command("container")
@click.argument("run_dir", metavar="RUN", type=PATH)
@click.argument("out", metavar="OUT_DIR", type=PATH)
@click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True,
              help="The torch (and ONNX Runtime) build the image installs: CPU-only, or CUDA.")
@click.option("--format", "model_format", type=click.Choice(FORMATS), default=None,
              help="The model in the image: the run's checkpoints (torch) or its ONNX export (onnx).  "
                   "[default: onnx for a folder written by `transunet3d export`, else torch]")
@click.option("--fold", default=None, help="Folds of a cross-validation run, as `predict --fold`.  [default: all]")
@click.option("--checkpoint", type=click.Choice(CHECKPOINTS), default=None,
              help="The final weights, or those with the best validation pseudo-Dice.  [default: latest; for an "
                   "exported folder, the ones it was exported from]")
@click.option("--wheels", type=PATH, default=None,
              help="A folder of wheels that pip prefers to its index when the image is built (a local torch "
                   "build, or every wheel for an offline build).")
@click.option("--tag", default=None,
              help="Image name for the README and mlcube.yaml.  [default: transunet3d-RUN:VERSION]")
def container_command(run_dir: Path, out: Path, device: str, model_format: str | None, fold: str | None,
                      checkpoint: str | None, wheels: Path | None, tag: str | None) -> None:
    """Write a Docker build context for a BraTS challenge container of RUN into OUT_DIR (new or empty): Dockerfile,
    pinned requirements, the package's source and the model; its entry point is `transunet3d challenge-entry`."""
    record = write_build_context(run_dir, out, device, model_format, fold, checkpoint, wheels, tag,
                                 on_step=lambda step: click.echo(f"container: {step}"))
    for warning in record["warnings"]:
        click.echo(warning, err=True)
    click.echo(f"build context for {record['tag']} ({record['format']} model, {record['device']}, "
               f"{len(record['requirements'])} pinned requirements) -> {out}")
    click.echo(f"build it with: docker build -t {record['tag']} {out}")
