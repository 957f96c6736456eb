"""Architecture description shared by every variant: which parts a network has and how large they are."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class ArchitectureSpec:
    """One 3D-TransUNet: an nnU-Net-style CNN, optionally a ViT on its bottleneck and/or a query decoder.

    Full-size defaults are the official 3D-TransUNet BraTS configuration.
    """

    in_channels: int = 4
    num_regions: int = 3  # output channels: the regions of the label scheme (`registry.spec_from_config`)
    features: tuple[int, ...] = (32, 64, 128, 256, 320, 320)  # per resolution, 1 down to 1/32 (bottleneck)
    patch_size: tuple[int, int, int] = (128, 128, 128)  # sets the ViT position-embedding grid
    deep_supervision: bool = True
    use_vit: bool = False
    vit_dim: int = 768
    vit_depth: int = 12
    vit_heads: int = 12
    vit_mlp: int = 3072
    vit_dropout: float = 0.1
    use_query_decoder: bool = False
    decoder_dim: int = 192
    decoder_heads: int = 8
    decoder_ffn: int = 1536
    decoder_layers: int = 3
    num_queries: int = 20
    masked_attention: bool = False  # the paper dropped it for training stability
    decoder_attention_fp32: bool = True  # attention of the query decoder in fp32 under autocast (official)

    @property
    def downsamplings(self) -> int:
        return len(self.features) - 1

    @property
    def patch_multiple(self) -> int:
        """Every side of a patch must be a multiple of this: the encoder halves it `downsamplings` times."""
        return 2**self.downsamplings

    def patch_problem(self, patch_size: tuple[int, ...]) -> str | None:
        """Why the network cannot take patches of `patch_size`, or None when it can: every side a multiple of the
        strides' product, and a bottleneck of more than one voxel, which instance normalisation needs (torch's
        refuses one voxel, on CUDA and in bf16; a one-voxel bottleneck would carry nothing of the image)."""
        if not all(side > 0 and side % self.patch_multiple == 0 for side in patch_size):
            return (f"every side must be a positive multiple of {self.patch_multiple} for this model, not "
                    f"{list(patch_size)}")
        if all(side == self.patch_multiple for side in patch_size):
            return (f"{list(patch_size)} leaves the bottleneck one voxel, which instance normalisation cannot "
                    f"normalise; at least one side of {2 * self.patch_multiple}")
        return None

    @property
    def bottleneck_grid(self) -> tuple[int, int, int]:
        return tuple(p // 2**self.downsamplings for p in self.patch_size)

    def with_overrides(self, **overrides) -> ArchitectureSpec:
        return replace(self, **overrides)


# The same code at toy size, for CPU tests and the demo.
TINY = {
    "features": (8, 16, 24, 32, 48, 48),
    "patch_size": (64, 64, 64),
    "vit_dim": 48,
    "vit_depth": 2,
    "vit_heads": 4,
    "vit_mlp": 96,
    "decoder_dim": 48,
    "decoder_heads": 4,
    "decoder_ffn": 96,
    "num_queries": 8,
}


def group_count(channels: int, preferred: int = 32) -> int:
    """GroupNorm groups: the preferred 32 where they divide the channels, else the largest common divisor."""
    return preferred if channels % preferred == 0 else math.gcd(channels, preferred)


TOKENIZERS = ("slice2d", "cube3d")  # the MAE's: 2D columns through the crop (the paper's), or 3D cubes


def token_shape(tokenizer: str, crop: tuple[int, int, int], side: int = 16) -> tuple[int, int, int]:
    """The voxels (x, y, z) one token covers: side x side x whole depth, or a cube."""
    if tokenizer not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {tokenizer!r}; choose one of {', '.join(TOKENIZERS)}")
    shape = (side, side, crop[2]) if tokenizer == "slice2d" else (side, side, side)
    if any(c % t for c, t in zip(crop, shape)):
        raise ValueError(f"crop {tuple(crop)} is not a whole number of {shape} tokens")
    return shape
