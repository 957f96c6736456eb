"""The 3D-TransUNet model family (unet, encoder, decoder, both) behind one registry."""

from transunet3d.models.info import ModelInfo, model_info
from transunet3d.models.network import ModelOutput, TransUNet3D
from transunet3d.models.registry import create_model, list_models, model_from_config, model_spec, register_model
from transunet3d.models.spec import ArchitectureSpec

__all__ = [
    "ArchitectureSpec",
    "ModelInfo",
    "ModelOutput",
    "TransUNet3D",
    "create_model",
    "list_models",
    "model_from_config",
    "model_info",
    "model_spec",
    "register_model",
]
