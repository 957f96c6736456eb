"""The whole pipeline on synthetic phantoms, end to end on a laptop CPU: the README's main job.

phantoms (train and held-out test) -> preprocess -> splits -> [MAE pre-training] -> train the tiny encoder on
fold 0 and validate it on the fold's validation cases -> tune the post-processing on those out-of-fold predictions
-> predict the test phantoms with TTA and the tuned post-processing -> lesion-wise evaluation -> report.html.
Nothing is chosen by looking at the test phantoms. Each stage leaves its usual files in OUT, so every step can be
inspected or rerun with the ordinary commands. A rerun continues: finished stages are skipped, an interrupted
training or validation resumes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click
import torch

from transunet3d.config import build_config
from transunet3d.data.phantom import PhantomSpec, write_phantoms
from transunet3d.data.phantom.generate import cases_of_series, phantom_case_id, series_record
from transunet3d.data.preprocess import preprocess_dataset
from transunet3d.data.splits import write_splits
from transunet3d.errors import UserError
from transunet3d.evaluation.batch import evaluate_folders
from transunet3d.evaluation.report import write_evaluation
from transunet3d.files import output_folder, read_json, write_json
from transunet3d.inference.cases import predict_folder
from transunet3d.inference.predictor import Predictor
from transunet3d.inference.trained import load_models
from transunet3d.jobs.training import TrainingJob, pretrain_model, train_folds
from transunet3d.jobs.tuning import tune_run
from transunet3d.postprocessing.tune import read_postprocessing
from transunet3d.report.build import REPORT_FILE, write_report
from transunet3d.runs.layout import EvaluationFiles, ModelFolder, RunFolder

# Simulated low resolution and blur smear the smallest metastases (a few voxels); the demo's CPU-sized budget
# goes to learning them as they are (docs/demo.md).
DEMO_AUGMENTATION = ("augment.lowres_p=0", "augment.blur_p=0")
DEMO_RECORD = "demo.json"  # the settings of the demo in a folder: a rerun continues only with the same ones
REPORT_TITLE = "transunet3d demo: 3D-TransUNet on synthetic BraTS-METS phantoms"


@dataclass
class DemoSettings:
    """Sizes of the demo. The defaults finish within 15 minutes on 2 CPU cores (docs/demo.md)."""

    train_cases: int = 32
    test_cases: int = 8
    shape: tuple[int, int, int] = (160, 160, 130)
    lesions: tuple[int, int] = (2, 6)
    diameter_mm: tuple[float, float] = (3.0, 30.0)
    seed: int = 2023
    epochs: int = 75
    iterations_per_epoch: int = 24
    foreground_fraction: float = 0.5
    # Half of the tumour patches centred on a lesion chosen uniformly: with voxel sampling alone the 3-4 mm
    # metastases were rarely centred (chosen on fold 0's validation cases, docs/demo.md).
    lesion_sampling: float = 0.5
    # A soft Dice per reference lesion beside the region loss, so a 3-4 mm metastasis weighs like a 30 mm one; the
    # default since it won a rule fixed before its development series were scored (docs/demo.md).
    blob_loss_weight: float = 1.0
    # Four folds: fold 0 trains on 24 cases and validates (and tunes the post-processing) on 8.
    folds: int = 4
    mae: bool = False
    mae_epochs: int = 20
    tta: str = "flip"
    workers: int = 2
    train_overrides: list[str] = field(default_factory=list)

    def phantom_spec(self) -> PhantomSpec:
        return PhantomSpec(shape=self.shape, lesions=self.lesions, diameter_mm=self.diameter_mm)


@dataclass
class DemoResult:
    """The report, the test score, the out-of-fold scores before and after tuning, and the seconds per stage."""

    report: Path
    mean_lesionwise_dice: float
    seconds: dict[str, float]
    # Mean lesion-wise Dice of the validation cases: default, tuned, and held out (each case with the settings
    # tuned on the others; None for a single case)
    out_of_fold: tuple[float, float, float | None]
    out_of_fold_cases: int


def run_demo(out: str | Path, settings: DemoSettings | None = None, echo: Callable[[str], None] = click.echo,
             device: torch.device | str = "cpu") -> DemoResult:
    """Run every stage into `out`; returns the report's path, the test score and the seconds per stage."""
    settings = settings or DemoSettings()
    out = output_folder(out)
    recorded = out / DEMO_RECORD
    wanted = json.loads(json.dumps(asdict(settings)))  # tuples as lists, as read back
    if not recorded.exists() and any(out.iterdir()):
        raise UserError(f"{out}: not empty and holds no demo ({DEMO_RECORD}); choose an empty or new folder")
    if recorded.exists() and _results_settings(read_json(recorded)) != _results_settings(wanted):
        raise UserError(f"{out} holds a demo with other settings (see {recorded}); choose another folder")
    write_json(recorded, wanted)
    stages = _stages(out, settings, device)
    seconds = {}
    for number, (name, stage) in enumerate(stages, start=1):
        echo(f"[{number}/{len(stages)}] {name}")
        started = time.perf_counter()
        stage()
        seconds[name] = round(time.perf_counter() - started, 1)
    summary = json.loads(EvaluationFiles(out / "evaluation").summary.read_text())
    tuned = json.loads(RunFolder(out / "run").postprocessing.read_text())
    return DemoResult(out / REPORT_FILE, summary["overall"]["mean_lesionwise_dice"], seconds,
                      (tuned["score_before"], tuned["score_after"], tuned["score_held_out"]), tuned["cases"])


def _results_settings(settings: Any) -> Any:
    """The settings that decide a demo's results: all but the number of processes (an interrupted demo may go on
    with fewer, e.g. after running out of memory; the phantoms and cache are the same with any)."""
    return {key: value for key, value in settings.items() if key != "workers"} if isinstance(settings, dict) \
        else settings


def _stages(out: Path, settings: DemoSettings, device: torch.device | str) -> list[tuple[str, Callable[[], None]]]:
    raw, pre = out / "raw", out / "preprocessed"
    stages = [
        ("phantoms", lambda: _phantoms(raw, settings)),
        ("preprocess", lambda: preprocess_dataset(raw / "train", pre, workers=settings.workers)),
        ("splits", lambda: write_splits(pre, folds=min(settings.folds, settings.train_cases), seed=settings.seed)),
    ]
    if settings.mae:
        stages.append(("MAE pre-training", lambda: _pretrain(pre, ModelFolder(out / "pretrain"), settings, device)))
    run = RunFolder(out / "run")
    stages += [
        ("training and out-of-fold validation", lambda: _train(pre, run, settings, device)),
        ("post-processing tuned on the out-of-fold predictions", lambda: _tune(run, settings)),
        ("prediction", lambda: _predict(raw / "test", out / "predictions", run, device)),
        ("evaluation", lambda: _evaluate(out / "predictions", raw / "test", out / "evaluation")),
        ("report", lambda: write_report(out, title=REPORT_TITLE)),
    ]
    return stages


def _phantoms(raw: Path, settings: DemoSettings) -> None:
    """Training cases 1..N and held-out test cases N+1.. of one series (skipped when already written; a folder
    holding anything else is refused)."""
    spec = settings.phantom_spec()
    series = series_record(settings.seed, spec)
    for folder, count, first in (("train", settings.train_cases, 1),
                                 ("test", settings.test_cases, settings.train_cases + 1)):
        wanted = [phantom_case_id(index) for index in range(first, first + count)]
        written = cases_of_series(raw / folder, series, wanted)
        if sorted(written) != wanted or not all((raw / folder / case_id).is_dir() for case_id in wanted):
            write_phantoms(raw / folder, count, settings.seed, spec, settings.workers, first=first)


def _pretrain(pre: Path, folder: ModelFolder, settings: DemoSettings, device: torch.device | str) -> None:
    """MAE pre-training, continued when an earlier demo was interrupted."""
    pretrain_model(pre, folder, build_config("mae-tiny", [f"loop.epochs={settings.mae_epochs}"]), resume=True,
                   device=device)


def _train(pre: Path, run: RunFolder, settings: DemoSettings, device: torch.device | str) -> None:
    """Fold 0 (the budget holds one fold), validated on its own validation cases; continued when interrupted."""
    overrides = [f"loop.epochs={settings.epochs}", f"loop.iterations_per_epoch={settings.iterations_per_epoch}",
                 f"train.foreground_fraction={settings.foreground_fraction}",
                 f"train.lesion_sampling={settings.lesion_sampling}",
                 f"train.blob_loss_weight={settings.blob_loss_weight}", "loop.val_batches=4",
                 "loop.val_every=5", f"infer.tta={settings.tta}", f"infer.validation_tta={settings.tta}",
                 *DEMO_AUGMENTATION, *settings.train_overrides]
    if settings.mae:
        overrides.append(f"model.init_encoder={run.path.parent / 'pretrain'}")
    job = TrainingJob(pre, run, build_config("tiny", overrides), folds=[0], resume=bool(run.folds()),
                      device=device, workers=settings.workers)
    train_folds(job)


def _tune(run: RunFolder, settings: DemoSettings) -> None:
    tune_run(run, workers=settings.workers)


def _predict(test: Path, predictions: Path, run: RunFolder, device: torch.device | str) -> None:
    models = load_models([run.path], device=device)
    tuned = read_postprocessing(run.postprocessing, models[0].scheme)
    predict_folder(test, predictions, Predictor(models, models[0].config.infer, device, postprocessing=tuned),
                   skip_existing=True)


def _evaluate(predictions: Path, references: Path, out: Path) -> None:
    run, files = evaluate_folders(predictions, references, with_lesions=True), EvaluationFiles(out)
    write_evaluation(run, predictions, references, files.metrics, files.summary, files.lesions)
