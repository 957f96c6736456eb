"""Region loss against values computed by hand."""

import math

import pytest
import torch

from transunet3d.losses import deep_supervision_loss, deep_supervision_weights, region_loss, soft_dice_loss


def test_zero_logits_by_hand():
    logits = torch.zeros(1, 1, 2, 2, 1)
    target = torch.tensor([1.0, 0.0, 0.0, 0.0]).view(1, 1, 2, 2, 1)
    # sigmoid 0.5 everywhere: BCE = ln 2; Dice = (2 * 0.5 + s) / (4 * 0.5 + 1 + s)
    dice = (1 + 1e-5) / (3 + 1e-5)
    assert region_loss(logits, target).item() == pytest.approx(math.log(2) + 1 - dice, rel=1e-6)


def test_batch_dice_pools_samples_and_averages_regions():
    logits = torch.tensor([10.0, -10.0]).view(2, 1, 1, 1, 1).repeat(1, 2, 1, 1, 1)
    target = torch.tensor([1.0, 0.0]).view(2, 1, 1, 1, 1).repeat(1, 2, 1, 1, 1)
    # Sample 2 is empty: pooled over the batch, each region's Dice is ~1.
    assert soft_dice_loss(logits, target).item() == pytest.approx(0.0, abs=1e-4)


def test_empty_patch_gives_a_finite_loss():
    logits = torch.randn(2, 3, 4, 4, 4, requires_grad=True)
    loss = region_loss(logits, torch.zeros(2, 3, 4, 4, 4))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def test_deep_supervision_weights_are_nnunets():
    weights = deep_supervision_weights(5)
    assert weights == pytest.approx([1 / 1.875, 0.5 / 1.875, 0.25 / 1.875, 0.125 / 1.875, 0.0])
    assert deep_supervision_weights(1) == [1.0]


def test_deep_supervision_loss_combines_stages_at_their_resolution():
    target = torch.zeros(1, 3, 8, 8, 8)
    target[:, :, :4] = 1
    outputs = [torch.zeros(1, 3, 8, 8, 8), torch.zeros(1, 3, 4, 4, 4), torch.zeros(1, 3, 2, 2, 2)]
    weights = deep_supervision_weights(3)
    expected = weights[0] * region_loss(outputs[0], target) + weights[1] * region_loss(
        outputs[1], target[:, :, ::2, ::2, ::2])
    assert deep_supervision_loss(outputs, target).item() == pytest.approx(expected.item(), rel=1e-6)


def test_four_regions_average_their_dice_by_hand():
    """brats-mets-2025's four regions: WT, TC, ET right, the cavity (RC) all wrong: Dice loss ~ (0+0+0+1) / 4."""
    target = torch.zeros(1, 4, 2, 2, 2)
    target[:, :, 0] = 1
    logits = torch.where(target.bool(), 20.0, -20.0)
    logits[:, 3] = -logits[:, 3]
    assert soft_dice_loss(logits, target).item() == pytest.approx(0.25, abs=1e-5)
    outputs = [logits, logits[:, :, ::2, ::2, ::2]]
    assert torch.isfinite(deep_supervision_loss(outputs, target))
