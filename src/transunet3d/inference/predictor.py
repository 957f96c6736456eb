"""Predict one case with an ensemble of trained models: preprocess as in training, sliding window + TTA, average,
labels, and paste back into the input's full volume."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from transunet3d.config.schema import InferConfig
from transunet3d.data.crop import uncrop
from transunet3d.data.nifti import Geometry
from transunet3d.data.preprocess import preprocess_loaded
from transunet3d.data.validate import LoadedCase
from transunet3d.inference.sliding_window import PatchPredictor, sliding_window_probabilities
from transunet3d.inference.trained import TrainedModel
from transunet3d.inference.tta import tta_views
from transunet3d.models.precision import autocast, resolve_precision
from transunet3d.postprocessing.rules import PostprocessSettings


@dataclass
class CasePrediction:
    """Labels (uint8) and, if asked for, region probabilities (R, X, Y, Z) float32, both on the input's grid."""

    case_id: str
    labels: np.ndarray
    probabilities: np.ndarray | None = None


class Predictor:
    """Averages the region probabilities of `models` over windows, TTA views and models."""

    def __init__(self, models: list[TrainedModel], options: InferConfig, device: torch.device | str = "cpu",
                 postprocessing: PostprocessSettings | None = None):
        """`postprocessing`: how probabilities become labels (e.g. tuned on a run's cross-validation); by default
        the uniform threshold, minimum lesion size and core rule of `options`."""
        if not models:
            raise ValueError("an ensemble needs at least one model")
        self.device = torch.device(device)
        self.models = models
        for model in models:  # channels-last: the fastest layout for 3D convolutions on CPUs and GPUs
            model.network.to(self.device, memory_format=torch.channels_last_3d)
        self.options = options
        self.postprocessing = postprocessing or PostprocessSettings.uniform(
            options.threshold, options.min_lesion_mm3, options.require_core)
        self.views = tta_views(options.tta)

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
        return self.predict_preprocessed(case.case_id, image, properties, keep_probabilities)

    def predict_preprocessed(self, case_id: str, image: np.ndarray, properties: dict,
                             keep_probabilities: bool = False) -> CasePrediction:
        """Labels for a case as preprocessing left it (image and properties, as in the training cache), on the
        full grid of its input."""
        geometry = Geometry.from_dict(properties["geometry"])
        box = tuple(tuple(bounds) for bounds in properties["crop_box"])
        probabilities = self.probabilities(image)
        labels = self.postprocessing.labels(probabilities, geometry.zooms[:3])
        full_shape = tuple(geometry.shape)
        kept = uncrop(probabilities, box, full_shape) if keep_probabilities else None
        return CasePrediction(case_id, uncrop(labels, box, full_shape), kept)


def _patch_predictor(model: TrainedModel, device: torch.device) -> PatchPredictor:
    """A batch of patches -> region probabilities, in inference mode and the run's precision."""
    precision = resolve_precision(model.config.loop.precision, device)

    def predict(patches: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), autocast(precision, device):
            output = model.network(patches.contiguous(memory_format=torch.channels_last_3d))
        return torch.sigmoid(output.logits.float())

    return predict
