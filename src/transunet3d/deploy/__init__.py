"""Deployment: a trained run as ONNX networks that predict without the training stack, and as a BraTS challenge
container whose entry point is `transunet3d challenge-entry`."""

from transunet3d.deploy.challenge import EntrySettings, check_outputs, read_parameters, run_challenge
from transunet3d.deploy.export import export_run
from transunet3d.deploy.layout import BuildContext, ExportFolder
from transunet3d.deploy.onnx_backend import OnnxModel, is_export, load_exported_models

__all__ = [
    "BuildContext",
    "EntrySettings",
    "ExportFolder",
    "OnnxModel",
    "check_outputs",
    "export_run",
    "is_export",
    "load_exported_models",
    "read_parameters",
    "run_challenge",
]
