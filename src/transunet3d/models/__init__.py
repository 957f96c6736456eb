"""The 3D-TransUNet model family (unet, encoder, decoder, both) behind one registry.

The names below are imported from their modules when first used, so that the torch-free modules (`spec`,
`registry`), which the config layer checks every config with, import without torch.
"""

from transunet3d.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
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
})
