"""Experiment configuration: dataclass sections, named presets, YAML and `--set` overrides."""

from transunet3d.config.io import build_config, config_to_dict, load_config, parse_override, save_config
from transunet3d.config.presets import PRESETS
from transunet3d.config.schema import (
    MODALITIES,
    AugmentConfig,
    DataConfig,
    ExperimentConfig,
    InferConfig,
    ModelConfig,
    PretrainConfig,
    TrainConfig,
)

__all__ = [
    "MODALITIES",
    "PRESETS",
    "AugmentConfig",
    "DataConfig",
    "ExperimentConfig",
    "InferConfig",
    "ModelConfig",
    "PretrainConfig",
    "TrainConfig",
    "build_config",
    "config_to_dict",
    "load_config",
    "parse_override",
    "save_config",
]
