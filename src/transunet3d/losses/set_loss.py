"""Set loss of the query decoder: Hungarian matching of queries to the non-empty region masks, as Mask2Former.

Per sample, each non-empty region of the label scheme (WT, TC, ET; RC too in brats-mets-2025) is a target with its
class. Queries are matched to targets by minimising 2 * (-p_class) + 5 * BCE + 5 * Dice (scipy's
linear_sum_assignment); the loss is lambda0 * (BCE + Dice) over the matched pairs plus lambda1 * cross-entropy of
every query's class, unmatched queries being trained towards "no object" (unweighted by default, as the official
BraTS configs leave it; Mask2Former weights it 0.1). It is applied to every intermediate prediction and aggregated
as the official code does (`max_loss_cal: v1`): half the final prediction's loss plus half the mean of the
auxiliary ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

COST_CLASS, COST_BCE, COST_DICE = 2.0, 5.0, 5.0


@dataclass(frozen=True)
class SetLossWeights:
    """lambda0 (mask BCE + Dice) and lambda1 (class cross-entropy), 0.7 and 0.3 in the paper, and the weight of
    the no-object class inside the cross-entropy (1.0: unweighted, the official BraTS setting)."""

    mask: float = 0.7
    classes: float = 0.3
    no_object: float = 1.0


def pairwise_costs(class_logits: torch.Tensor, mask_logits: torch.Tensor, classes: torch.Tensor,
                   masks: torch.Tensor) -> torch.Tensor:
    """(Q, T) matching cost of one sample: queries (Q, C+1), (Q, N) against targets (T,), (T, N)."""
    probability = class_logits.softmax(-1)[:, classes]  # (Q, T)
    logits, masks = mask_logits.float(), masks.float()
    voxels = logits.shape[1]
    bce = (F.softplus(logits) @ (1 - masks).T + F.softplus(-logits) @ masks.T) / voxels
    sigmoid = logits.sigmoid()
    dice = 1 - (2 * sigmoid @ masks.T + 1) / (sigmoid.sum(-1, keepdim=True) + masks.sum(-1)[None] + 1)
    return COST_CLASS * -probability + COST_BCE * bce + COST_DICE * dice


@torch.no_grad()
def match(class_logits: torch.Tensor, mask_logits: torch.Tensor, classes: torch.Tensor,
          masks: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The query index and target index of each matched pair (minimum total cost)."""
    if len(classes) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    costs = pairwise_costs(class_logits, mask_logits, classes, masks)
    return linear_sum_assignment(costs.cpu().numpy())


def region_targets(regions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Classes and flattened masks of the non-empty regions of one sample's (R, D, H, W) region targets."""
    flat = regions.flatten(1)
    present = torch.nonzero(flat.any(dim=1)).flatten()
    return present, flat[present]


def set_loss(class_logits: torch.Tensor, mask_logits: torch.Tensor, regions: torch.Tensor,
             weights: SetLossWeights = SetLossWeights()) -> torch.Tensor:
    """Loss of one prediction: (B, Q, R+1) class logits, (B, Q, D, H, W) mask logits, (B, R, D, H, W) targets."""
    batch, queries, num_classes = class_logits.shape
    no_object = num_classes - 1
    class_targets = torch.full((batch, queries), no_object, dtype=torch.long, device=class_logits.device)
    matched_logits, matched_masks = [], []
    for sample in range(batch):
        classes, masks = region_targets(regions[sample])
        logits = mask_logits[sample].flatten(1)
        rows, columns = match(class_logits[sample], logits, classes, masks)
        class_targets[sample, rows] = classes[columns]
        matched_logits.append(logits[rows])
        matched_masks.append(masks[columns])
    class_weights = torch.ones(num_classes, device=class_logits.device)
    class_weights[no_object] = weights.no_object
    loss = weights.classes * F.cross_entropy(class_logits.float().transpose(1, 2), class_targets,
                                             weight=class_weights)
    logits, masks = torch.cat(matched_logits), torch.cat(matched_masks).float()
    if len(logits):
        bce = F.binary_cross_entropy_with_logits(logits.float(), masks, reduction="none").mean(1)
        sigmoid = logits.float().sigmoid()
        dice = 1 - (2 * (sigmoid * masks).sum(1) + 1) / (sigmoid.sum(1) + masks.sum(1) + 1)
        loss = loss + weights.mask * (bce + dice).mean()
    return loss


def deep_set_loss(class_logits: list[torch.Tensor], mask_logits: list[torch.Tensor], regions: torch.Tensor,
                  weights: SetLossWeights = SetLossWeights()) -> torch.Tensor:
    """The set loss over every prediction (before the first decoder layer and after each, the final one last):
    0.5 x the final prediction's loss + 0.5 x the mean over the auxiliary predictions, the official weighting.

    The final prediction, the one inference uses, keeps half of the weight however many layers there are, and the
    total stays on the scale of one prediction's loss (which gradient clipping assumes).
    """
    losses = [set_loss(c, m, regions, weights) for c, m in zip(class_logits, mask_logits)]
    if len(losses) == 1:
        return losses[0]
    return 0.5 * losses[-1] + 0.5 * sum(losses[:-1]) / (len(losses) - 1)
