"""Blob loss against values computed by hand, and its place in the training loss."""

import cc3d
import numpy as np
import pytest
import torch

from transunet3d.config import build_config
from transunet3d.losses import blob_dice_loss, lesion_labels, soft_dice_loss
from transunet3d.models.network import ModelOutput
from transunet3d.training.objective import segmentation_loss, training_loss

SURE = 30.0  # a logit whose sigmoid is 1 to float precision


def two_lesions() -> torch.Tensor:
    """One region of one sample: a 2x2x2 lesion and, apart from it, a single-voxel lesion."""
    target = torch.zeros(1, 1, 6, 6, 6)
    target[0, 0, :2, :2, :2] = 1
    target[0, 0, 5, 5, 5] = 1
    return target


def test_lesions_are_26_connected_components_per_sample_and_region():
    target = torch.zeros(2, 2, 4, 4, 4)
    target[0, 0, 0, 0, 0] = target[0, 0, 1, 1, 1] = 1  # diagonal neighbours: one lesion
    target[0, 1, 0, 0, 0] = target[0, 1, 2, 2, 2] = 1  # apart: two
    target[1, 1, 3, 3, 3] = 1  # one more, in the last map
    lesions = lesion_labels(target)
    assert lesions.count == 4
    assert lesions.map_of_lesion.tolist() == [0, 1, 1, 3]
    assert lesions.sizes.tolist() == [2, 1, 1, 1]
    assert torch.equal(torch.sort(lesions.voxels).values, torch.nonzero(target.flatten()).flatten())
    flat = target.flatten()
    assert flat[lesions.voxels].eq(1).all()
    # voxels of one lesion lie in its map
    assert torch.equal(lesions.voxels // 64, lesions.map_of_lesion[lesions.lesion_of_voxel])


def reference_blob_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The blob loss written out lesion by lesion, as Kofler et al. define it: every other lesion masked out of
    the prediction, then the soft Dice of the rest against the lesion."""
    probability = torch.sigmoid(logits.double())
    losses = []
    for sample in range(target.shape[0]):
        for region in range(target.shape[1]):
            labels = cc3d.connected_components(target[sample, region].numpy().astype(np.uint8), connectivity=26)
            labels = torch.from_numpy(labels.astype(np.int64))
            for lesion in range(1, int(labels.max()) + 1):
                mine = labels == lesion
                kept = probability[sample, region] * ((labels == 0) | mine)
                dice = 2 * (kept * mine).sum() / (kept.sum() + mine.sum())
                losses.append(1 - dice)
    return torch.stack(losses).mean()


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last_3d])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_values_and_gradients_equal_the_lesion_by_lesion_definition(seed, layout):
    """Also with channels-last tensors, as CPU training hands them over: indices follow the logical layout."""
    generator = torch.Generator().manual_seed(seed)
    target = (torch.rand(2, 3, 9, 8, 7, generator=generator) < 0.15).float()
    logits = torch.randn(target.shape, generator=generator).requires_grad_(True)
    reference = logits.detach().clone().requires_grad_(True)
    loss = blob_dice_loss(logits.to(memory_format=layout), lesion_labels(target.to(memory_format=layout)))
    expected = reference_blob_loss(reference, target)
    loss.backward()
    expected.backward()
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
    assert torch.allclose(logits.grad, reference.grad.float(), atol=1e-7)


def test_each_lesion_counts_alike_whatever_its_size():
    target = two_lesions()
    logits = torch.full_like(target, -SURE)
    logits[0, 0, :2, :2, :2] = SURE  # the large lesion found, the single voxel missed
    loss = blob_dice_loss(logits, lesion_labels(target))
    assert loss.item() == pytest.approx(0.5, abs=1e-6)  # 1 - (1 + 0) / 2
    # The batch Dice barely notices the missed voxel: 1 - 16 / 17.
    assert soft_dice_loss(logits, target).item() == pytest.approx(1 / 17, abs=1e-4)


def test_other_lesions_are_masked_out_and_false_positives_count_for_every_lesion():
    target = two_lesions()
    logits = torch.full_like(target, -SURE)
    logits[target.bool()] = SURE
    logits[0, 0, 3, 0, 0] = SURE  # one false-positive voxel
    loss = blob_dice_loss(logits, lesion_labels(target))
    # lesion of 8: 2*8 / (1 + 8 + 8); lesion of 1: 2*1 / (1 + 1 + 1); the other lesion is not a false positive
    expected = 1 - (16 / 17 + 2 / 3) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_no_lesion_gives_zero_with_a_gradient_path():
    logits = torch.randn(2, 3, 4, 4, 4, requires_grad=True)
    loss = blob_dice_loss(logits, lesion_labels(torch.zeros(2, 3, 4, 4, 4)))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))


def test_gradient_raises_a_missed_lesion():
    target = two_lesions()
    logits = torch.zeros_like(target, requires_grad=True)
    blob_dice_loss(logits, lesion_labels(target)).backward()
    assert logits.grad[0, 0, 5, 5, 5] < 0  # descending raises the lesion's probability
    assert logits.grad[0, 0, 3, 3, 0] > 0  # and lowers the background's


def test_training_loss_adds_the_weighted_blob_loss_of_the_full_resolution_output():
    target = two_lesions().repeat(1, 3, 1, 1, 1)
    logits = torch.randn_like(target)
    output = ModelOutput(logits=logits, deep_supervision=[logits, torch.randn(1, 3, 3, 3, 3)])
    off = build_config("tiny-unet", [])
    on = build_config("tiny-unet", ["train.blob_loss_weight=2"])
    base = segmentation_loss(output, target, off.train)
    assert training_loss(output, target, off.train).item() == base.item()
    blob = blob_dice_loss(logits, lesion_labels(target))
    assert training_loss(output, target, on.train).item() == pytest.approx((base + 2 * blob).item(), rel=1e-6)
