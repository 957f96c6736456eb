"""The training loss of a model output: CNN deep supervision and, for query decoders, the set loss."""

from __future__ import annotations

import torch

from transunet3d.config.schema import TrainConfig
from transunet3d.losses import (
    SetLossWeights,
    blob_dice_loss,
    deep_set_loss,
    deep_supervision_loss,
    deep_supervision_weights,
    lesion_labels,
)
from transunet3d.models.network import ModelOutput


def training_loss(output: ModelOutput, targets: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """The segmentation loss, plus `train.blob_loss_weight` times the blob loss of the full-resolution prediction
    (losses/blob.py) when that weight is not 0."""
    loss = segmentation_loss(output, targets, config)
    if config.blob_loss_weight:
        loss = loss + config.blob_loss_weight * blob_dice_loss(output.logits, lesion_labels(targets))
    return loss


def segmentation_loss(output: ModelOutput, targets: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """The region loss over the CNN heads; for query decoders, the set loss, with the CNN heads below full
    resolution beside it when `train.cnn_deep_supervision` is on (see `query_model_loss`)."""
    heads = output.deep_supervision or [output.logits]
    if not output.class_logits:
        return deep_supervision_loss(heads, targets)
    weights = SetLossWeights(config.mask_loss_weight, config.class_loss_weight, config.no_object_weight)
    set_loss = deep_set_loss(output.class_logits, output.mask_logits, targets.bool(), weights)
    if not (config.cnn_deep_supervision and output.deep_supervision):
        return set_loss
    return query_model_loss(set_loss, output.deep_supervision, targets)


def query_model_loss(set_loss: torch.Tensor, heads: list[torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
    """The official 3D-TransUNet loss of a query model with CNN deep supervision (encoder + decoder).

    The query decoder's prediction replaces the full-resolution CNN head: the set loss takes that head's
    deep-supervision weight, the lower heads keep theirs for half BCE + half Dice (the official "weight shift"),
    and the full-resolution CNN head is not trained (weight 0, still evaluated for DDP).
    """
    weights = deep_supervision_weights(len(heads))
    cnn = deep_supervision_loss(heads, targets, [0.0] + [0.5 * weight for weight in weights[1:]])
    return weights[0] * set_loss + cnn
