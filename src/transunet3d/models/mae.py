"""Masked autoencoder for pre-training the ViT encoder of the 3D-TransUNet (He et al. 2022, as the paper adapts it).

A crop of the four modalities is cut into tokens, 75% of them are hidden, the encoder (the same transformer blocks
as the `encoder` model's ViT) sees only the visible ones, and a light decoder predicts the pixels of the hidden
ones. Tokenisers:

- `slice2d` (the paper): 2D patches over the axial plane with the z axis folded into channels, so a token is a
  16x16 column through the whole crop (a 128^3 crop gives an 8x8 grid of 64 tokens);
- `cube3d`: 16^3 cubes (512 tokens for a 128^3 crop).

Both are one linear embedding of a token's pixels (a convolution with kernel = stride is exactly that).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from transunet3d.models.spec import ArchitectureSpec, token_shape
from transunet3d.models.vit import Block

NORMALIZATION_EPS = 1e-6


def patchify(images: torch.Tensor, token: tuple[int, int, int]) -> torch.Tensor:
    """(B, C, X, Y, Z) -> (B, tokens, C * token voxels); tokens in C order of their grid position."""
    b, c, x, y, z = images.shape
    tx, ty, tz = token
    grid = images.reshape(b, c, x // tx, tx, y // ty, ty, z // tz, tz)
    return grid.permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(b, -1, c * tx * ty * tz)


def unpatchify(tokens: torch.Tensor, token: tuple[int, int, int], crop: tuple[int, int, int],
               channels: int) -> torch.Tensor:
    """Inverse of `patchify`."""
    b = tokens.shape[0]
    (tx, ty, tz), (x, y, z) = token, crop
    grid = tokens.reshape(b, x // tx, y // ty, z // tz, channels, tx, ty, tz)
    return grid.permute(0, 4, 1, 5, 2, 6, 3, 7).reshape(b, channels, x, y, z)


def token_statistics(pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and standard deviation (with MAE's epsilon) of each token's pixels (B, N, P), kept as (B, N, 1)."""
    variance, mean = torch.var_mean(pixels, dim=-1, keepdim=True, correction=0)
    return mean, torch.sqrt(variance + NORMALIZATION_EPS)


def normalize_per_token(pixels: torch.Tensor) -> torch.Tensor:
    """Each token's pixels minus their mean, divided by their standard deviation (MAE's normalised targets)."""
    mean, std = token_statistics(pixels)
    return (pixels - mean) / std


def random_masking(noise: torch.Tensor, ratio: float) -> tuple[torch.Tensor, torch.Tensor]:
    """From uniform noise (B, N): indices of the kept tokens (B, N_keep), and the mask (B, N), True = hidden.

    The tokens with the smallest noise are kept: a per-sample random shuffle, reproducible from the noise.
    """
    tokens = noise.shape[1]
    keep = int(tokens * (1 - ratio))
    if keep < 1:
        raise ValueError(f"mask ratio {ratio} hides all {tokens} tokens")
    kept = torch.argsort(noise, dim=1)[:, :keep]
    mask = torch.ones_like(noise, dtype=torch.bool).scatter_(1, kept, False)
    return kept, mask


def masked_token_loss(predictions: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error per token, averaged over the hidden tokens only."""
    per_token = (predictions.float() - targets.float()).pow(2).mean(dim=-1)
    return (per_token * mask).sum() / mask.sum()


@dataclass
class MaskedPrediction:
    """Pixel predictions and normalised targets (B, N, P) for all tokens, and the mask (B, N), True = hidden."""

    predictions: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor

    def loss(self) -> torch.Tensor:
        return masked_token_loss(self.predictions, self.targets, self.mask)


class MaskedAutoencoder(nn.Module):
    """Encoder blocks named as the `encoder` model's ViT (`blocks.*`, `norm.*`) so they transfer one to one."""

    def __init__(self, spec: ArchitectureSpec, crop: tuple[int, int, int], tokenizer: str = "slice2d",
                 mask_ratio: float = 0.75, decoder_dim: int = 512, decoder_depth: int = 1, decoder_heads: int = 16,
                 token_side: int = 16):
        super().__init__()
        self.crop, self.mask_ratio, self.channels = tuple(crop), mask_ratio, spec.in_channels
        self.token = token_shape(tokenizer, self.crop, token_side)
        tokens = math.prod(c // t for c, t in zip(self.crop, self.token))
        pixels = spec.in_channels * math.prod(self.token)
        self.embed = nn.Linear(pixels, spec.vit_dim)
        self.position = nn.Parameter(torch.zeros(1, tokens, spec.vit_dim))
        self.blocks = nn.ModuleList(Block(spec.vit_dim, spec.vit_heads, spec.vit_mlp, 0.0)
                                    for _ in range(spec.vit_depth))
        self.norm = nn.LayerNorm(spec.vit_dim, eps=1e-6)
        self.decoder_embed = nn.Linear(spec.vit_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder_position = nn.Parameter(torch.zeros(1, tokens, decoder_dim))
        self.decoder_blocks = nn.ModuleList(Block(decoder_dim, decoder_heads, 4 * decoder_dim, 0.0)
                                            for _ in range(decoder_depth))
        self.decoder_norm = nn.LayerNorm(decoder_dim, eps=1e-6)
        self.head = nn.Linear(decoder_dim, pixels)
        for parameter in (self.position, self.mask_token, self.decoder_position):
            nn.init.trunc_normal_(parameter, std=0.02)

    @property
    def num_tokens(self) -> int:
        return self.position.shape[1]

    def forward(self, images: torch.Tensor, noise: torch.Tensor) -> MaskedPrediction:
        """Predict the pixels of the tokens that `noise` (B, N, uniform) hides; see `random_masking`."""
        pixels = patchify(images, self.token)
        kept, mask = random_masking(noise, self.mask_ratio)
        tokens = self.embed(pixels) + self.position
        visible = torch.gather(tokens, 1, kept[..., None].expand(-1, -1, tokens.shape[-1]))
        for block in self.blocks:
            visible = block(visible)
        encoded = self.decoder_embed(self.norm(visible))
        full = self.mask_token.expand(encoded.shape[0], self.num_tokens, -1).to(encoded.dtype)
        full = full.scatter(1, kept[..., None].expand(-1, -1, encoded.shape[-1]), encoded) + self.decoder_position
        for block in self.decoder_blocks:
            full = block(full)
        predictions = self.head(self.decoder_norm(full))
        return MaskedPrediction(predictions, normalize_per_token(pixels.float()), mask)

    def reconstruct(self, prediction: MaskedPrediction, images: torch.Tensor) -> torch.Tensor:
        """Predicted pixels in image space (the normalisation undone with each token's own statistics)."""
        mean, std = token_statistics(patchify(images.float(), self.token))
        return unpatchify(prediction.predictions.float() * std + mean, self.token, self.crop, self.channels)

    def masked_image(self, mask: torch.Tensor) -> torch.Tensor:
        """(B, 1, X, Y, Z) with 1 where a token is hidden, for figures."""
        pixels = math.prod(self.token)
        return unpatchify(mask[..., None].float().expand(-1, -1, pixels), self.token, self.crop, 1)
