"""The transformer decoder of 3D-TransUNet ("decoder-only"): learnable queries refine masks over CNN features.

Mask2Former-style: the memory is the CNN decoder's features at 1/8, 1/4 and 1/2 resolution, each projected to the
decoder width, with a 3D sine position encoding and a level embedding. Layer t cross-attends to level t mod 3
(coarse to fine), then self-attends, then applies an FFN. Before the first layer and after each layer, every query
predicts class logits (regions + no-object) and a mask: its embedding dotted with the full-resolution features.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from transunet3d.models.conv import Conv3d
from transunet3d.models.spec import group_count


class Attention(nn.Module):
    """Multi-head attention with separate query/key/value projections, through scaled_dot_product_attention.

    `float32`: projections and attention run in fp32 even under autocast, as the official code's
    `is_mhsa_float32`; the paper reports unstable training of the query decoder in reduced precision.
    """

    def __init__(self, dim: int, heads: int, float32: bool = False):
        super().__init__()
        self.heads, self.float32 = heads, float32
        self.q, self.k, self.v, self.out = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, query, key, value, mask: torch.Tensor | None = None) -> torch.Tensor:
        if not (self.float32 and _autocasting(query.device)):
            return self._attend(query, key, value, mask)
        with torch.autocast(query.device.type, enabled=False):
            return self._attend(query.float(), key.float(), value.float(), mask)

    def _attend(self, query, key, value, mask: torch.Tensor | None) -> torch.Tensor:
        batch, length, dim = query.shape

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, -1, self.heads, dim // self.heads).transpose(1, 2)

        x = F.scaled_dot_product_attention(split(self.q(query)), split(self.k(key)), split(self.v(value)),
                                           attn_mask=mask)
        return self.out(x.transpose(1, 2).reshape(batch, length, dim))


def _autocasting(device: torch.device) -> bool:
    """Whether autocast is on for `device` (devices without autocast, such as "meta", never are)."""
    return torch.amp.is_autocast_available(device.type) and torch.is_autocast_enabled(device.type)


class DecoderLayer(nn.Module):
    """Cross-attention -> self-attention -> FFN, each with a residual and post-norm (as Mask2Former)."""

    def __init__(self, dim: int, heads: int, ffn: int, attention_fp32: bool = False):
        super().__init__()
        self.cross, self.self_attn = Attention(dim, heads, attention_fp32), Attention(dim, heads, attention_fp32)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.ReLU(inplace=True), nn.Linear(ffn, dim))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(3))

    def forward(self, query, query_pos, memory, memory_pos, mask=None) -> torch.Tensor:
        query = self.norms[0](query + self.cross(query + query_pos, memory + memory_pos, memory, mask))
        query = self.norms[1](query + self.self_attn(query + query_pos, query + query_pos, query))
        return self.norms[2](query + self.ffn(query))


def sine_position_encoding(shape: tuple[int, int, int], dim: int, device, dtype) -> torch.Tensor:
    """(D*H*W, dim) encoding: per axis dim/3 channels of interleaved sin/cos of the normalised coordinate."""
    per_axis = dim // 3
    frequencies = 10000 ** (2 * (torch.arange(per_axis, device=device) // 2) / per_axis)
    axes = []
    for axis, size in enumerate(shape):
        coordinate = (torch.arange(1, size + 1, device=device, dtype=torch.float32) / (size + 1e-6)) * 2 * math.pi
        angles = coordinate[:, None] / frequencies
        encoded = torch.stack([angles[:, 0::2].sin(), angles[:, 1::2].cos()], dim=2).flatten(1)
        view = [1, 1, 1, per_axis]
        view[axis] = size
        axes.append(encoded.view(view).expand(*shape, per_axis))
    return torch.cat(axes, dim=-1).reshape(-1, dim).to(dtype)


class QueryDecoder(nn.Module):
    """Queries -> per-layer (class logits, mask logits); region probabilities from the last prediction."""

    def __init__(self, level_channels: tuple[int, ...], mask_channels: int, num_regions: int, dim: int,
                 heads: int, ffn: int, layers: int, queries: int, masked_attention: bool,
                 attention_fp32: bool = False):
        super().__init__()
        self.masked_attention = masked_attention
        self.inputs = nn.ModuleList(
            nn.Sequential(Conv3d(c, dim, kernel_size=1), nn.GroupNorm(group_count(dim), dim))
            for c in level_channels
        )
        self.level_embed = nn.Embedding(len(level_channels), dim)
        self.query_feat = nn.Embedding(queries, dim)
        self.query_pos = nn.Embedding(queries, dim)
        self.layers = nn.ModuleList(DecoderLayer(dim, heads, ffn, attention_fp32) for _ in range(layers))
        self.mask_features = Conv3d(mask_channels, dim, kernel_size=1)
        self.norm = nn.LayerNorm(dim)
        self.classes = nn.Linear(dim, num_regions + 1)  # last class: no object
        self.mask_embed = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, dim),
                                        nn.ReLU(inplace=True), nn.Linear(dim, dim))

    def forward(self, levels: list[torch.Tensor], full_resolution: torch.Tensor):
        """`levels` coarse to fine; returns [(class logits (B,Q,R+1), mask logits (B,Q,D,H,W)), ...]."""
        memory, memory_pos, shapes = [], [], []
        for index, (project, level) in enumerate(zip(self.inputs, levels)):
            x = project(level)
            shapes.append(tuple(x.shape[2:]))
            memory.append(x.flatten(2).transpose(1, 2) + self.level_embed.weight[index])
            memory_pos.append(sine_position_encoding(shapes[-1], x.shape[1], x.device, x.dtype))
        features = self.mask_features(full_resolution)
        batch = full_resolution.shape[0]
        query = self.query_feat.weight.unsqueeze(0).expand(batch, -1, -1)
        query_pos = self.query_pos.weight.unsqueeze(0)
        predictions = [self._predict(query, features)]
        for index, layer in enumerate(self.layers):
            level = index % len(memory)
            mask = self._attention_mask(predictions[-1][1], shapes[level]) if self.masked_attention else None
            query = layer(query, query_pos, memory[level], memory_pos[level], mask)
            predictions.append(self._predict(query, features))
        return predictions

    def _predict(self, query: torch.Tensor, features: torch.Tensor):
        query = self.norm(query)
        masks = torch.einsum("bqc,bcdhw->bqdhw", self.mask_embed(query), features)
        return self.classes(query), masks

    def _attention_mask(self, masks: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
        """Masked attention: each query sees only where its previous mask is on (everywhere if it is empty)."""
        small = F.interpolate(masks, size=shape, mode="trilinear", align_corners=False).flatten(2) > 0
        small |= ~small.any(dim=-1, keepdim=True)
        return small.unsqueeze(1)  # (B, 1, Q, tokens), broadcast over heads


def region_probabilities(class_logits: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor:
    """(B, R, D, H, W) = sum over queries of softmax(class)[region] * sigmoid(mask)."""
    return torch.einsum("bqr,bqdhw->brdhw", class_logits.softmax(-1)[..., :-1], mask_logits.sigmoid())
