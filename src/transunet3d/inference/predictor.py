"""Predict one case with an ensemble of trained models: preprocess as in training, sliding window + TTA, average,
labels, and paste back into the input's full volume."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from transunet3d.config.schema import InferConfig
from transunet3d.data.crop import uncrop
from transunet3d.data.preprocess import preprocess_loaded
from transunet3d.data.validate import LoadedCase
from transunet3d.inference.postprocess import labels_from_probabilities, min_component_voxels
from transunet3d.inference.sliding_window import PatchPredictor, sliding_window_probabilities
from transunet3d.inference.trained import TrainedModel
from transunet3d.inference.tta import tta_views
from transunet3d.memory import keep_freed_memory
from transunet3d.models.precision import autocast, resolve_precision


@dataclass
class CasePrediction:
    """Labels (uint8) and, if asked for, region probabilities (R, X, Y, Z) float32, both on the input's grid."""

    case_id: str
    labels: np.ndarray
    probabilities: np.ndarray | None = None


class Predictor:
    """Averages the region probabilities of `models` over windows, TTA views and models."""

    def __init__(self, models: list[TrainedModel], options: InferConfig, device: torch.device | str = "cpu"):
        if not models:
            raise ValueError("an ensemble needs at least one model")
        self.device = torch.device(device)
        self.models = models
        for model in models:  # channels-last: the fastest layout for 3D convolutions on CPUs and GPUs
            model.network.to(self.device, memory_format=torch.channels_last_3d)
        self.options = options
        self.views = tta_views(options.tta)
        if self.device.type == "cpu":
            keep_freed_memory()

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """Mean region probabilities (R, X, Y, Z) of every model for a preprocessed image (C, X, Y, Z)."""
        tensor = torch.from_numpy(np.ascontiguousarray(image))
        total = None
        for model in self.models:
            probabilities = sliding_window_probabilities(
                _patch_predictor(model, self.device), tensor, tuple(model.config.train.patch_size),
                step=self.options.step, views=self.views, batch_windows=self.options.batch_windows,
                sigma_scale=self.options.gaussian_sigma_scale, device=self.device).cpu()
            total = probabilities if total is None else total.add_(probabilities)
        return total.div_(len(self.models)).numpy()

    def predict(self, case: LoadedCase, keep_probabilities: bool = False) -> CasePrediction:
        """Labels for a loaded case (its segmentation, if any, is ignored), on the case's full grid."""
        image, _, properties = preprocess_loaded(replace(case, seg=None), foreground_samples=0)
        box = tuple(tuple(bounds) for bounds in properties["crop_box"])
        probabilities = self.probabilities(image)
        min_voxels = min_component_voxels(self.options.min_lesion_mm3, case.geometry.zooms[:3])
        labels = labels_from_probabilities(probabilities, self.options.threshold, min_voxels,
                                           self.options.require_core)
        full_shape = tuple(case.geometry.shape)
        kept = uncrop(probabilities, box, full_shape) if keep_probabilities else None
        return CasePrediction(case.case_id, uncrop(labels, box, full_shape), kept)


def _patch_predictor(model: TrainedModel, device: torch.device) -> PatchPredictor:
    """A batch of patches -> region probabilities, in inference mode and the run's precision."""
    precision = resolve_precision(model.config.train.precision, device)

    def predict(patches: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), autocast(precision, device):
            output = model.network(patches.contiguous(memory_format=torch.channels_last_3d))
        return torch.sigmoid(output.logits.float())

    return predict
