"""Sliding-window prediction with TTA: our predictor against MONAI's or nnU-Net v2's, same run.

The references are not dependencies of transunet3d (src/ never imports them); install them into the venv without
their dependencies (those of nnU-Net's predictor that it needs are already installed; the rest would replace torch):

    .venv/bin/pip install --no-deps monai                                              # --against monai
    .venv/bin/pip install --no-deps nnunetv2==2.8.1 acvl-utils==0.2.6 dynamic-network-architectures==0.4.4  # nnunet

MONAI and ours get the same network weights, window size, overlap (50%), Gaussian blending (sigma = patch/8) and TTA
views. MONAI is used as its documentation shows: `sliding_window_inference(..., mode="gaussian")` under
`torch.no_grad()` on each viewed volume in turn, each prediction mapped back and averaged; its `sw_batch_size`
is `--batch-windows` (by default MONAI's own, 1; ours is then sized from memory, as `predict` sizes it).
Ours is `Predictor.probabilities` as `transunet3d predict` runs it. The volume size is chosen so that MONAI's
window grid equals ours (size - patch a multiple of the stride), so the outputs must agree: the max abs difference
is printed.

Each measurement runs in a fresh process, because our predictor changes a process-wide setting on the CPU (it
keeps freed large blocks in the heap, see transunet3d/memory.py). MONAI is measured twice: as a user runs it, and
in a process with the same allocator setting, which shows how much of the gap that setting alone explains. Each
process's peak resident memory (ru_maxrss, host memory only, in GB of 10^9 bytes; imports, the input volume and
the warm-up included) is printed beside its time.

`--background-load N` runs N busy processes beside every measurement: a machine shared with other jobs.

    python benchmarks/bench_predict.py                     # tiny encoder, 64^3 windows, CPU
    python benchmarks/bench_predict.py --width full --patch 128 --shape 256 256 192 --device cuda

`--against nnunet` puts nnU-Net v2's `nnUNetPredictor.predict_sliding_window_return_logits` in MONAI's place, run
as a user runs it (no allocator setting), given our network (its pre-sigmoid logits), the same image, patch size,
tile_step_size 0.5 and use_gaussian=True; TTA "flip" is its mirroring over axes (0, 1, 2), the same 8 views, and
"flip+rot" has no nnU-Net equivalent and is skipped. Its window grid equals ours (18 windows at the default size).
The columns compare our probabilities with the sigmoid of nnU-Net's logits. They differ by design, not by a bug:

(a) nnU-Net averages logits over windows and mirror views (Gaussian-weighted), we average sigmoid probabilities:
    the sigmoid of a mean against a mean of sigmoids;
(b) our Gaussian is raised to a floor of 1e-3 (`MIN_WEIGHT` in transunet3d/inference/gaussian.py, as MONAI's),
    nnU-Net's has none (only weights that round to 0 in float16 are raised to its smallest, 6e-9 relative). The
    floor applies to the 3D product, so it flattens 58% of a window (all beyond 3.7 sigma from its centre): where
    two windows meet near a face of the volume, we weigh both alike and nnU-Net almost only the one it is central
    to. nnU-Net's is also centred on voxel side // 2, not on the window's middle.

nnU-Net also accumulates in float16 (logits and weights): where its weight is subnormal (the outer corners of a
window), a logit times its weight is rounded to a multiple of 6e-8, which at the smallest weight rounds the logit to
an integer. With the random tiny encoder on the default random volume (TTA none), replaying the windows: (b)'s floor
alone moves probabilities by up to 0.47, float16 by up to 0.12, (a) by up to 0.07 (0.24 with our Gaussian) and the
centring by up to 0.03. The printed maximum, 0.47, is at a voxel 2 from a face of the volume and on the edge of one
of the two windows that cover it; the median is 2e-3, the 99th percentile 0.12. A trained network, whose windows
agree better at their borders, should differ less (not measured). nnU-Net also predicts one window per forward pass
with its mirror views in turn, and on CUDA runs the network under autocast (float16) where ours runs float32:

    python benchmarks/bench_predict.py --against nnunet --tta none flip

At full size a warm-up with every mirror view would double a quarter-hour measurement; `--warm-up none` warms
both sides with one pass over the same windows (the kernels and, for ours, the heap are then in place):

    python benchmarks/bench_predict.py --against nnunet --model unet --width full --patch 128 \
        --shape 140 170 140 --tta flip --warm-up none --gaussian-weighting nnunet

`--against onnx` measures instead the same predictor with the network exported to ONNX and run by ONNX Runtime
(`transunet3d export`, `predict --backend onnxruntime`; the onnx extra), on a phantom cropped to its brain as
prediction crops it (a zero background, which is where ONNX Runtime's own norms lose precision), for each
`--model`:

    python benchmarks/bench_predict.py --against onnx --model unet encoder decoder both --tta none flip
"""

from __future__ import annotations

import argparse
import contextlib
import io
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def network_for(args: argparse.Namespace):
    from transunet3d.models import create_model

    torch.manual_seed(0)  # the same weights in every process
    patch = (args.patch,) * 3
    return create_model(args.model, args.width, patch_size=patch).to(args.device).eval()


def config_for(args: argparse.Namespace):
    from transunet3d.config import build_config

    patch = ",".join([str(args.patch)] * 3)
    return build_config("tiny", [f"model.name={args.model}", f"model.width={args.width}",
                                 f"train.patch_size=[{patch}]", f"loop.precision={args.precision}"])


def ours(args: argparse.Namespace, image: torch.Tensor, mode: str) -> torch.Tensor:
    """`transunet3d predict`'s path: Predictor.probabilities on one preprocessed image."""
    from transunet3d.inference.trained import TrainedModel
    from transunet3d.runs.layout import ModelFolder

    config = config_for(args)
    model = TrainedModel(network_for(args), config, Path("."), config.loop.epochs, ModelFolder("."))
    return predicted([model], args, image, mode)


def onnx(args: argparse.Namespace, image: torch.Tensor, mode: str) -> torch.Tensor:
    """`predict --backend onnxruntime`'s path: the same predictor, the exported network in ONNX Runtime."""
    from transunet3d.deploy.layout import ExportedNetwork
    from transunet3d.deploy.onnx_backend import OnnxModel, open_session

    config, path = config_for(args), Path(args.onnx_file)
    model = OnnxModel(open_session(path, torch.device(args.device)), config, Path("."), config.loop.epochs,
                      ExportedNetwork(path, None))
    return predicted([model], args, image, mode)


def predicted(models: list, args: argparse.Namespace, image: torch.Tensor, mode: str) -> torch.Tensor:
    from transunet3d.config.schema import InferConfig
    from transunet3d.inference.predictor import Predictor

    options = InferConfig(tta=mode, step=0.5, batch_windows=args.batch_windows,
                          gaussian_weighting=args.gaussian_weighting)
    return torch.from_numpy(Predictor(models, options, args.device).probabilities(image.numpy()))


def monai(args: argparse.Namespace, image: torch.Tensor, mode: str) -> torch.Tensor:
    """MONAI's sliding window on each viewed volume, mapped back and averaged."""
    from monai.inferers import sliding_window_inference

    from transunet3d.inference.tta import tta_views

    network, views, total = network_for(args), tta_views(mode), None
    with torch.no_grad():
        for view in views:
            probabilities = sliding_window_inference(
                view.apply(image[None].to(args.device)), (args.patch,) * 3, args.batch_windows or 1,
                lambda x: torch.sigmoid(network(x).logits.float()), overlap=0.5, mode="gaussian", sigma_scale=0.125)
            probabilities = view.invert(probabilities[0]).cpu()
            total = probabilities if total is None else total + probabilities
    return total / len(views)


class Logits(torch.nn.Module):
    """Our network as nnU-Net calls one: the pre-sigmoid region logits of a batch."""

    def __init__(self, network: torch.nn.Module):
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x).logits


def nnunet(args: argparse.Namespace, image: torch.Tensor, mode: str) -> torch.Tensor:
    """nnU-Net v2's sliding window (with mirroring for "flip"), given our network; sigmoid of its averaged logits."""
    from types import SimpleNamespace

    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    network, device = network_for(args), torch.device(args.device)
    with contextlib.redirect_stdout(io.StringIO()):  # its notice that on the CPU nothing is "on device"
        predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=mode == "flip",
                                    perform_everything_on_device=device.type == "cuda", device=device,
                                    verbose=False, allow_tqdm=False)
    # What `manual_initialization` would set from a plans file and dataset.json: all that the sliding window reads.
    predictor.network = Logits(network)
    predictor.configuration_manager = SimpleNamespace(patch_size=[args.patch] * 3)
    predictor.label_manager = SimpleNamespace(num_segmentation_heads=network.spec.num_regions)
    predictor.allowed_mirroring_axes = (0, 1, 2)
    logits = predictor.predict_sliding_window_return_logits(image.to(device))
    return torch.sigmoid(logits.float()).cpu()


def measure(method: str, tuned: bool, args: argparse.Namespace, mode: str, out: str) -> None:
    """In a fresh process: the best of `repeats` timed calls after a warm-up; result, seconds and the process's
    peak resident memory (GB) saved to `out`."""
    from transunet3d.memory import keep_freed_memory

    if tuned:
        keep_freed_memory()
    function = {"ours": ours, "monai": monai, "nnunet": nnunet, "onnx": onnx}[method]
    image = phantom_image(args.shape) if args.against == "onnx" else \
        torch.randn(4, *args.shape, generator=torch.Generator().manual_seed(1))
    function(args, image, args.warm_up or mode)  # warm-up: allocator, oneDNN/cuDNN kernel choice
    best = float("inf")
    for _ in range(args.repeats):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = function(args, image, mode)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # kB on Linux
    torch.save({"seconds": best, "peak": peak, "result": result}, out)


def phantom_image(shape: tuple[int, int, int]) -> torch.Tensor:
    """A phantom of `shape` at 1 mm, preprocessed as prediction preprocesses it (cropped to the brain, z-scored)."""
    from transunet3d.config.schema import MODALITIES
    from transunet3d.data.phantom import PhantomSpec
    from transunet3d.data.phantom.generate import generate_phantom
    from transunet3d.data.preprocess import preprocess_loaded
    from transunet3d.data.validate import LoadedCase

    phantom = generate_phantom(PhantomSpec(shape=tuple(shape), spacing=(1.0, 1.0, 1.0), lesions=(2, 6)), 3, 1)
    image = np.stack([phantom.images[modality] for modality in MODALITIES]).astype(np.float32)
    loaded = LoadedCase(phantom.case_id, image, None, phantom.geometry)
    return torch.from_numpy(preprocess_loaded(loaded, None, foreground_samples=0).image)


def run(method: str, tuned: bool, args: argparse.Namespace, mode: str,
        folder: Path) -> tuple[float, float, torch.Tensor]:
    """`measure` in a fresh process: its best seconds, peak resident memory (GB) and result."""
    out = str(folder / f"{method}_{tuned}_{mode}.pt")
    process = multiprocessing.get_context("spawn").Process(target=measure, args=(method, tuned, args, mode, out))
    process.start()
    process.join()
    if process.exitcode != 0:
        raise SystemExit(f"{method} failed with exit code {process.exitcode}")
    saved = torch.load(out)
    return saved["seconds"], saved["peak"], saved["result"]


def busy() -> None:
    """A background job that keeps one core busy."""
    while True:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="monai", choices=["monai", "nnunet", "onnx"])
    parser.add_argument("--model", nargs="+", default=["encoder"], choices=["unet", "encoder", "decoder", "both"])
    parser.add_argument("--precision", default="fp32", choices=["fp32", "auto"],
                        help="of our torch path (auto: bf16 on CUDA and CPUs with bf16 units); ONNX is fp32")
    parser.add_argument("--width", default="tiny", choices=["tiny", "full"])
    parser.add_argument("--background-load", type=int, default=0, metavar="N",
                        help="run N busy processes beside every measurement (a machine shared with other jobs)")
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--shape", type=int, nargs=3, default=(128, 128, 96))
    parser.add_argument("--tta", nargs="+", default=["none", "flip", "flip+rot"])
    parser.add_argument("--gaussian-weighting", default="floored", choices=["floored", "nnunet"],
                        help="ours: the Gaussian (nnunet: nnU-Net's, for parity with --against nnunet)")
    parser.add_argument("--batch-windows", type=int, default=None,
                        help="ours: inputs per forward pass (default: sized from memory, as predict does); MONAI's "
                             "sw_batch_size (default: MONAI's own, 1)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--warm-up", default=None, choices=list(VIEWS),
                        help="the TTA of the untimed warm-up call (default: the measured one); at full size, 'none' "
                             "runs the same windows once instead of 8 or 16 times")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else \
        f"CPU, {torch.get_num_threads()} threads"
    if args.background_load:
        name += f", {args.background_load} busy background process(es)"
    load = [multiprocessing.get_context("spawn").Process(target=busy, daemon=True)
            for _ in range(args.background_load)]
    for job in load:
        job.start()
    try:
        compare(args, name)
    finally:
        for job in load:
            job.terminate()


def compare(args: argparse.Namespace, name: str) -> None:
    if args.against == "onnx":
        compare_onnx(args, name)
        return
    args.model = args.model[0]
    print(f"{args.model} ({args.width}), {args.patch}^3 windows, volume {tuple(args.shape)}, "
          f"batch {args.batch_windows or 'sized from memory'}, {name}")
    if args.against == "nnunet":
        compare_nnunet(args)
    else:
        compare_monai(args)


VIEWS = {"none": 1, "flip": 8, "flip+rot": 16}


def compare_monai(args: argparse.Namespace) -> None:
    """Per TTA mode: ours against MONAI as a user runs it and with our allocator setting."""
    print("| TTA | views | ours (s) | ours peak (GB) | MONAI (s) | MONAI peak (GB) | speed-up | "
          "MONAI + our allocator setting (s) | its peak (GB) | speed-up | max abs difference |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as folder:
        for mode in args.tta:
            ours_seconds, ours_peak, ours_result = run("ours", True, args, mode, Path(folder))
            monai_seconds, monai_peak, monai_result = run("monai", False, args, mode, Path(folder))
            tuned_seconds, tuned_peak, _ = run("monai", True, args, mode, Path(folder))
            difference = float((ours_result - monai_result).abs().max())
            print(f"| {mode} | {VIEWS[mode]} | {ours_seconds:.2f} | {ours_peak:.2f} | {monai_seconds:.2f} | "
                  f"{monai_peak:.2f} | {monai_seconds / ours_seconds:.2f}x | {tuned_seconds:.2f} | {tuned_peak:.2f} | "
                  f"{tuned_seconds / ours_seconds:.2f}x | {difference:.1e} |", flush=True)


def compare_nnunet(args: argparse.Namespace) -> None:
    """Per TTA mode: ours against nnU-Net v2's predictor as a user runs it ("flip+rot" has no nnU-Net equivalent)."""
    print("| TTA | views | ours (s) | ours peak (GB) | nnU-Net (s) | nnU-Net peak (GB) | speed-up | "
          "max abs difference (ours vs sigmoid of nnU-Net's logits) | mean abs difference |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as folder:
        for mode in args.tta:
            if mode == "flip+rot":
                print(f"| {mode} | {VIEWS[mode]} | skipped: nnU-Net mirrors but has no rotations | | | | | | |",
                      flush=True)
                continue
            ours_seconds, ours_peak, ours_result = run("ours", True, args, mode, Path(folder))
            nnunet_seconds, nnunet_peak, nnunet_result = run("nnunet", False, args, mode, Path(folder))
            difference = (ours_result - nnunet_result).abs()
            print(f"| {mode} | {VIEWS[mode]} | {ours_seconds:.2f} | {ours_peak:.2f} | {nnunet_seconds:.2f} | "
                  f"{nnunet_peak:.2f} | {nnunet_seconds / ours_seconds:.2f}x | {float(difference.max()):.1e} | "
                  f"{float(difference.mean()):.1e} |", flush=True)


def compare_onnx(args: argparse.Namespace, name: str) -> None:
    """Per model and TTA mode: our torch path against the same predictor with the network in ONNX Runtime."""
    from transunet3d.deploy.export import export_network

    models = args.model
    print(f"{args.width} models, {args.patch}^3 windows, phantom {tuple(args.shape)} at 1 mm cropped to "
          f"{tuple(phantom_image(args.shape).shape[1:])}, batch {args.batch_windows or 'sized from memory'}, "
          f"torch {args.precision}, {name}")
    print("| model | TTA | views | torch (s) | torch peak (GB) | ONNX Runtime (s) | ONNX Runtime peak (GB) | "
          "ONNX / torch | max abs difference |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as folder:
        for model in models:
            args.model = model
            args.onnx_file = str(Path(folder) / f"{model}.onnx")
            export_network(network_for(args).cpu(), (args.patch,) * 3, Path(args.onnx_file))
            for mode in args.tta:
                torch_seconds, torch_peak, torch_result = run("ours", True, args, mode, Path(folder))
                onnx_seconds, onnx_peak, onnx_result = run("onnx", True, args, mode, Path(folder))
                difference = float((torch_result - onnx_result).abs().max())
                print(f"| {model} | {mode} | {VIEWS[mode]} | {torch_seconds:.2f} | {torch_peak:.2f} | "
                      f"{onnx_seconds:.2f} | {onnx_peak:.2f} | {onnx_seconds / torch_seconds:.2f}x | "
                      f"{difference:.1e} |", flush=True)


if __name__ == "__main__":
    main()
