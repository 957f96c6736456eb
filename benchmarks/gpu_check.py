"""The GPU check (issue 18): paper-scale training, prediction and a learning check, in one run of under 8 minutes.

Writes OUT/gpu_check.json (rewritten after every stage, so a run cut short keeps what it measured),
OUT/gpu_check.log, the learning check's log.csv and OUT/gpu_check.stderr (progress bars, warnings). Installs
nothing: on a machine without the project's dependencies, put their wheels on PYTHONPATH first
(`benchmarks/gpu_wheels.sh`; docs/benchmarks.md, "The GPU check", has the command).

Stages, in order:
- phantoms: full-size 1 mm phantoms (240x240x155), written and preprocessed by every CPU core;
- loader: batches/s of the patch loader with 0, 2, 4, ... worker processes (reading and cropping only; the
  augmentation runs on the GPU), and how many keep each preset's model-only rate fed;
- train: per preset (`unet`, `paper-encoder`, `paper-decoder`, `paper-both`) at 128^3, batch 2, bf16: the training
  step on a batch already on the GPU ("model only") and the real epoch loop (loader, GPU augmentation, step) with
  the loader processes found above ("with data"): it/s, samples/s, MFU against the dense bf16 peak, peak memory;
- learn: `paper-encoder` with its AdamW at 2e-3 for about `--learn-seconds` on the phantoms (fold 0 of 4), a
  validation after each of its epochs: passed when the loss falls and every region's pseudo-Dice rises;
- predict: one 4x240x240x155 case with the full `unet` and `encoder` (random weights) for each TTA mode, after one
  untimed pass: seconds, windows/s, peak memory; MONAI's `sliding_window_inference` on the same network, views,
  precision and windows per pass if MONAI is importable.

MFU counts 3 x the forward FLOPs (torch's flop counter, `transunet3d model-info`) per sample.

    python benchmarks/gpu_check.py OUT              # on the GPU, about 7 minutes
    python benchmarks/gpu_check.py OUT --cpu        # every stage at tiny size on the CPU, about a minute
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from bench_train import peak_tflops, timed

from transunet3d.config import build_config
from transunet3d.config.schema import ExperimentConfig, InferConfig
from transunet3d.data.phantom import PhantomSpec, write_phantoms
from transunet3d.data.preprocess import preprocess_dataset
from transunet3d.errors import UserError
from transunet3d.inference.predictor import Predictor
from transunet3d.inference.trained import TrainedModel
from transunet3d.inference.tta import tta_views
from transunet3d.inference.windows import window_grid
from transunet3d.memory import keep_freed_memory
from transunet3d.models import model_info
from transunet3d.models.network import model_from_config
from transunet3d.models.precision import autocast, resolve_precision
from transunet3d.runs.layout import ModelFolder
from transunet3d.training.sampling import patch_loader
from transunet3d.training.segmentation import SegmentationTask
from transunet3d.training.trainer import Trainer

TRAIN_PRESETS = ("unet", "paper-encoder", "paper-decoder", "paper-both")
PREDICT_MODELS = {"unet": "unet", "encoder": "paper-encoder"}  # model name -> the preset that trains it
TTA_MODES = ("none", "flip", "flip+rot")
LEARN_EPOCHS = 6  # validations in the learning check
LEARN_MIN_DICE_GAIN = 0.05  # a region's pseudo-Dice must rise by this much from the first validation to the last
LEARN_MIN_LOSS_DROP = 0.1  # the last epoch's mean loss must be this fraction below the first epoch's
GIB = 2**30


@dataclass(frozen=True)
class Scale:
    """The sizes of one run: the paper's on a GPU, tiny ones for the CPU dry run."""

    device: str
    width: str
    patch: int
    batch: int
    precision: str
    phantom_shape: tuple[int, int, int]
    phantom_spacing: tuple[float, float, float] | None
    cases: int
    predict_shape: tuple[int, int, int]
    iterations: int  # timed training steps (model only; the epoch loop times as many)
    warmup: int
    loader_batches: int
    loader_workers: tuple[int, ...]
    learn_seconds: float
    learn_min_iterations: int  # per epoch, whatever the measured rate
    learn_val_batches: int  # validation batches after each epoch of the learning check
    overrides: tuple[str, ...] = ()  # `--set` config overrides for every model of the run


GPU = Scale(device="cuda", width="full", patch=128, batch=2, precision="bf16", phantom_shape=(240, 240, 155),
            phantom_spacing=(1.0, 1.0, 1.0), cases=24, predict_shape=(240, 240, 155), iterations=20, warmup=5,
            loader_batches=30, loader_workers=(0, 2, 4, 8), learn_seconds=180.0, learn_min_iterations=20,
            learn_val_batches=10)
CPU_SMOKE = Scale(device="cpu", width="tiny", patch=64, batch=2, precision="auto", phantom_shape=(96, 96, 80),
                  phantom_spacing=None, cases=8, predict_shape=(80, 80, 72), iterations=2, warmup=1,
                  loader_batches=4, loader_workers=(0, 2), learn_seconds=0.0, learn_min_iterations=3,
                  learn_val_batches=2)


class Report:
    """The JSON result, rewritten after every stage, and the log, both in the output folder."""

    def __init__(self, out: Path, scale: Scale):
        self.out = out
        self.data: dict = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "scale": asdict(scale)}
        self.log_file = (out / "gpu_check.log").open("w")
        self.started = time.perf_counter()

    def say(self, line: str) -> None:
        line = f"[{time.perf_counter() - self.started:6.1f} s] {line}"
        print(line, flush=True)
        self.log_file.write(line + "\n")
        self.log_file.flush()

    def save(self) -> None:
        temporary = self.out / ".gpu_check.json.tmp"
        temporary.write_text(json.dumps(self.data, indent=2, default=_plain) + "\n")
        temporary.replace(self.out / "gpu_check.json")

    def close(self) -> None:
        self.log_file.close()


def _plain(value):
    """numpy numbers as JSON numbers."""
    return value.item() if isinstance(value, np.generic) else str(value)


def device_record(device: torch.device) -> dict:
    """What ran the check: the device, its dense bf16 peak where known, and the software versions."""
    record = {"torch": torch.__version__, "python": platform.python_version(), "cpus": os.cpu_count()}
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        record.update(name=torch.cuda.get_device_name(device), memory_gib=round(properties.total_memory / GIB, 1),
                      capability=f"{properties.major}.{properties.minor}", cuda=torch.version.cuda,
                      cudnn=torch.backends.cudnn.version(), peak_bf16_tflops=peak_tflops(device))
    else:
        record.update(name=f"CPU ({platform.processor() or platform.machine()})", peak_bf16_tflops=None)
    return record


def make_phantoms(root: Path, scale: Scale) -> Path:
    """Full-size phantoms, preprocessed into a cache; returns the cache folder."""
    workers = os.cpu_count() or 1
    spec = PhantomSpec(shape=scale.phantom_shape, spacing=scale.phantom_spacing)
    write_phantoms(root / "raw", cases=scale.cases, seed=18, spec=spec, workers=workers, progress=False)
    preprocess_dataset(root / "raw", root / "pre", workers=workers, progress=False)
    return root / "pre"


def preset_config(preset: str, scale: Scale, extra: list[str] = ()) -> ExperimentConfig:
    """`preset` at the scale's patch, batch, width and precision, with the run's `--set` overrides last."""
    side = scale.patch
    return build_config(preset, [f"model.width={scale.width}", f"train.patch_size=[{side},{side},{side}]",
                                 f"loop.batch_size={scale.batch}", f"loop.precision={scale.precision}", *extra,
                                 *scale.overrides])


def peak_memory_gib(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / GIB, 2) if device.type == "cuda" else None


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_loader(cache: Path, scale: Scale, device: torch.device, report: Report) -> dict[int, float]:
    """Batches/s of the patch loader (read and crop, with the margins that rotation and scaling need) for each
    worker count, startup included, as every epoch starts its own."""
    config = preset_config("paper-encoder", scale, ["data.num_folds=4"])
    batches = SegmentationTask(config, cache, 0).batches
    rates = {}
    for workers in scale.loader_workers:
        started = time.perf_counter()
        for _ in patch_loader(batches, 0, scale.loader_batches, workers, pin_memory=device.type == "cuda"):
            pass
        rates[workers] = scale.loader_batches / (time.perf_counter() - started)
        report.say(f"loader, {workers} workers: {rates[workers]:.1f} batches/s")
    return rates


def workers_to_feed(rates: dict[int, float], steps_per_s: float) -> int | None:
    """The fewest loader processes whose batches/s reach `steps_per_s`; None when no count measured does."""
    return next((workers for workers, rate in sorted(rates.items()) if rate >= steps_per_s), None)


def measure_training(preset: str, cache: Path, scale: Scale, device: torch.device, rates: dict[int, float],
                     root: Path) -> dict:
    """Model-only and with-data training rates of `preset`, with MFU and peak memory."""
    config = preset_config(preset, scale, ["data.num_folds=4", f"loop.iterations_per_epoch={scale.iterations}"])
    peak = peak_tflops(device)
    forward_gflops = model_info(config.model.name, scale.width, scale.patch).gflops
    gflops_per_step = 3 * forward_gflops * scale.batch
    reset_peak_memory(device)
    trainer = Trainer(SegmentationTask(config, cache, 0), ModelFolder(root / "runs" / preset), device=device)
    trainer.model.train()
    images, targets = trainer.batch(0)
    model_only = timed(lambda i: trainer.train_step(images, targets), scale.iterations, scale.warmup, device)
    workers = workers_to_feed(rates, 1 / model_only)
    chosen = workers if workers is not None else max(rates)
    trainer.loop = replace(trainer.loop, num_workers=chosen)
    trainer.train_epoch(0)  # warm-up of the loop itself
    synchronize(device)
    started = time.perf_counter()
    trainer.train_epoch(1)
    synchronize(device)
    with_data = (time.perf_counter() - started) / scale.iterations
    autotuned = None
    if device.type == "cuda":  # cuDNN timing its algorithms per shape (nnU-Net turns it on): a candidate default
        torch.backends.cudnn.benchmark = True
        try:
            autotuned = timed(lambda i: trainer.train_step(images, targets), scale.iterations, scale.warmup, device)
        finally:
            torch.backends.cudnn.benchmark = False

    def utilisation(seconds: float) -> float | None:
        return round(gflops_per_step / seconds / 1000 / peak, 4) if peak else None

    return {"patch": scale.patch, "batch": scale.batch, "precision": resolve_precision(scale.precision, device),
            "forward_gflops_per_sample": round(forward_gflops, 1),
            "model_only": {"it_per_s": round(1 / model_only, 3), "mfu": utilisation(model_only),
                           "gflop_per_s": round(gflops_per_step / model_only, 1)},
            "model_only_cudnn_benchmark": None if autotuned is None else {
                "it_per_s": round(1 / autotuned, 3), "mfu": utilisation(autotuned)},
            "loader_workers": chosen, "loader_keeps_up": workers is not None,
            "it_per_s": round(1 / with_data, 3), "samples_per_s": round(scale.batch / with_data, 3),
            "mfu": utilisation(with_data), "peak_gib": peak_memory_gib(device)}


def random_trained_model(model: str, scale: Scale, device: torch.device) -> TrainedModel:
    """The full network `model` with seeded random weights, as prediction loads a trained one."""
    config = preset_config(PREDICT_MODELS[model], scale)
    torch.manual_seed(0)
    network = model_from_config(config).to(device).eval()
    return TrainedModel(network, config, Path("random"), config.loop.epochs, ModelFolder("random"))


def monai_probabilities(trained: TrainedModel, image: torch.Tensor, mode: str, windows_per_pass: int,
                        device: torch.device) -> torch.Tensor:
    """MONAI's Gaussian sliding window (50% overlap, sigma = patch/8) on each TTA view of the volume, in the
    network's precision, mapped back and averaged."""
    from monai.inferers import sliding_window_inference

    precision = resolve_precision(trained.config.loop.precision, device)
    views, total = tta_views(mode), None
    with torch.inference_mode(), autocast(precision, device):
        for view in views:
            probabilities = sliding_window_inference(
                view.apply(image[None].to(device)), tuple(trained.config.train.patch_size), windows_per_pass,
                lambda x: torch.sigmoid(trained.network(x).logits.float()), overlap=0.5, mode="gaussian",
                sigma_scale=0.125)
            probabilities = view.invert(probabilities[0])
            total = probabilities if total is None else total + probabilities
    return total / len(views)


def timed_call(function: Callable[[], object], device: torch.device) -> tuple[float, float | None]:
    """Seconds and peak memory (GiB) of one call."""
    reset_peak_memory(device)
    started = time.perf_counter()
    function()
    synchronize(device)
    return time.perf_counter() - started, peak_memory_gib(device)


def measure_prediction(model: str, scale: Scale, device: torch.device, report: Report) -> dict:
    """Seconds, windows/s and peak memory of `Predictor.probabilities` on one random case per TTA mode, and MONAI's
    on the same network and views when it is installed."""
    trained = random_trained_model(model, scale, device)
    image = torch.randn(4, *scale.predict_shape, generator=torch.Generator().manual_seed(1))
    patch = (scale.patch,) * 3
    windows = len(window_grid(tuple(max(s, p) for s, p in zip(scale.predict_shape, patch)), patch, 0.5))
    result: dict = {"shape": [4, *scale.predict_shape], "windows_per_view": windows}
    try:
        import monai
        result["monai_version"] = monai.__version__
    except ImportError:
        result["monai"] = "not installed"
    predictors = {mode: Predictor([trained], InferConfig(tta=mode, step=0.5), device) for mode in TTA_MODES}
    batch = predictors["none"].window_batches[0].size
    result["windows_per_pass"] = batch
    predictors["none"].probabilities(image.numpy())  # warm-up: kernel choice, allocator
    if "monai_version" in result:
        monai_probabilities(trained, image, "none", batch, device)
    for mode, predictor in predictors.items():
        seconds, peak = timed_call(lambda p=predictor: p.probabilities(image.numpy()), device)
        total_windows = windows * len(predictor.views)
        result[f"{mode}_s"] = round(seconds, 3)
        result[mode] = {"windows": total_windows, "windows_per_s": round(total_windows / seconds, 1),
                        "peak_gib": peak}
        line = f"predict {model}, tta {mode}: {seconds:.2f} s ({total_windows / seconds:.1f} windows/s"
        if "monai_version" in result:
            monai_seconds, monai_peak = timed_call(
                lambda m=mode: monai_probabilities(trained, image, m, batch, device).cpu(), device)
            result[mode].update(monai_s=round(monai_seconds, 3), monai_peak_gib=monai_peak)
            line += f"; MONAI {monai_seconds:.2f} s"
        report.say(line + ")")
    return result


def learning_check(cache: Path, scale: Scale, device: torch.device, rate: float, out: Path, root: Path,
                   report: Report) -> dict:
    """`paper-encoder` (AdamW, lr 2e-3) for about `scale.learn_seconds` at the measured with-data `rate`, through
    `Trainer.fit`; the log's first and last epochs decide."""
    per_epoch = max(scale.learn_min_iterations, int(scale.learn_seconds * rate / LEARN_EPOCHS))
    config = preset_config("paper-encoder", scale, [
        "data.num_folds=4", f"loop.epochs={LEARN_EPOCHS}", f"loop.iterations_per_epoch={per_epoch}",
        "loop.val_every=1", f"loop.val_batches={scale.learn_val_batches}", f"loop.checkpoint_every={LEARN_EPOCHS}",
        f"loop.num_workers={_learn_workers(scale)}"])
    folder = ModelFolder(root / "runs" / "learning_check")
    started = time.perf_counter()
    trainer = Trainer(SegmentationTask(config, cache, 0), folder, device=device)
    trainer.fit()
    seconds = time.perf_counter() - started
    shutil.copy(folder.log, out / "learning_check_log.csv")
    with folder.log.open() as file:
        rows = list(csv.DictReader(file))
    regions = [column for column in rows[0] if column.startswith("dice_")]
    losses = [float(row["train_loss"]) for row in rows]
    dice = {region: [_number(row[region]) for row in rows] for region in regions}
    verdict = learning_verdict(losses, dice, trainer.state.skipped_steps)
    report.say(f"learning check: {'passed' if verdict['passed'] else 'FAILED'}; loss {losses[0]:.3f} -> "
               f"{losses[-1]:.3f}; " + ", ".join(f"{region} {values[0]:.3f} -> {values[-1]:.3f}"
                                                 for region, values in dice.items()))
    return {**verdict, "preset": "paper-encoder", "optimizer": config.train.optimizer, "lr": config.train.lr,
            "epochs": LEARN_EPOCHS, "iterations_per_epoch": per_epoch, "seconds": round(seconds, 1),
            "train_loss": losses, "pseudo_dice": dice,
            "criteria": {"min_loss_drop": LEARN_MIN_LOSS_DROP, "min_dice_gain": LEARN_MIN_DICE_GAIN}}


def learning_verdict(losses: list[float], dice: dict[str, list[float]], skipped_steps: int) -> dict:
    """Whether training learned: the last epoch's mean loss at least LEARN_MIN_LOSS_DROP below the first's, every
    region's pseudo-Dice at least LEARN_MIN_DICE_GAIN above its first validation, and no step skipped for a
    non-finite loss (a diverging run)."""
    loss_fell = all(math.isfinite(loss) for loss in losses) and losses[-1] <= (1 - LEARN_MIN_LOSS_DROP) * losses[0]
    rose = {region: values[-1] - values[0] >= LEARN_MIN_DICE_GAIN for region, values in dice.items()}
    return {"passed": loss_fell and all(rose.values()) and skipped_steps == 0, "loss_fell": loss_fell,
            "dice_rose": rose, "skipped_steps": skipped_steps}


def _learn_workers(scale: Scale) -> int:
    return min(max(scale.loader_workers), max(0, (os.cpu_count() or 1) - 2))


def _number(text: str) -> float:
    """A logged pseudo-Dice; an empty or NaN one (no region in the validation patches) counts as 0."""
    value = float(text) if text else math.nan
    return 0.0 if math.isnan(value) else value


def run_stages(args: argparse.Namespace, scale: Scale, report: Report, root: Path) -> None:
    device = torch.device(scale.device)
    report.data["device"] = device_record(device)
    report.say(f"device: {report.data['device']['name']}")
    report.save()
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 leftovers (losses, norms' statistics) as training does
    cache = make_phantoms(root, scale)
    report.say(f"phantoms: {scale.cases} cases of {scale.phantom_shape}, preprocessed")
    rates = measure_loader(cache, scale, device, report)
    report.data["loader"] = {"batches_per_s": rates, "patch": scale.patch, "batch": scale.batch}
    report.save()
    report.data["train"] = {}
    for preset in args.presets:
        result = measure_training(preset, cache, scale, device, rates, root)
        report.data["train"][preset] = result
        report.say(f"train {preset}: model only {result['model_only']['it_per_s']} it/s "
                   f"(MFU {result['model_only']['mfu'] or '-'}), with data {result['it_per_s']} it/s "
                   f"({result['loader_workers']} loader workers), peak {result['peak_gib']} GiB")
        report.save()
    if args.learn:  # before prediction: of everything here, the finding that matters most
        rate = report.data["train"]["paper-encoder"]["it_per_s"]
        report.data["learning_check"] = learning_check(cache, scale, device, rate, report.out, root, report)
        report.save()
    report.data["predict"] = {}
    for model in args.predict:
        report.data["predict"][model] = measure_prediction(model, scale, device, report)
        report.save()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for gpu_check.json, gpu_check.log and the learning log")
    parser.add_argument("--cpu", action="store_true", help="every stage at tiny size on the CPU (a dry run)")
    parser.add_argument("--presets", nargs="*", default=list(TRAIN_PRESETS), choices=TRAIN_PRESETS)
    parser.add_argument("--predict", nargs="*", default=list(PREDICT_MODELS), choices=list(PREDICT_MODELS))
    parser.add_argument("--no-learn", dest="learn", action="store_false", help="skip the learning check")
    parser.add_argument("--learn-seconds", type=float, default=None, help="the learning check's training time")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for every model (repeatable), e.g. to measure a new option")
    args = parser.parse_args()
    scale = replace(CPU_SMOKE if args.cpu else GPU, overrides=tuple(args.overrides))
    if args.learn_seconds is not None:
        scale = replace(scale, learn_seconds=args.learn_seconds)
    if scale.device == "cuda" and not torch.cuda.is_available():
        sys.exit("error: no CUDA device here; use --cpu for the dry run")
    try:
        preset_config("paper-encoder", scale)
    except UserError as error:
        sys.exit(f"error: --set: {error}")
    if args.learn and "paper-encoder" not in args.presets:
        sys.exit("error: the learning check takes its length from paper-encoder's rate: keep it in --presets")
    args.out.mkdir(parents=True, exist_ok=True)
    keep_freed_memory()  # as the command line does
    report = Report(args.out, scale)
    # The training loop's progress bars and any warnings go to a file: the output shows one line per stage.
    with tempfile.TemporaryDirectory(prefix="gpu_check.") as tmp, (args.out / "gpu_check.stderr").open("w") as errors, \
            contextlib.redirect_stderr(errors):
        run_stages(args, scale, report, Path(tmp))
    report.data["seconds"] = round(time.perf_counter() - report.started, 1)
    report.save()
    report.say(f"done: {args.out / 'gpu_check.json'}")
    report.close()


if __name__ == "__main__":
    main()
