"""Losses: region BCE + Dice with deep supervision, and the query decoder's Hungarian-matched set loss."""

from transunet3d.losses.region import deep_supervision_loss, deep_supervision_weights, region_loss, soft_dice_loss
from transunet3d.losses.set_loss import SetLossWeights, deep_set_loss, match, set_loss

__all__ = [
    "SetLossWeights",
    "deep_set_loss",
    "deep_supervision_loss",
    "deep_supervision_weights",
    "match",
    "region_loss",
    "set_loss",
    "soft_dice_loss",
]
