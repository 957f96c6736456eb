"""Exported networks run by ONNX Runtime inside the usual `Predictor`: the same preprocessing, sliding window, TTA,
resampling and post-processing as `predict --model RUN`, another engine for the network alone.

An `OnnxModel` stands where a `TrainedModel` stands (config, folder, checkpoint, epoch, record) and makes its own
patch predictor: patches go to ONNX Runtime as float32 arrays and come back as region probabilities on the
predictor's device.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transunet3d.config.io import load_config
from transunet3d.config.schema import ExperimentConfig
from transunet3d.data.labels import LabelScheme, label_scheme
from transunet3d.deploy.export import FORMAT, INPUT, OUTPUT
from transunet3d.deploy.layout import ExportedNetwork, ExportFolder
from transunet3d.deploy.optional import require
from transunet3d.errors import MissingPackage, UserError
from transunet3d.files import read_json, sha256_of
from transunet3d.inference.sliding_window import PatchPredictor
from transunet3d.inference.trained import refuse_repeated_models
from transunet3d.runs.folds import ALL_DATA, Fold, select_folds
from transunet3d.runs.layout import ModelFolder, RunFolder

PURPOSE = "prediction with --backend onnxruntime"


@dataclass
class OnnxModel:
    """An exported network in an ONNX Runtime session, with the config of the run it came from."""

    session: Any
    config: ExperimentConfig
    checkpoint: Path  # the run's checkpoint folder name it was exported from, e.g. epoch_0600
    epoch: int
    folder: ExportedNetwork

    def record(self) -> dict:
        """Which model this is, for the record of an ensemble, as `TrainedModel.record` plus the backend."""
        return {"folder": str(self.folder.path.parent.resolve()), "fold": self.folder.fold,
                "checkpoint": self.checkpoint.name, "epoch": self.epoch, "backend": "onnxruntime",
                "network": self.folder.path.name, "weights": sha256_of(self.folder.path)}

    @property
    def scheme(self) -> LabelScheme:
        """The label scheme its run was trained with: its outputs are the scheme's regions."""
        return label_scheme(self.config.data.labels)

    def patch_predictor(self, device: torch.device) -> PatchPredictor:
        """A batch of patches (N, C, *patch) on `device` -> region probabilities (N, R, *patch) on `device`."""

        def predict(patches: torch.Tensor) -> torch.Tensor:
            array = np.ascontiguousarray(patches.detach().to("cpu", torch.float32).numpy())
            return torch.from_numpy(self.session.run([OUTPUT], {INPUT: array})[0]).to(device)

        return predict


def is_export(path: str | Path) -> bool:
    """Whether `path` is a folder written by `transunet3d export`."""
    return ExportFolder(path).is_export()


def load_exported_models(paths: list[str | Path], fold: str | None = None, which: str | None = None,
                         device: torch.device | str = "cpu", draw: int | None = None,
                         seed: int = 0) -> list[OnnxModel]:
    """Every network that `predict --model EXPORTED ... --fold` (or `--random-folds`) names, in ONNX Runtime
    sessions for `device` (cpu, or cuda[:K] with onnxruntime-gpu).

    Args:
        which: the checkpoint asked for ("latest" or "best"); None: the one exported.

    Raises:
        UserError: a path is not an exported folder, lacks the fold, or was exported from another checkpoint.
        MissingPackage: onnxruntime (or its CUDA provider, for a cuda device) is not installed.
    """
    require("onnxruntime", PURPOSE)
    device = torch.device(device)
    models = []
    for path in paths:
        folder = ExportFolder(path)
        models += [_load(folder, entry, device) for entry in exported_entries(path, fold, which, draw, seed)]
    refuse_repeated_models([model.folder.path for model in models])
    return models


def exported_entries(path: str | Path, fold: str | None = None, which: str | None = None, draw: int | None = None,
                     seed: int = 0) -> list[dict]:
    """The export.json entries of the networks that `--fold` (or `--random-folds`) and `--checkpoint` choose from
    the exported folder at `path`; without ONNX Runtime.

    Raises:
        UserError: not an exported folder, no such fold, or exported from another checkpoint.
    """
    folder = _export_folder(path)
    record = read_record(folder)
    exported = record.get("source", {}).get("checkpoint")
    if which is not None and exported != which:
        raise UserError(f"{path}: exported from the {exported} checkpoints, not the {which} ones; "
                        f"export the run again with --checkpoint {which}")
    entries = {_fold(entry): entry for entry in record["models"]}
    if list(entries) == [None]:
        if fold not in (None, "all") or draw is not None:
            raise UserError(f"{path}: holds one model, not folds; leave out --fold")
        return [entries[None]]
    return [entries[f] for f in select_folds(list(entries), path, fold, draw, seed)]


def read_record(folder: ExportFolder) -> dict:
    """export.json, checked for what prediction reads from it."""
    record = read_json(folder.record)
    models = record.get("models") if isinstance(record, dict) else None
    if not isinstance(models, list) or not models or record.get("format") != FORMAT:
        raise UserError(f"{folder.record}: not an export record of format {FORMAT} with a list of models")
    for entry in models:
        if not isinstance(entry, dict) or not {"name", "fold", "onnx", "config", "checkpoint", "epoch"} <= set(entry):
            raise UserError(f"{folder.record}: a model entry lacks name, fold, onnx, config, checkpoint or epoch")
    return record


def _export_folder(path: str | Path) -> ExportFolder:
    folder = ExportFolder(path)
    if folder.is_export():
        return folder
    if ModelFolder(path).is_model() or RunFolder(path).folds():
        raise UserError(f"{path}: a training run, not an exported folder; predict with it with --backend torch, "
                        "or export it with `transunet3d export`")
    raise UserError(f"{path}: not an exported model folder (no {folder.record.name}; "
                    "make one with `transunet3d export RUN OUT`)")


def _fold(entry: dict) -> Fold | None:
    fold = entry["fold"]
    return fold if fold is None or fold == ALL_DATA else int(fold)


def checked_export(path: str | Path, fold: str | None = None,
                   which: str | None = None) -> list[tuple[Path, int, ExperimentConfig]]:
    """The networks that `fold` and `which` choose from the exported folder at `path` (as `exported_entries`),
    each with the epochs it was trained for and its config, once every one is present and the one export.json
    records and every config reads; without ONNX Runtime (a check before any output is made)."""
    folder = ExportFolder(path)
    networks = []
    for entry in exported_entries(path, fold, which):
        network, config = _checked_files(folder, entry)
        networks.append((network, int(entry["epoch"]), config))
    return networks


def _load(folder: ExportFolder, entry: dict, device: torch.device) -> OnnxModel:
    network, config = _checked_files(folder, entry)
    session = open_session(network, device)
    return OnnxModel(session, config, Path(entry["checkpoint"]), int(entry["epoch"]),
                     ExportedNetwork(network, _fold(entry)))


def _checked_files(folder: ExportFolder, entry: dict) -> tuple[Path, ExperimentConfig]:
    """The network file and the config of one model entry, the network checked against its recorded SHA-256."""
    network = folder.path / entry["onnx"]
    config = load_config(folder.path / entry["config"])
    if not network.is_file():
        raise UserError(f"{network}: exported network is missing")
    if "sha256" in entry and sha256_of(network) != entry["sha256"]:
        raise UserError(f"{network}: not the network {folder.record.name} records (its SHA-256 differs: replaced or "
                        "damaged); export the run again")
    return network, config


def open_session(path: Path, device: torch.device) -> Any:
    """An ONNX Runtime session of the network at `path` on `device`, with as many CPU threads as torch uses."""
    onnxruntime = require("onnxruntime", PURPOSE)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: its notes on graph rewrites are not the user's business
    providers: list = ["CPUExecutionProvider"]
    if device.type == "cuda":
        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            raise MissingPackage("onnxruntime-gpu", f"{PURPOSE} on {device}", "pip install onnxruntime-gpu")
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=providers)
    except Exception as error:  # ONNX Runtime raises its own exception types for damaged files
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{path}: not a network ONNX Runtime can load ({first_line})") from None
