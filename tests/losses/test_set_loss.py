"""Set loss: optimal matching, hand-computed values, finite on empty patches."""

import itertools
import math

import numpy as np
import pytest
import torch

from transunet3d.config import build_config
from transunet3d.losses import SetLossWeights, deep_set_loss, match, set_loss
from transunet3d.losses.set_loss import pairwise_costs


def test_matcher_finds_the_optimal_assignment():
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        classes_logits = torch.randn(5, 4, generator=generator)
        masks_logits = torch.randn(5, 30, generator=generator)
        targets = torch.tensor([0, 2, 1])
        masks = torch.rand(3, 30, generator=generator) > 0.5
        rows, columns = match(classes_logits, masks_logits, targets, masks)
        costs = pairwise_costs(classes_logits, masks_logits, targets, masks).numpy()
        best = min(sum(costs[q, t] for t, q in enumerate(perm)) for perm in itertools.permutations(range(5), 3))
        assert costs[rows, columns].sum() == pytest.approx(best, rel=1e-6)
        assert sorted(columns) == [0, 1, 2]


def test_matching_picks_the_query_that_predicts_the_region():
    masks_logits = torch.full((3, 8), -10.0)
    masks_logits[1, :4] = 10.0  # query 1 predicts the left half
    class_logits = torch.zeros(3, 4)
    target = torch.zeros(1, 8, dtype=torch.bool)
    target[0, :4] = True
    rows, columns = match(class_logits, masks_logits, torch.tensor([2]), target)
    assert list(rows) == [1] and list(columns) == [0]


def _one_match_case():
    """One sample, two queries, 4 voxels; region TC (class 1) fills voxels 0-1 and query 0 predicts it exactly.
    Query 0's classes are uniform; query 1 (unmatched, target "no object") leans to class WT by 2 logits."""
    regions = torch.zeros(1, 3, 1, 1, 4, dtype=torch.bool)
    regions[0, 1, 0, 0, :2] = True
    class_logits = torch.zeros(1, 2, 4)
    class_logits[0, 1, 0] = 2.0
    mask_logits = torch.full((1, 2, 1, 1, 4), -50.0)
    mask_logits[0, 0, 0, 0, :2] = 50.0
    return class_logits, mask_logits, regions


def test_loss_by_hand_with_the_official_unweighted_no_object_class():
    # Mask BCE and Dice of the matched query are ~0; the class CE is the plain mean over both queries.
    matched, unmatched = math.log(4), math.log(math.e**2 + 3)
    loss = set_loss(*_one_match_case())
    assert loss.item() == pytest.approx(0.3 * (matched + unmatched) / 2, rel=1e-4)


def test_each_matched_query_is_trained_on_the_target_assigned_to_it():
    """Query 0 predicts TC and query 1 WT, exactly: matched crosswise, the loss is ~0. The official
    `compute_loss_hungarian` pairs the matched queries, in query order, with the targets in stored order (WT, TC):
    it would train query 0 on WT and query 1 on TC here, a loss of several units."""
    regions = torch.zeros(1, 3, 1, 1, 4, dtype=torch.bool)
    regions[0, 0, 0, 0, :] = True  # WT: all four voxels
    regions[0, 1, 0, 0, :2] = True  # TC: voxels 0-1
    class_logits = torch.full((1, 2, 4), -20.0)
    class_logits[0, 0, 1] = class_logits[0, 1, 0] = 20.0  # query 0 says TC, query 1 WT
    mask_logits = torch.full((1, 2, 1, 1, 4), -50.0)
    mask_logits[0, 0, 0, 0, :2] = 50.0
    mask_logits[0, 1, 0, 0, :] = 50.0
    rows, columns = match(class_logits[0], mask_logits[0].flatten(1), torch.tensor([0, 1]), regions[0, :2].flatten(1))
    assert rows.tolist() == [0, 1] and columns.tolist() == [1, 0]
    assert set_loss(class_logits, mask_logits, regions).item() < 1e-6


def test_a_no_object_weight_weights_the_unmatched_queries():
    matched, unmatched = math.log(4), math.log(math.e**2 + 3)
    loss = set_loss(*_one_match_case(), SetLossWeights(mask=0.7, classes=0.3, no_object=0.1))
    assert loss.item() == pytest.approx(0.3 * (matched + 0.1 * unmatched) / 1.1, rel=1e-4)


def test_the_paper_presets_leave_no_object_unweighted():
    for preset in ("paper-decoder", "paper-both", "tiny-decoder", "tiny-both"):
        assert build_config(preset).train.no_object_weight == 1.0


def test_empty_patch_is_finite_and_trains_towards_no_object():
    class_logits = torch.randn(2, 5, 4, requires_grad=True)
    mask_logits = torch.randn(2, 5, 4, 4, 4, requires_grad=True)
    loss = set_loss(class_logits, mask_logits, torch.zeros(2, 3, 4, 4, 4, dtype=torch.bool))
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.all(class_logits.grad[..., -1] <= 0)  # raising "no object" lowers the loss


def test_deep_set_loss_is_half_the_final_prediction_and_half_the_mean_of_the_others():
    regions = torch.zeros(1, 3, 4, 4, 4, dtype=torch.bool)
    regions[0, :, 1:3, 1:3, 1:3] = True
    torch.manual_seed(0)
    predictions = [(torch.randn(1, 6, 4), torch.randn(1, 6, 4, 4, 4)) for _ in range(4)]
    total = deep_set_loss([p[0] for p in predictions], [p[1] for p in predictions], regions)
    each = [set_loss(c, m, regions).item() for c, m in predictions]
    assert total.item() == pytest.approx(0.5 * each[-1] + 0.5 * sum(each[:3]) / 3, rel=1e-6)
    assert deep_set_loss([predictions[0][0]], [predictions[0][1]], regions).item() == pytest.approx(each[0])


def test_works_with_the_model_outputs():
    from transunet3d.models import create_model

    model = create_model("decoder", "tiny").train()
    out = model(torch.randn(1, 4, 64, 64, 64))
    regions = torch.from_numpy(np.zeros((1, 3, 64, 64, 64), dtype=bool))
    regions[0, :, 20:30, 20:30, 20:30] = True
    loss = deep_set_loss(out.class_logits, out.mask_logits, regions)
    loss.backward()
    assert torch.isfinite(loss)



def test_four_regions_are_four_classes_and_the_cavity_is_matched_like_the_others():
    """brats-mets-2025: class logits (B, Q, 4 + 1); a sample with only a cavity (RC, class 3) matches one query
    to it, and the others go to no-object (class 4)."""
    regions = torch.zeros(1, 4, 1, 1, 4, dtype=torch.bool)
    regions[0, 3, 0, 0, 2:] = True
    mask_logits = torch.full((1, 3, 1, 1, 4), -50.0)
    mask_logits[0, 2, 0, 0, 2:] = 50.0  # query 2 predicts the cavity
    class_logits = torch.zeros(1, 3, 5)
    rows, columns = match(class_logits[0], mask_logits[0].flatten(1), torch.tensor([3]), regions[0, 3:].flatten(1))
    assert list(rows) == [2] and list(columns) == [0]
    # Mask terms ~0: the class cross-entropy is ln 5 for each of the three queries (uniform over five classes).
    assert set_loss(class_logits, mask_logits, regions).item() == pytest.approx(0.3 * math.log(5), rel=1e-4)
