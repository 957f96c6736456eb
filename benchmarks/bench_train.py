"""Training throughput: iterations/s, samples/s and model FLOP utilisation, with and without data loading.

For each preset: "model only" times train_step on one batch that is already on the device; "with data" also
reads the patches from a phantom cache and augments them on the device, as training does. Model FLOPs per
iteration = 3 x forward GFLOPs (from model-info) x batch; MFU divides the achieved rate by the GPU's dense bf16
peak. On a CPU no peak is stated, so only the achieved GFLOP/s is shown. Each precision is measured in the same
run; the last column is the speed-up of the model-only rate over the first precision listed. `--compare`
adds a row per preset and precision with those config overrides, against the row without them.

    python benchmarks/bench_train.py                      # tiny presets, CPU, fp32 and bf16
    python benchmarks/bench_train.py --presets paper-encoder paper-decoder paper-both unet --device cuda
    python benchmarks/bench_train.py --presets tiny --precision fp32 --compare train.blob_loss_weight=1
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from transunet3d.config import build_config
from transunet3d.data.phantom import PhantomSpec, write_phantoms
from transunet3d.data.preprocess import preprocess_dataset
from transunet3d.memory import keep_freed_memory
from transunet3d.models import model_info
from transunet3d.runs.layout import ModelFolder
from transunet3d.training.segmentation import SegmentationTask
from transunet3d.training.trainer import Trainer

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}


def peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_TFLOPS.items() if key in name), None)


def timed(step, iterations: int, warmup: int, device: torch.device) -> float:
    """Seconds per call of step(i), after `warmup` untimed calls."""
    for index in range(warmup):
        step(index)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for index in range(warmup, warmup + iterations):
        step(index)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / iterations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny-unet", "tiny", "tiny-decoder", "tiny-both"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--compare", nargs="+", default=[], metavar="KEY=VALUE",
                        help="config overrides measured beside each preset and precision")
    args = parser.parse_args()
    device = torch.device(args.device)
    keep_freed_memory()  # as the command line does
    peak = peak_tflops(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    with tempfile.TemporaryDirectory() as tmp:
        write_phantoms(Path(tmp) / "raw", cases=4, seed=0, spec=PhantomSpec(shape=(160, 192, 160)), progress=False)
        preprocess_dataset(Path(tmp) / "raw", Path(tmp) / "pre", progress=False)
        print(f"device: {name}")
        print("| preset | overrides | precision | patch | batch | model only: it/s | with data: it/s | samples/s "
              f"| GFLOP/s | MFU | vs {args.precision[0]} or without |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for preset in args.presets:
            first = None
            for precision in args.precision:
                rate, row = measure(preset, [], precision, Path(tmp), device, args.iterations, args.warmup, peak)
                first = first or rate
                print(f"{row} {rate / first:.2f}x |")
                if args.compare:
                    compared, row = measure(preset, args.compare, precision, Path(tmp), device, args.iterations,
                                            args.warmup, peak)
                    print(f"{row} {compared / rate:.2f}x |")


def measure(preset: str, extra: list[str], precision: str, root: Path, device: torch.device, iterations: int,
            warmup: int, peak: float | None) -> tuple[float, str]:
    """The model-only iterations/s of `preset` with the `extra` overrides in `precision`, and its table row (less
    the last column)."""
    overrides = [f"loop.epochs={iterations + warmup}", "data.num_folds=2", f"loop.precision={precision}", *extra]
    config = build_config(preset, overrides)
    run_dir = root / "runs" / f"{preset}-{precision}-{len(extra)}"
    trainer = Trainer(SegmentationTask(config, root / "pre", 0), ModelFolder(run_dir), device=str(device))
    trainer.model.train()
    images, targets = trainer.batch(0)
    model_only = timed(lambda i: trainer.train_step(images, targets), iterations, warmup, device)
    with_data = timed(lambda i: trainer.train_step(*trainer.batch(i)), iterations, warmup, device)
    patch, batch = config.train.patch_size, config.loop.batch_size
    info = model_info(config.model.name, config.model.width, patch[0])
    gflops = 3 * info.gflops * batch / model_only
    mfu = f"{gflops / 1000 / peak:.1%}" if peak else "-"
    row = (f"| {preset} | {' '.join(extra) or '-'} | {precision} | {patch[0]}^3 | {batch} | {1 / model_only:.2f} "
           f"| {1 / with_data:.2f} | "
           f"{batch / with_data:.2f} | {gflops:.0f} | {mfu} |")
    return 1 / model_only, row

if __name__ == "__main__":
    main()
