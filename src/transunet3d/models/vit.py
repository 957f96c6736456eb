"""The ViT that encodes the CNN bottleneck ("encoder-only" 3D-TransUNet)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from transunet3d.models.conv import Conv3d


class SelfAttention(nn.Module):
    """Multi-head self-attention through scaled_dot_product_attention."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        q, k, v = self.qkv(x).view(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(x.transpose(1, 2).reshape(batch, tokens, dim))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + MLP(LN(x)) with GELU."""

    def __init__(self, dim: int, heads: int, mlp: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp, dim),
                                 nn.Dropout(dropout))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x)))
        return x + self.mlp(self.norm2(x))


class BottleneckViT(nn.Module):
    """1x1x1 conv to tokens, learned position embedding per bottleneck voxel, ViT blocks, LN, 1x1x1 conv back."""

    def __init__(self, channels: int, dim: int, depth: int, heads: int, mlp: int, dropout: float,
                 grid: tuple[int, int, int]):
        super().__init__()
        self.grid = grid
        self.embed = Conv3d(channels, dim, kernel_size=1)
        self.position = nn.Parameter(torch.zeros(1, dim, *grid))
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.project = Conv3d(dim, channels, kernel_size=1)
        nn.init.trunc_normal_(self.position, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x)
        position = self.position
        if tuple(tokens.shape[2:]) != self.grid:  # another patch size than the one trained for
            position = F.interpolate(position, size=tokens.shape[2:], mode="trilinear", align_corners=False)
        shape = tokens.shape
        tokens = self.dropout((tokens + position).flatten(2).transpose(1, 2))
        for block in self.blocks:
            tokens = block(tokens)
        tokens = self.norm(tokens).transpose(1, 2).reshape(shape)
        return self.project(tokens)
