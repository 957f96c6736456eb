"""Transfer masked-autoencoder weights into the ViT of an `encoder` or `both` model."""

from __future__ import annotations

import torch

from transunet3d.errors import ConfigError

# MAE parameter prefix -> 3D-TransUNet parameter prefix. The patch embedding and the MAE decoder stay behind:
# the segmentation ViT embeds CNN bottleneck features, not image patches.
TRANSFERRED = {"blocks.": "vit.blocks.", "norm.": "vit.norm."}


def transfer_encoder(network: torch.nn.Module, mae_weights: dict[str, torch.Tensor]) -> list[str]:
    """Copy the MAE's transformer blocks and final norm into `network.vit`; returns the names it loaded.

    Raises:
        ConfigError: the network has no ViT, a tensor is missing on either side, or a shape differs.
    """
    if getattr(network, "vit", None) is None:
        raise ConfigError("the model has no ViT encoder to initialise; use the encoder or both variant")
    own = network.state_dict()
    mapped = {TRANSFERRED[p] + name[len(p):]: tensor for name, tensor in mae_weights.items()
              for p in TRANSFERRED if name.startswith(p)}
    wanted = {name for name in own if any(name.startswith(t) for t in TRANSFERRED.values())}
    if set(mapped) != wanted:
        missing, extra = sorted(wanted - set(mapped)), sorted(set(mapped) - wanted)
        raise ConfigError(f"pretrained encoder does not match the model: missing {missing[:3]}, extra {extra[:3]} "
                          "(depth differs?)")
    for name, tensor in mapped.items():
        if tensor.shape != own[name].shape:
            raise ConfigError(f"pretrained {name} has shape {tuple(tensor.shape)}, the model needs "
                              f"{tuple(own[name].shape)} (model.width or ViT size differs)")
    with torch.no_grad():
        for name, tensor in mapped.items():
            own[name].copy_(tensor)
    return sorted(mapped)
