"""A run on disk: its layout (`runs.layout`, the only place that names a run's files) and its folds."""

from transunet3d.runs.layout import EvaluationFiles, ModelFolder, RunFolder, ValidationFolder

__all__ = ["EvaluationFiles", "ModelFolder", "RunFolder", "ValidationFolder"]
