"""Losses: region BCE + Dice with deep supervision, blob loss (a Dice per lesion), and the query decoder's
Hungarian-matched set loss."""

from transunet3d.losses.blob import blob_dice_loss, lesion_labels
from transunet3d.losses.region import deep_supervision_loss, deep_supervision_weights, region_loss, soft_dice_loss
from transunet3d.losses.set_loss import SetLossWeights, deep_set_loss, match, set_loss

__all__ = [
    "SetLossWeights",
    "blob_dice_loss",
    "deep_set_loss",
    "deep_supervision_loss",
    "deep_supervision_weights",
    "lesion_labels",
    "match",
    "region_loss",
    "set_loss",
    "soft_dice_loss",
]
