"""The whole pipeline on synthetic phantoms, end to end on a laptop CPU: the README's main job.

phantoms (train and held-out test) -> preprocess -> splits -> [MAE pre-training] -> train the tiny encoder ->
predict the test phantoms with TTA -> lesion-wise evaluation -> report.html. Each stage leaves its usual files in
OUT, so every step can be inspected or rerun with the ordinary commands. A rerun continues: finished stages are
skipped, an interrupted training resumes from its checkpoint.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import click

from transunet3d.config import build_config
from transunet3d.data.phantom import PhantomSpec, write_phantoms
from transunet3d.data.phantom.generate import MANIFEST_FILE
from transunet3d.data.preprocess import preprocess_dataset
from transunet3d.data.splits import write_splits
from transunet3d.errors import UserError
from transunet3d.evaluation.batch import evaluate_folders
from transunet3d.evaluation.report import write_evaluation
from transunet3d.files import output_folder, write_json
from transunet3d.inference.cases import predict_folder
from transunet3d.inference.predictor import Predictor
from transunet3d.inference.trained import load_models
from transunet3d.report.build import REPORT_FILE, write_report
from transunet3d.training.checkpoint import latest_checkpoint
from transunet3d.training.pretraining import PretrainTask
from transunet3d.training.segmentation import SegmentationTask
from transunet3d.training.trainer import Trainer

# Simulated low resolution and blur smear the smallest metastases (a few voxels); the demo's CPU-sized budget
# goes to learning them as they are (docs/demo.md).
DEMO_AUGMENTATION = ("augment.lowres_p=0", "augment.blur_p=0")
REPORT_TITLE = "transunet3d demo: 3D-TransUNet on synthetic BraTS-METS phantoms"


@dataclass
class DemoSettings:
    """Sizes of the demo. The defaults finish within 15 minutes on 2 CPU cores (docs/demo.md)."""

    train_cases: int = 24
    test_cases: int = 8
    shape: tuple[int, int, int] = (160, 160, 130)
    lesions: tuple[int, int] = (2, 6)
    diameter_mm: tuple[float, float] = (3.0, 30.0)
    seed: int = 2023
    epochs: int = 75
    iterations_per_epoch: int = 24
    foreground_fraction: float = 0.5
    mae: bool = False
    mae_epochs: int = 20
    tta: str = "flip"
    min_lesion_mm3: float = 14.0  # a sphere of 3 mm, the smallest metastasis the phantoms have
    require_core: bool = True  # phantom edema always surrounds a core (docs/demo.md)
    workers: int = 2
    train_overrides: list[str] = field(default_factory=list)

    def phantom_spec(self) -> PhantomSpec:
        return PhantomSpec(shape=self.shape, lesions=self.lesions, diameter_mm=self.diameter_mm)


@dataclass
class DemoResult:
    report: Path
    mean_lesionwise_dice: float
    seconds: dict[str, float]


def run_demo(out: str | Path, settings: DemoSettings | None = None, echo: Callable[[str], None] = click.echo,
             device: str = "cpu") -> DemoResult:
    """Run every stage into `out`; returns the report's path, the test score and the seconds per stage."""
    settings = settings or DemoSettings()
    out = output_folder(out)
    recorded = out / "demo.json"
    wanted = json.loads(json.dumps(asdict(settings)))  # tuples as lists, as read back
    if recorded.exists() and json.loads(recorded.read_text()) != wanted:
        raise UserError(f"{out} holds a demo with other settings (see {recorded}); choose another folder")
    write_json(recorded, wanted)
    stages = _stages(out, settings, device)
    seconds = {}
    for number, (name, stage) in enumerate(stages, start=1):
        echo(f"[{number}/{len(stages)}] {name}")
        started = time.perf_counter()
        stage()
        seconds[name] = round(time.perf_counter() - started, 1)
    summary = json.loads((out / "evaluation" / "summary.json").read_text())
    return DemoResult(out / REPORT_FILE, summary["overall"]["mean_lesionwise_dice"], seconds)


def _stages(out: Path, settings: DemoSettings, device: str) -> list[tuple[str, Callable[[], None]]]:
    raw, pre = out / "raw", out / "preprocessed"
    stages = [
        ("phantoms", lambda: _phantoms(raw, settings)),
        ("preprocess", lambda: preprocess_dataset(raw / "train", pre, workers=settings.workers)),
        ("splits", lambda: write_splits(pre, folds=min(5, settings.train_cases), seed=settings.seed)),
    ]
    if settings.mae:
        stages.append(("MAE pre-training", lambda: _pretrain(pre, out / "pretrain", settings, device)))
    stages += [
        ("training", lambda: _train(pre, out / "run", settings, device)),
        ("prediction", lambda: _predict(raw / "test", out / "predictions", out / "run", device)),
        ("evaluation", lambda: _evaluate(out / "predictions", raw / "test", out / "evaluation")),
        ("report", lambda: write_report(out, title=REPORT_TITLE)),
    ]
    return stages


def _phantoms(raw: Path, settings: DemoSettings) -> None:
    """Training cases 1..N and held-out test cases N+1.. of one series (skipped when already written)."""
    spec = settings.phantom_spec()
    for folder, count, first in (("train", settings.train_cases, 1),
                                 ("test", settings.test_cases, settings.train_cases + 1)):
        if not (raw / folder / MANIFEST_FILE).exists():
            write_phantoms(raw / folder, count, settings.seed, spec, settings.workers, first=first)


def _fit(trainer: Trainer) -> None:
    """Train, continuing from the run's checkpoint when an earlier demo was interrupted."""
    trainer.resume()
    trainer.fit()


def _pretrain(pre: Path, run_dir: Path, settings: DemoSettings, device: str) -> None:
    config = build_config("mae-tiny", [f"pretrain.epochs={settings.mae_epochs}"])
    _fit(Trainer(PretrainTask(config, pre), run_dir, device))


def _train(pre: Path, run_dir: Path, settings: DemoSettings, device: str) -> None:
    overrides = [f"train.epochs={settings.epochs}", f"train.iterations_per_epoch={settings.iterations_per_epoch}",
                 f"train.foreground_fraction={settings.foreground_fraction}", "train.val_batches=4",
                 "train.val_every=5", *DEMO_AUGMENTATION, *_inference_overrides(settings), *settings.train_overrides]
    if settings.mae:
        overrides.append(f"model.init_encoder={run_dir.parent / 'pretrain'}")
    config = build_config("tiny", overrides)
    resuming = latest_checkpoint(run_dir) is not None
    _fit(Trainer(SegmentationTask(config, pre, 0, initialise=not resuming), run_dir, device))


def _inference_overrides(settings: DemoSettings) -> list[str]:
    """The demo's prediction settings, kept in the run's config so that `transunet3d predict` repeats them."""
    return [f"infer.tta={settings.tta}", f"infer.min_lesion_mm3={settings.min_lesion_mm3}",
            f"infer.require_core={str(settings.require_core).lower()}"]


def _predict(test: Path, predictions: Path, run_dir: Path, device: str) -> None:
    models = load_models([run_dir], device=device)
    predict_folder(test, predictions, Predictor(models, models[0].config.infer, device), skip_existing=True)


def _evaluate(predictions: Path, references: Path, out: Path) -> None:
    run = evaluate_folders(predictions, references, with_lesions=True)
    write_evaluation(run, predictions, references, out / "metrics.csv", out / "summary.json", out / "lesions.csv")
