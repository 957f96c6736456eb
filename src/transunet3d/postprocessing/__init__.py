"""Post-processing: the rules that turn region probabilities into labels, and tuning their settings."""

from transunet3d.postprocessing.objective import TuningCase
from transunet3d.postprocessing.rules import PostprocessSettings
from transunet3d.postprocessing.tune import (
    DEFAULT_GRID,
    TuningGrid,
    TuningResult,
    read_postprocessing,
    tune_postprocessing,
    write_postprocessing,
)

__all__ = [
    "DEFAULT_GRID",
    "PostprocessSettings",
    "TuningCase",
    "TuningGrid",
    "TuningResult",
    "read_postprocessing",
    "tune_postprocessing",
    "write_postprocessing",
]
