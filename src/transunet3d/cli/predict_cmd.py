"""`transunet3d predict`: BraTS submissions for a folder of cases from one or more trained runs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click
from click.core import ParameterSource

from transunet3d.cli.options import PATH, FiniteRange
from transunet3d.config.schema import MAX_SEED, WINDOW_STEP, InferConfig
from transunet3d.data.labels import LabelScheme
from transunet3d.deploy.onnx_backend import load_exported_models
from transunet3d.devices import Launch, parse_device
from transunet3d.errors import IncompleteBatch, UserError
from transunet3d.files import check_apart, check_output_folder
from transunet3d.inference.cases import predict_folder
from transunet3d.inference.predictor import Predictor
from transunet3d.inference.trained import CHECKPOINTS, TrainedModel, ensemble_scheme, load_models, unfinished_warning
from transunet3d.inference.tta import TTA_MODES
from transunet3d.inference.window_batch import WindowBatch
from transunet3d.jobs.tuning import run_postprocessing, tuning_mismatches
from transunet3d.postprocessing.rules import PostprocessSettings
from transunet3d.postprocessing.tune import read_postprocessing
from transunet3d.runs.layout import RunFolder

BACKENDS = ("torch", "onnxruntime")


@click.command("predict")
@click.argument("input_dir", metavar="INPUT", type=PATH)
@click.argument("out", type=PATH)
@click.option("--model", "models", type=PATH, multiple=True, required=True,
              help="Training run folder (repeat for an ensemble); a cross-validation run gives all its folds.  "
                   "With --backend onnxruntime: a folder written by `transunet3d export`.")
@click.option("--fold", default=None,
              help="Folds of a cross-validation run: 'all', a number, 'all-data', or a comma list such as "
                   "0,3,5,7,9.  [default: all; the all-data model when the run has no other]")
@click.option("--random-folds", "draw", type=click.IntRange(min=1), default=None,
              help="Instead of --fold: this many cross-validation folds of each run, drawn at random "
                   "(the paper ensembled 5 of 10).")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=0, show_default=True,
              help="Seed of the --random-folds draw.")
@click.option("--checkpoint", type=click.Choice(CHECKPOINTS), default=None,
              help="The final weights, or those with the best validation pseudo-Dice.  [default: latest; an "
                   "exported folder: the checkpoints it was exported from]")
@click.option("--backend", type=click.Choice(BACKENDS), default="torch", show_default=True,
              help="What runs the networks: torch on training runs, or ONNX Runtime on folders written by "
                   "`transunet3d export` (the onnx extra), with the same windows, TTA and post-processing.")
@click.option("--tta", type=click.Choice(TTA_MODES), default=None,
              help="Test-time augmentation: none, 8 flips, or flips with axial quarter turns (16 views).  "
                   "[default: the run's config, flip+rot]")
@click.option("--step", type=FiniteRange(WINDOW_STEP.low, WINDOW_STEP.high), default=None,
              help="Window stride as a fraction of the patch (0.5 = 50% overlap).  [default: the run's config]")
@click.option("--batch-windows", type=click.IntRange(min=1), default=None,
              help="Network inputs (window x view) per forward pass.  [default: the run's config; if it sets "
                   "none, sized from the memory there is and the network]")
@click.option("--max-memory", "max_memory_gb", type=FiniteRange(min=0, min_open=True), default=None,
              help="GB the windows in flight may take when the batch is sized from memory.  [default: the run's "
                   "config; if it sets none, 80% of the memory available]")
@click.option("--postprocessing", "postprocessing_choice", default="run", show_default=True,
              help="'run': the post-processing tuned on the run's cross-validation (RUN/postprocessing.json, see "
                   "`transunet3d tune`) when it has one, else the config's; 'none': the config's (threshold 0.5, "
                   "or what --min-lesion-mm3 and --require-core set); or a postprocessing.json file.")
@click.option("--min-lesion-mm3", type=FiniteRange(min=0), default=None,
              help="Drop predicted components smaller than this, per region.  [default: the run's config, 0]")
@click.option("--require-core/--no-require-core", default=None,
              help="Drop whole-tumour components that hold no tumour core.  [default: the run's config, off]")
@click.option("--save-probabilities", is_flag=True,
              help="Also write OUT/<case>_probabilities.npz (float16, one per region of the models' label scheme: "
                   "WT, TC, ET, and RC for brats-mets-2025; on the input grid).")
@click.option("--continue", "skip_existing", is_flag=True, help="Skip cases whose outputs are already in OUT.")
@click.option("--case-list", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Text file of case ids (one per line): predict only these, e.g. a fold's validation cases.")
@click.option("--device", default=None, help="cpu, cuda, cuda:1, ...  [default: cuda when available]")
def predict_command(input_dir: Path, out: Path, models: tuple[Path, ...], fold: str | None, draw: int | None,
                    seed: int, checkpoint: str | None, backend: str, tta: str | None, step: float | None,
                    batch_windows: int | None, max_memory_gb: float | None,
                    postprocessing_choice: str, min_lesion_mm3: float | None, require_core: bool | None,
                    save_probabilities: bool,
                    skip_existing: bool, case_list: Path | None, device: str | None) -> None:
    """Segment the BraTS cases under INPUT (a dataset folder or one case) into OUT/<case>.nii.gz.

    Under torchrun, each process predicts its share of the cases on its own GPU. OUT/ensemble.json records the
    models (run, fold, checkpoint) and settings used.
    """
    if fold is not None and draw is not None:
        raise UserError("give --fold or --random-folds, not both")
    if draw is None and click.get_current_context().get_parameter_source("seed") == ParameterSource.COMMANDLINE:
        click.echo("warning: --seed: draws the folds of --random-folds, which is not given; it has no effect",
                   err=True)
    if postprocessing_choice.strip() == "":
        raise UserError("--postprocessing: give run, none or a postprocessing.json file, not an empty value")
    check_output_folder(out)  # before the models load and their notes are printed
    check_apart(out, input_dir, "input folder")
    launch = Launch.from_environment()
    rank, world = launch.rank, launch.world
    target = parse_device(device)
    only = _case_ids(case_list) if case_list else None
    if backend == "onnxruntime":
        trained = load_exported_models(list(models), fold, checkpoint, target, draw=draw, seed=seed)
    else:
        trained = load_models(list(models), fold, checkpoint or "latest", target, draw=draw, seed=seed)
    _warn_unfinished(trained)
    options = _options(trained[0].config.infer, tta=tta, step=step, batch_windows=batch_windows,
                       max_memory_gb=max_memory_gb, min_lesion_mm3=min_lesion_mm3, require_core=require_core)
    tuned, source = _postprocessing(postprocessing_choice, models, ensemble_scheme(trained),
                                    by_hand=min_lesion_mm3 is not None or require_core is not None)
    if rank == 0:  # once every setting is read: a bad postprocessing file stops the command before its first line
        click.echo(f"models: {', '.join(str(model.folder.path) for model in trained)}")
    predictor = Predictor(trained, options, target, postprocessing=tuned)
    if rank == 0:
        click.echo(f"post-processing: {source}: {_describe(predictor.postprocessing)}")
        if tuned is not None and postprocessing_choice == "run":
            for problem in tuning_mismatches(models[0], trained, options.tta):
                click.echo(f"warning: {problem}", err=True)
        click.echo(_describe_batch(predictor.window_batches[0], options))
        if predictor.window_batches[0].over_budget:
            click.echo(_memory_warning(predictor.window_batches[0], options), err=True)
    report = predict_folder(input_dir, out, predictor, skip_existing=skip_existing,
                            save_probabilities=save_probabilities, shard=(rank, world), progress=rank == 0,
                            only=only)
    shard = f" (RANK {rank} of WORLD_SIZE {world}: cases {rank}, {rank + world}, ...)" if world > 1 else ""
    click.echo(f"predicted {len(report.written)}, already done {len(report.skipped)}, "
               f"failed {len(report.failed)} with {len(trained)} model(s), TTA {options.tta} -> {out}{shard}")
    if report.failed:
        raise IncompleteBatch(report.failed)


def _postprocessing(choice: str, runs: tuple[Path, ...], scheme: LabelScheme,
                    by_hand: bool) -> tuple[PostprocessSettings | None, str]:
    """The post-processing that `--postprocessing` names (None: the config's), for the models' label scheme, and
    where it comes from."""
    if choice == "none":
        return None, "the config's"
    if choice != "run":
        path = Path(choice)
        if by_hand:
            raise UserError("--min-lesion-mm3 and --require-core set the post-processing by hand; "
                            "give them with --postprocessing none, not with a postprocessing file")
        return read_postprocessing(path, scheme), str(path)
    tuned = run_postprocessing(runs[0], scheme) if len(set(runs)) == 1 else None
    if tuned is None or by_hand:
        return None, "the config's" if tuned is None else "set by hand (the run's tuned one is not used)"
    return tuned, f"tuned on cross-validation ({RunFolder(runs[0]).postprocessing})"


def _describe(settings: PostprocessSettings) -> str:
    regions = ", ".join(f"{region} > {threshold:g}" + (f" and >= {size:g} mm^3" if size else "")
                        for region, threshold, size in zip(settings.scheme.region_names, settings.thresholds,
                                                           settings.min_lesion_mm3))
    return regions + ("; WT needs a core" if settings.require_core else "")


def _describe_batch(batch: WindowBatch, options: InferConfig) -> str:
    """One line on the window batch: its size, where it came from, and the memory it is expected to take."""
    source = "set" if options.batch_windows is not None else "sized from memory"
    return (f"sliding window: {batch.size} input(s) per pass ({source}; about {batch.window_bytes / 2**30:.2f} GB "
            f"each, {batch.budget_bytes / 2**30:.1f} GB for them)")


def _memory_warning(batch: WindowBatch, options: InferConfig) -> str:
    """The `warning:` line for a window batch that needs more memory than there is for it (it runs anyway)."""
    needed = (f"about {batch.size * batch.window_bytes / 2**30:.2f} GB, more than the "
              f"{batch.budget_bytes / 2**30:.1f} GB")
    if options.batch_windows is not None:
        return (f"warning: batch_windows {options.batch_windows}: the windows of a pass need {needed} there is for "
                "them; prediction may run out of memory (leave it unset to size it from memory)")
    return (f"warning: one window of this model needs {needed} there is for it (--max-memory, or the memory "
            "available); prediction may run out of memory")


def _case_ids(path: Path) -> set[str]:
    """The case ids of `--case-list`, one per line; a list naming none would predict nothing and exit 0."""
    if not path.is_file():
        raise UserError(f"{path}: case list does not exist")
    try:
        ids = {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}
    except UnicodeDecodeError:
        raise UserError(f"{path}: case list is not text (it should hold one case id per line)") from None
    if not ids:
        raise UserError(f"{path}: case list names no case (it should hold one case id per line)")
    return ids


def _options(infer: InferConfig, **given: object) -> InferConfig:
    """The run's inference settings with the options given on the command line."""
    return replace(infer, **{name: value for name, value in given.items() if value is not None})


def _warn_unfinished(models: list[TrainedModel]) -> None:
    for model in models:
        warning = unfinished_warning(str(model.checkpoint), model.epoch, model.config.loop.epochs)
        if warning:
            click.echo(warning, err=True)
