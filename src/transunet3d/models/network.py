"""One network class for every variant: CNN U-Net, plus the ViT bottleneck and/or the query decoder if asked."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from transunet3d.models.cnn import Decoder, Encoder
from transunet3d.models.conv import Conv3d
from transunet3d.models.query_decoder import QueryDecoder, region_probabilities
from transunet3d.models.registry import model_spec, spec_from_config
from transunet3d.models.spec import ArchitectureSpec
from transunet3d.models.vit import BottleneckViT

if TYPE_CHECKING:
    from transunet3d.config.schema import ExperimentConfig

_PROBABILITY_EPS = 1e-6


@dataclass
class ModelOutput:
    """What every variant returns.

    Attributes:
        logits: full-resolution region logits (B, R, D, H, W), R = `spec.num_regions`, in the label scheme's
            region order (WT, TC, ET, and RC in brats-mets-2025).
        deep_supervision: region logits of the CNN heads of every decoder stage, finest first (training only).
        class_logits: per query prediction (before the first decoder layer and after each), (B, Q, R + 1).
        mask_logits: the matching mask logits (B, Q, D, H, W). Both lists are empty for CNN-only variants.
    """

    logits: torch.Tensor
    deep_supervision: list[torch.Tensor] = field(default_factory=list)
    class_logits: list[torch.Tensor] = field(default_factory=list)
    mask_logits: list[torch.Tensor] = field(default_factory=list)


class TransUNet3D(nn.Module):
    """3D-TransUNet: `use_vit` gives the encoder variant, `use_query_decoder` the decoder variant, both the full."""

    def __init__(self, spec: ArchitectureSpec):
        super().__init__()
        self.spec = spec
        features = spec.features
        self.encoder = Encoder(spec.in_channels, features)
        self.vit = (BottleneckViT(features[-1], spec.vit_dim, spec.vit_depth, spec.vit_heads, spec.vit_mlp,
                                  spec.vit_dropout, spec.bottleneck_grid) if spec.use_vit else None)
        self.decoder = Decoder(features)
        # One 1x1x1 head per decoder stage (coarse to fine), as nnU-Net's deep supervision.
        self.heads = nn.ModuleList(Conv3d(c, spec.num_regions, 1, bias=False) for c in reversed(features[:-1]))
        self.query_decoder = (QueryDecoder(tuple(features[3:0:-1]), features[0], spec.num_regions,
                                           spec.decoder_dim, spec.decoder_heads, spec.decoder_ffn,
                                           spec.decoder_layers, spec.num_queries, spec.masked_attention,
                                           spec.decoder_attention_fp32)
                              if spec.use_query_decoder else None)
        self.apply(_he_init)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        skips = self.encoder(x)
        if self.vit is not None:
            skips[-1] = self.vit(skips[-1])
        stages = self.decoder(skips)  # 1/16 ... full resolution
        supervised = self.training and self.spec.deep_supervision
        deep = [head(s) for head, s in zip(reversed(self.heads), reversed(stages))] if supervised else []
        if self.query_decoder is None:
            logits = deep[0] if deep else self.heads[-1](stages[-1])
            return ModelOutput(logits, deep)
        # Decoder features at 1/8, 1/4, 1/2 (coarse to fine) are the memory; the full-resolution ones make masks.
        predictions = self.query_decoder(stages[-4:-1], stages[-1])
        probability = region_probabilities(*predictions[-1]).float()
        logits = torch.logit(probability.clamp(_PROBABILITY_EPS, 1 - _PROBABILITY_EPS))
        return ModelOutput(logits, deep, [p[0] for p in predictions], [p[1] for p in predictions])


def _he_init(module: nn.Module) -> None:
    """He-normal (a = 0.01) for convolutions, zero bias: nnU-Net's initialisation."""
    if isinstance(module, (nn.Conv3d, nn.ConvTranspose3d)):
        nn.init.kaiming_normal_(module.weight, a=0.01)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def create_model(name: str, width: str = "full", **overrides: Any) -> TransUNet3D:
    """Build variant `name` ("unet", "encoder", "decoder", "both")."""
    return TransUNet3D(model_spec(name, width, **overrides))


def model_from_config(config: ExperimentConfig) -> TransUNet3D:
    """The network an experiment config describes (see `spec_from_config`)."""
    return TransUNet3D(spec_from_config(config))
