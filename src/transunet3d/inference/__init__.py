"""Inference: Gaussian sliding window, TTA views batched with the windows, model ensembles, BraTS submissions."""

from transunet3d.inference.cases import PredictReport, predict_folder
from transunet3d.inference.gaussian import gaussian_importance
from transunet3d.inference.predictor import CasePrediction, Predictor
from transunet3d.inference.sliding_window import sliding_window_probabilities
from transunet3d.inference.trained import TrainedModel, fold_folders, load_models, load_trained_model
from transunet3d.inference.tta import View, tta_views
from transunet3d.inference.windows import window_grid, window_starts

__all__ = [
    "CasePrediction",
    "PredictReport",
    "Predictor",
    "TrainedModel",
    "View",
    "fold_folders",
    "gaussian_importance",
    "load_models",
    "load_trained_model",
    "predict_folder",
    "sliding_window_probabilities",
    "tta_views",
    "window_grid",
    "window_starts",
]
