"""Export a run's networks to ONNX, with what prediction needs beside them, so that the exported folder predicts
like the run (`predict --model EXPORTED --backend onnxruntime`) without the training stack.

Each network is exported as the sliding window calls it: patches (N, 4, *patch) -> sigmoid region probabilities
(N, R, *patch), float32, the batch dynamic and the patch fixed. In eval mode the networks compute no deep
supervision; the query decoder's per-layer predictions that the last one does not use are dropped from the graph,
and its Hungarian matching belongs to the training loss, never to the network.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from transunet3d import __version__
from transunet3d.config.schema import MODALITIES, ExperimentConfig
from transunet3d.data.labels import LabelScheme
from transunet3d.deploy.folders import building_folder, check_new_folder
from transunet3d.deploy.layout import ExportFolder, network_name
from transunet3d.deploy.optional import require
from transunet3d.deploy.precise_norms import precise_norms
from transunet3d.errors import UserError
from transunet3d.files import sha256_of, write_json
from transunet3d.inference.trained import TrainedModel, ensemble_scheme, fold_folders, load_trained_model
from transunet3d.inference.tta import tta_views
from transunet3d.jobs.tuning import run_postprocessing
from transunet3d.postprocessing.rules import PostprocessSettings
from transunet3d.runs.layout import RunFolder

OPSET = 20  # torch 2.13's default ONNX opset (torch.onnx._constants.ONNX_DEFAULT_OPSET)
INPUT, OUTPUT = "patches", "probabilities"
FORMAT = 1  # of export.json
TOLERANCE = 1e-4  # largest difference to torch that an export may show on its check input


class RegionProbabilities(nn.Module):
    """A network as the sliding window calls it: patches -> sigmoid of the region logits, float32."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.network(patches).logits.float())


def export_run(run_dir: str | Path, out_dir: str | Path, fold: str | None = None, which: str = "latest",
               on_model: Callable[[str], None] | None = None) -> dict:
    """Export the models that `predict --model RUN_DIR --fold FOLD` would use into `out_dir` (new or empty).

    Each network is checked against torch on a random batch of two patches before the folder appears; the folder
    appears whole or not at all.

    Args:
        run_dir: a training run (every cross-validation fold, or its all-data model) or one model folder.
        fold: as `predict --fold`.
        which: "latest" or "best" checkpoint.
        on_model: told the name of each network before it is exported (for progress lines).

    Returns:
        The content of OUT/export.json.

    Raises:
        UserError: `run_dir` is not a run or lacks the fold or checkpoint; `out_dir` is not new or empty.
        MissingPackage: onnx, onnxscript or onnxruntime is not installed.
    """
    for module in ("onnx", "onnxscript", "onnxruntime"):
        require(module, "transunet3d export")
    out_dir = Path(out_dir)
    check_new_folder(out_dir, "export")
    models = [load_trained_model(folder, which) for folder in fold_folders(run_dir, fold)]
    scheme = ensemble_scheme(models)
    tuned = run_postprocessing(run_dir, scheme)
    with building_folder(out_dir) as building:
        folder = ExportFolder(building)
        entries = []
        for model in models:
            name = network_name(model.folder.fold)
            if on_model is not None:
                on_model(name)
            entries.append(_export_model(model, folder, name, scheme))
        if tuned is not None:
            shutil.copyfile(RunFolder(run_dir).postprocessing, folder.postprocessing)
        record = export_record(models[0].config, scheme, tuned, run_dir, which, entries)
        write_json(folder.record, record)
    return record


def export_record(config: ExperimentConfig, scheme: LabelScheme, tuned: PostprocessSettings | None,
                  run_dir: str | Path, which: str, models: list[dict]) -> dict:
    """export.json: what prediction needs, in words a reader without transunet3d can follow, and the models."""
    infer = config.infer
    postprocessing = tuned or PostprocessSettings.uniform(infer.threshold, infer.min_lesion_mm3, infer.require_core)
    spacing = config.data.target_spacing
    return {
        "format": FORMAT,
        "exported_by": f"transunet3d {__version__}, torch {torch.__version__}",
        "source": {"run": str(Path(run_dir).resolve()), "checkpoint": which},
        "onnx": {"opset": OPSET, "input": INPUT, "output": OUTPUT, "dtype": "float32",
                 "input_shape": ["batch", len(MODALITIES), *models[0]["patch_size"]],
                 "output_shape": ["batch", len(scheme.region_names), *models[0]["patch_size"]],
                 "output_meaning": "sigmoid region probabilities, channels in the order of label_scheme.regions"},
        "label_scheme": {"name": scheme.name, "regions": list(scheme.region_names),
                         "region_labels": {region: list(labels) for region, labels in scheme.regions.items()},
                         "writing_order": [list(pair) for pair in scheme.writing_order]},
        "preprocessing": {
            "channels": list(MODALITIES),
            "axis_order": config.data.axis_order or "as stored (a run from before target spacings)",
            "target_spacing": None if spacing is None else list(spacing),
            "crop": "to the union of nonzero voxels of the four modalities",
            "normalization": "z-score per modality over the nonzero (brain) voxels, background 0",
        },
        "inference": {"step": infer.step, "gaussian_sigma_scale": infer.gaussian_sigma_scale,
                      "gaussian_weighting": infer.gaussian_weighting,
                      "batch_windows": infer.batch_windows, "tta": infer.tta, "tta_views": len(tta_views(infer.tta))},
        "postprocessing": {"source": "tuned on the run's cross-validation (postprocessing.json)" if tuned
                           else "the config's infer section", "settings": postprocessing.to_json()},
        "models": models,
    }


def _export_model(model: TrainedModel, folder: ExportFolder, name: str, scheme: LabelScheme) -> dict:
    """One network to `name`.onnx (checked against torch) and its config beside it; its entry in export.json."""
    network = model.network.float().eval()
    patch = tuple(model.config.train.patch_size)
    regions = network.spec.num_regions
    if regions != len(scheme.region_names):
        raise UserError(f"{model.folder.config}: the network outputs {regions} regions, its label scheme "
                        f"{scheme.name} has {len(scheme.region_names)}")
    path = folder.network(name)
    export_network(network, patch, path)
    difference = check_network(network, patch, path)
    if difference > TOLERANCE:
        raise RuntimeError(f"{path}: ONNX Runtime differs from torch by {difference:.2e} (> {TOLERANCE:g})")
    shutil.copyfile(model.folder.config, folder.config(name))
    return {"name": name, "fold": model.folder.fold, "onnx": path.name, "config": folder.config(name).name,
            "variant": model.config.model.name, "width": model.config.model.width, "patch_size": list(patch),
            "checkpoint": model.checkpoint.name, "epoch": model.epoch, "epochs": model.config.loop.epochs,
            "sha256": sha256_of(path), "max_difference_to_torch": difference}


def export_network(network: nn.Module, patch: tuple[int, int, int], path: Path) -> None:
    """`network` (eval mode, float32, on the CPU) as an ONNX file at `path`: dynamic batch, fixed patch, norms
    whose statistics ONNX Runtime computes precisely (`precise_norms`)."""
    example = torch.zeros(2, network.spec.in_channels, *patch)
    batch = torch.export.Dim("batch", min=1)
    with _quiet_exporter():
        torch.onnx.export(RegionProbabilities(network).eval(), (example,), path, input_names=[INPUT],
                          output_names=[OUTPUT], opset_version=OPSET, dynamo=True, dynamic_shapes={INPUT: {0: batch}},
                          custom_translation_table=precise_norms(), external_data=False, verbose=False)


def check_network(network: nn.Module, patch: tuple[int, int, int], path: Path) -> float:
    """The largest difference between torch and ONNX Runtime (CPU) on a batch of two random patches, the second
    zero outside one corner (as a brain at the border of a zero-padded volume)."""
    onnxruntime = require("onnxruntime", "checking an export")
    patches = torch.randn(2, network.spec.in_channels, *patch, generator=torch.Generator().manual_seed(0))
    patches[1, :, patch[0] // 3:] = 0
    patches[1, :, :, patch[1] // 3:] = 0
    with torch.inference_mode():
        expected = RegionProbabilities(network)(patches).numpy()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    found = session.run([OUTPUT], {INPUT: patches.numpy()})[0]
    return float(np.abs(found - expected).max())


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter without its notes on optional packages (torchvision) and deprecations."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
