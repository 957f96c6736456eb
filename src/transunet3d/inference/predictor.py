"""Predict one case with an ensemble of trained models: preprocess as in training (canonical axis order, crop,
z-score, each model's target spacing), sliding window + TTA, probabilities back to the input's grid, average,
labels, and paste back into the input's full volume in its own axis order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from transunet3d.config.io import rotation_problem
from transunet3d.config.schema import MODALITIES, InferConfig
from transunet3d.data.crop import uncrop
from transunet3d.data.orientation import AxisOrder
from transunet3d.data.preprocess import preprocess_loaded
from transunet3d.data.resample import anisotropic_axis, keep_vanished_lesions, resample_probabilities
from transunet3d.data.validate import LoadedCase
from transunet3d.errors import UserError
from transunet3d.inference.sliding_window import PatchPredictor, sliding_window_probabilities
from transunet3d.inference.trained import TrainedModel, ensemble_scheme
from transunet3d.inference.tta import tta_views
from transunet3d.inference.window_batch import WindowBatch, choose_window_batch, network_layout
from transunet3d.models.precision import autocast, resolve_precision
from transunet3d.models.registry import spec_from_config
from transunet3d.postprocessing.rules import PostprocessSettings


@dataclass
class CasePrediction:
    """Labels (uint8) and, if asked for, region probabilities (R, X, Y, Z) float32 of the `regions` named, both on
    the input's grid."""

    case_id: str
    labels: np.ndarray
    probabilities: np.ndarray | None = None
    regions: tuple[str, ...] = ()


def _quiet(_: str) -> None:
    pass


class Predictor:
    """Averages the region probabilities of `models` (all of one label scheme) over windows, TTA views and
    models."""

    def __init__(self, models: list[TrainedModel], options: InferConfig, device: torch.device | str = "cpu",
                 postprocessing: PostprocessSettings | None = None):
        """`postprocessing`: how probabilities become labels (e.g. tuned on a run's cross-validation), for the
        models' label scheme; by default the uniform threshold, minimum lesion size and core rule of `options`.

        Raises:
            UserError: the models were trained with different label schemes, `postprocessing` is for another, or
                `options.tta` turns the axial plane for a model that cannot take it (`config.io.rotation_problem`).
        """
        if not models:
            raise ValueError("an ensemble needs at least one model")
        self.device = torch.device(device)
        self.models = models
        self.scheme = ensemble_scheme(models)
        for model in models:
            if isinstance(model, TrainedModel):
                model.network.to(self.device, memory_format=network_layout(self.device, _precision(model, self.device)))
        self.options = options
        self.postprocessing = postprocessing or PostprocessSettings.uniform(
            options.threshold, options.min_lesion_mm3, options.require_core, self.scheme)
        if self.postprocessing.scheme != self.scheme:
            raise UserError(f"post-processing settings for the labels {self.postprocessing.scheme.name} cannot "
                            f"apply to models trained with {self.scheme.name}")
        self.views = tta_views(options.tta)
        if any(view.rotates for view in self.views):
            _refuse_rotations(models)
        self.window_batches = [self._window_batch(model) for model in models]
        self.groups = _grouped(models)
        self.on_stage: Callable[[str], None] = _quiet  # told the step each case is at, for progress displays

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """Mean region probabilities (R, X, Y, Z) of every model for a preprocessed image (C, X, Y, Z), on its
        grid."""
        return self._summed(self.models, image).div_(len(self.models)).numpy()

    def predict(self, case: LoadedCase, keep_probabilities: bool = False) -> CasePrediction:
        """Labels for a loaded case (its segmentation, if any, is ignored), on the case's full grid.

        The case is brought to each model's grid (canonical axis order, its target spacing) as preprocessing
        brings training cases; the models of one target spacing share one resampled image, and their summed
        probabilities are resampled back to the case's cropped grid before all are averaged.
        """
        _refuse_nonfinite(case.image, f"{case.case_id}: image")  # z-scoring would spread them over the whole image
        total, properties = None, None
        for target, models in self.groups.items():
            self.on_stage("preprocess")
            done = preprocess_loaded(replace(case, seg=None), target, foreground_samples=0)
            properties = done.properties
            summed = self._original_grid(self._summed(models, done.image), properties, len(models))
            total = summed if total is None else total.add_(summed)
        return self._finish(case.case_id, total.div_(len(self.models)), properties, keep_probabilities)

    def predict_preprocessed(self, case_id: str, image: np.ndarray, properties: dict,
                             keep_probabilities: bool = False) -> CasePrediction:
        """Labels for a case as preprocessing left it (image and properties, as in the training cache), on the
        full grid of its input. Every model must have been trained at the image's target spacing."""
        cached = tuple(properties["target_spacing"])
        wrong = [model.folder.path for model in self.models if _target(model) not in (None, cached)]
        if wrong:
            raise UserError(f"{wrong[0]}: trained at another target spacing than the cache's {list(cached)}")
        summed = self._original_grid(self._summed(self.models, image), properties, len(self.models))
        return self._finish(case_id, summed.div_(len(self.models)), properties, keep_probabilities)

    def _summed(self, models: list[TrainedModel], image: np.ndarray) -> torch.Tensor:
        """The sum of the region probabilities (R, X, Y, Z) of `models` over a preprocessed image, on the CPU."""
        self.on_stage("sliding window")
        tensor = torch.from_numpy(np.ascontiguousarray(network_input(image)))
        total = None
        for model in models:
            probabilities = sliding_window_probabilities(
                _patch_predictor(model, self.device), tensor, tuple(model.config.train.patch_size),
                step=self.options.step, views=self.views,
                batch_windows=self.window_batches[self.models.index(model)].size,
                sigma_scale=self.options.gaussian_sigma_scale, device=self.device,
                weighting=self.options.gaussian_weighting).cpu()
            total = probabilities if total is None else total.add_(probabilities)
        return total

    def _window_batch(self, model: TrainedModel) -> WindowBatch:
        """The inputs per forward pass for `model`: the options' number, else sized from memory and the network
        (`inference.window_batch`)."""
        patch = tuple(model.config.train.patch_size)
        precision = _precision(model, self.device)
        budget = None if self.options.max_memory_gb is None else int(self.options.max_memory_gb * 2**30)
        chosen = choose_window_batch(spec_from_config(model.config), patch, 4 if precision == "fp32" else 2,
                                     self.device, budget)
        if self.options.batch_windows is not None:
            return WindowBatch(self.options.batch_windows, chosen.window_bytes, chosen.budget_bytes,
                               chosen.window_bytes * self.options.batch_windows > chosen.budget_bytes)
        return chosen

    def _original_grid(self, probabilities: torch.Tensor, properties: dict, models: int) -> torch.Tensor:
        """The summed probabilities of `models` models on the training grid (on the CPU) resampled to the case's
        cropped original grid (on the predictor's device, in slabs; an axis more than 3x coarser in either grid by
        nearest neighbour, as preprocessing resampled the image), on the CPU; themselves when the grids are the
        same. A lesion above the post-processing's threshold on the training grid keeps its peak on the case's
        (`keep_vanished_lesions`), as a reference label map resampled between the grids keeps it."""
        shape = tuple(properties["cropped_shape"])
        if tuple(probabilities.shape[1:]) == shape:
            return probabilities
        self.on_stage("resample back")
        axis = anisotropic_axis(properties["target_spacing"], properties["original_spacing"])
        resampled = resample_probabilities(probabilities, shape, self.device, nearest_axis=axis).cpu()
        keep_vanished_lesions(probabilities.numpy(), resampled.numpy(),
                              [threshold * models for threshold in self.postprocessing.thresholds])
        return resampled

    def _finish(self, case_id: str, probabilities: torch.Tensor, properties: dict,
                keep_probabilities: bool) -> CasePrediction:
        """Labels from mean probabilities on the cropped canonical grid (minimum lesion sizes with its voxel
        size), pasted into the canonical volume and put back in the input's axis order."""
        self.on_stage("post-process")
        probabilities = probabilities.numpy()
        order = AxisOrder.from_json(properties)
        box = tuple(tuple(bounds) for bounds in properties["crop_box"])
        full_shape = tuple(properties["canonical_shape"])
        labels = self.postprocessing.labels(probabilities, properties["original_spacing"])
        kept = order.undo(uncrop(probabilities, box, full_shape)) if keep_probabilities else None
        return CasePrediction(case_id, order.undo(uncrop(labels, box, full_shape)), kept, self.scheme.region_names)


def network_input(image: np.ndarray) -> np.ndarray:
    """`image` as the networks take it: a preprocessed (z-scored) float32 array (C, X, Y, Z) of the four modalities.

    Raises:
        ValueError: another shape, a non-float dtype (raw intensities: `Predictor.predict` preprocesses a case), or
            a NaN or infinite value, which the windows would spread as NaN probabilities over the whole volume
            (thresholded to background: an empty label map without a word).
    """
    image = np.asarray(image)
    if image.ndim != 4 or image.shape[0] != len(MODALITIES):
        raise ValueError(f"image: a preprocessed array (C={len(MODALITIES)}, X, Y, Z) of {', '.join(MODALITIES)}, "
                         f"not one of shape {image.shape}")
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"image: a preprocessed (z-scored) float array, not {image.dtype}; "
                         "Predictor.predict preprocesses a loaded case")
    _refuse_nonfinite(image, "image")
    return image.astype(np.float32, copy=False)


def _refuse_nonfinite(image: np.ndarray, name: str) -> None:
    finite = np.isfinite(image)
    if not finite.all():
        raise ValueError(f"{name}: {finite.size - int(finite.sum())} NaN or infinite value(s); they would turn every "
                         "probability of the windows they fall in into NaN")


def _refuse_rotations(models: list[TrainedModel]) -> None:
    """Raise for a model that quarter turns in the axial plane cannot serve (`config.io.rotation_problem`)."""
    for model in models:
        problem = rotation_problem(tuple(model.config.train.patch_size), _target(model))
        if problem is not None:
            raise UserError(f"{model.folder.path}: flip+rot turns the axial plane by quarter turns, but {problem}; "
                            "use --tta flip")


def _target(model: TrainedModel) -> tuple[float, float, float] | None:
    """The target spacing a model was trained at; None for a run from before target spacings (native grid)."""
    spacing = model.config.data.target_spacing
    return None if spacing is None else tuple(spacing)


def _grouped(models: list[TrainedModel]) -> dict[tuple[float, float, float] | None, list[TrainedModel]]:
    """The models by the target spacing they were trained at, in order of first appearance.

    Raises:
        UserError: runs from before target spacings are mixed with later ones: their grids (the file's axis order
            against the canonical one) cannot be averaged voxel by voxel.
    """
    groups: dict = {}
    for model in models:
        groups.setdefault(_target(model), []).append(model)
    if None in groups and len(groups) > 1:
        raise UserError(f"{groups[None][0].folder.path}: trained before target spacings (on each case's own grid); "
                        "predict with it apart from the models trained at a target spacing")
    return groups


def _precision(model: TrainedModel, device: torch.device) -> str:
    """The precision `model` runs in on `device`: its run's; an exported network runs in fp32."""
    return resolve_precision(model.config.loop.precision, device) if isinstance(model, TrainedModel) else "fp32"


def _patch_predictor(model: TrainedModel, device: torch.device) -> PatchPredictor:
    """A batch of patches -> region probabilities, in inference mode and the run's precision.

    A model of another backend than torch (an exported network run by ONNX Runtime: `deploy.onnx_backend`) has
    the same config, folder and record as a `TrainedModel`, and makes its own patch predictor.
    """
    if not isinstance(model, TrainedModel):
        return model.patch_predictor(device)
    precision = resolve_precision(model.config.loop.precision, device)
    layout = network_layout(device, precision)

    def predict(patches: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), autocast(precision, device):
            output = model.network(patches.contiguous(memory_format=layout))
        return torch.sigmoid(output.logits.float())

    return predict
