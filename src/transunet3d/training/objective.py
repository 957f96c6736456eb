"""The training loss of a model output: CNN deep supervision and, for query decoders, the set loss."""

from __future__ import annotations

import torch

from transunet3d.config.schema import TrainConfig
from transunet3d.losses import SetLossWeights, deep_set_loss, deep_supervision_loss
from transunet3d.models.network import ModelOutput


def training_loss(output: ModelOutput, targets: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """Region loss over the CNN heads (unless switched off for query models) plus the set loss of the queries."""
    has_queries = bool(output.class_logits)
    loss = output.logits.new_zeros((), dtype=torch.float32)
    if not has_queries or config.cnn_deep_supervision:
        heads = output.deep_supervision or [output.logits]
        loss = loss + deep_supervision_loss(heads, targets)
    if has_queries:
        weights = SetLossWeights(config.mask_loss_weight, config.class_loss_weight)
        loss = loss + deep_set_loss(output.class_logits, output.mask_logits, targets.bool(), weights)
    return loss
