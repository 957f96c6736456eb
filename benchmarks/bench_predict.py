"""Sliding-window prediction with TTA: our predictor against MONAI's `sliding_window_inference`, same run.

Both get the same network weights, window size, overlap (50%), Gaussian blending (sigma = patch/8) and TTA views.
MONAI is used as its documentation shows: `sliding_window_inference(..., mode="gaussian")` under `torch.no_grad()`
on each viewed volume in turn, each prediction mapped back and averaged; its `sw_batch_size` equals our
`batch_windows`. Ours is `Predictor.probabilities` as `transunet3d predict` runs it. The volume size is chosen so
that MONAI's window grid equals ours (size - patch a multiple of the stride), so the outputs must agree: the max
abs difference is printed.

Each measurement runs in a fresh process, because our predictor changes a process-wide setting on the CPU (it
keeps freed large blocks in the heap, see transunet3d/memory.py). MONAI is measured twice: as a user runs it, and
in a process with the same allocator setting, which shows how much of the gap that setting alone explains.

MONAI is not a dependency of transunet3d; install it without its dependencies to run this:

    .venv/bin/pip install --no-deps monai
    python benchmarks/bench_predict.py                     # tiny encoder, 64^3 windows, CPU
    python benchmarks/bench_predict.py --width full --patch 128 --shape 256 256 192 --device cuda
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from pathlib import Path

import torch


def network_for(args: argparse.Namespace):
    from transunet3d.models import create_model

    torch.manual_seed(0)  # the same weights in every process
    patch = (args.patch,) * 3
    return create_model(args.model, args.width, patch_size=patch).to(args.device).eval()


def ours(args: argparse.Namespace, image: torch.Tensor, mode: str) -> torch.Tensor:
    """`transunet3d predict`'s path: Predictor.probabilities on one preprocessed image."""
    from transunet3d.config import build_config
    from transunet3d.config.schema import InferConfig
    from transunet3d.inference.predictor import Predictor
    from transunet3d.inference.trained import TrainedModel
    from transunet3d.runs.layout import ModelFolder

    patch = ",".join([str(args.patch)] * 3)
    config = build_config("tiny", [f"model.name={args.model}", f"model.width={args.width}",
                                   f"train.patch_size=[{patch}]", "loop.precision=fp32"])
    model = TrainedModel(network_for(args), config, Path("."), config.loop.epochs, ModelFolder("."))
    options = InferConfig(tta=mode, step=0.5, batch_windows=args.batch_windows)
    predictor = Predictor([model], options, args.device)
    return torch.from_numpy(predictor.probabilities(image.numpy()))


def monai(args: argparse.Namespace, image: torch.Tensor, mode: str) -> torch.Tensor:
    """MONAI's sliding window on each viewed volume, mapped back and averaged."""
    from monai.inferers import sliding_window_inference

    from transunet3d.inference.tta import tta_views

    network, views, total = network_for(args), tta_views(mode), None
    with torch.no_grad():
        for view in views:
            probabilities = sliding_window_inference(
                view.apply(image[None].to(args.device)), (args.patch,) * 3, args.batch_windows,
                lambda x: torch.sigmoid(network(x).logits.float()), overlap=0.5, mode="gaussian", sigma_scale=0.125)
            probabilities = view.invert(probabilities[0]).cpu()
            total = probabilities if total is None else total + probabilities
    return total / len(views)


def measure(method: str, tuned: bool, args: argparse.Namespace, mode: str, out: str) -> None:
    """In a fresh process: the best of `repeats` timed calls after a warm-up; result and seconds saved to `out`."""
    from transunet3d.memory import keep_freed_memory

    if tuned:
        keep_freed_memory()
    function = {"ours": ours, "monai": monai}[method]
    image = torch.randn(4, *args.shape, generator=torch.Generator().manual_seed(1))
    function(args, image, mode)  # warm-up: allocator, oneDNN/cuDNN kernel choice
    best = float("inf")
    for _ in range(args.repeats):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = function(args, image, mode)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    torch.save({"seconds": best, "result": result}, out)


def run(method: str, tuned: bool, args: argparse.Namespace, mode: str, folder: Path) -> tuple[float, torch.Tensor]:
    out = str(folder / f"{method}_{tuned}_{mode}.pt")
    process = multiprocessing.get_context("spawn").Process(target=measure, args=(method, tuned, args, mode, out))
    process.start()
    process.join()
    if process.exitcode != 0:
        raise SystemExit(f"{method} failed with exit code {process.exitcode}")
    saved = torch.load(out)
    return saved["seconds"], saved["result"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="encoder", choices=["unet", "encoder", "decoder", "both"])
    parser.add_argument("--width", default="tiny", choices=["tiny", "full"])
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--shape", type=int, nargs=3, default=(128, 128, 96))
    parser.add_argument("--tta", nargs="+", default=["none", "flip", "flip+rot"])
    parser.add_argument("--batch-windows", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else \
        f"CPU, {torch.get_num_threads()} threads"
    print(f"{args.model} ({args.width}), {args.patch}^3 windows, volume {tuple(args.shape)}, "
          f"batch {args.batch_windows}, {name}")
    print("| TTA | views | ours (s) | MONAI (s) | speed-up | MONAI + our allocator setting (s) | speed-up | "
          "max abs difference |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as folder:
        for mode in args.tta:
            ours_seconds, ours_result = run("ours", True, args, mode, Path(folder))
            monai_seconds, monai_result = run("monai", False, args, mode, Path(folder))
            tuned_seconds, _ = run("monai", True, args, mode, Path(folder))
            difference = float((ours_result - monai_result).abs().max())
            views = {"none": 1, "flip": 8, "flip+rot": 16}[mode]
            print(f"| {mode} | {views} | {ours_seconds:.2f} | {monai_seconds:.2f} | "
                  f"{monai_seconds / ours_seconds:.2f}x | {tuned_seconds:.2f} | {tuned_seconds / ours_seconds:.2f}x | "
                  f"{difference:.1e} |", flush=True)


if __name__ == "__main__":
    main()
