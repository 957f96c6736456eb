"""A run on disk: its layout (`runs.layout`), and the job that trains, validates and pools its folds (`runs.job`).

The package imports only the layout, which every stage uses; import `transunet3d.runs.job` for the job.
"""

from transunet3d.runs.layout import EvaluationFiles, ModelFolder, RunFolder, ValidationFolder

__all__ = ["EvaluationFiles", "ModelFolder", "RunFolder", "ValidationFolder"]
