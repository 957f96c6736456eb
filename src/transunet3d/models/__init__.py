"""The 3D-TransUNet model family (unet, encoder, decoder, both) behind one registry.

The names below are imported from their modules when first used, so that the torch-free modules (`spec`,
`registry`), which the config layer checks every config with, import without torch.
"""

import importlib

_EXPORTS = {
    "ArchitectureSpec": "spec",
    "ModelInfo": "info",
    "ModelOutput": "network",
    "TransUNet3D": "network",
    "create_model": "network",
    "list_models": "registry",
    "model_from_config": "network",
    "model_info": "info",
    "model_spec": "registry",
    "register_model": "registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
