"""Model size: parameters and forward FLOPs (counted by torch.utils.flop_counter on the meta device)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from transunet3d.models.network import TransUNet3D
from transunet3d.models.registry import model_spec


@dataclass(frozen=True)
class ModelInfo:
    name: str
    parameters: int
    gflops: float  # one forward pass of one patch, inference mode
    patch_size: tuple[int, int, int]


def model_info(name: str, width: str = "full", patch: int = 128) -> ModelInfo:
    """Parameters and forward GFLOPs of one 4-channel patch of `patch`^3, without allocating any weights."""
    spec = model_spec(name, width, patch_size=(patch,) * 3)
    with torch.device("meta"):
        model = TransUNet3D(spec).eval()
        x = torch.empty(1, spec.in_channels, patch, patch, patch)
    counter = FlopCounterMode(display=False)
    with counter:  # (no torch.no_grad: the flop counter tracks modules through autograd hooks)
        model(x)
    return ModelInfo(name, sum(p.numel() for p in model.parameters()), counter.get_total_flops() / 1e9,
                     spec.patch_size)
