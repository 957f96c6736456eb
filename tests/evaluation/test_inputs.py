"""The scoring functions called from code refuse what they cannot score: a zero voxel size made a prediction that
missed every lesion score lesion-wise Dice 1.0, masks of two shapes gave an HD95 of 39.9, and a size in metres
dropped the missed lesions."""

import numpy as np
import pytest

from transunet3d.evaluation import robust_hausdorff, score_region, score_region_2025
from transunet3d.evaluation.brats2025 import score_labels_2025
from transunet3d.evaluation.case import evaluate_labels
from transunet3d.evaluation.lesionwise import lesionwise_dice


def reference() -> np.ndarray:
    gt = np.zeros((32, 32, 32), dtype=bool)
    gt[4:10, 4:10, 4:10] = True
    return gt


@pytest.mark.parametrize("spacing, problem", [
    ((0, 0, 0), r"voxel size \(mm\) must be each in \[0.01, 100\], not \[0.0, 0.0, 0.0\]"),
    ((-1, -1, -1), r"must be each in \[0.01, 100\]"),
    ((0.001, 0.001, 0.001), r"must be each in \[0.01, 100\]"),  # metres
    ((1, 1, float("nan")), "must be each a finite number"),
    ((1, 1), "voxel size must be 3 numbers \\(mm\\), not 2"),
    ("1mm", "voxel size must be 3 numbers"),
])
def test_a_voxel_size_that_is_not_three_sizes_in_mm_is_refused(spacing, problem):
    missed = np.zeros((32, 32, 32), dtype=bool)
    for score in (lesionwise_dice, score_region, score_region_2025, robust_hausdorff):
        with pytest.raises(ValueError, match=problem):
            score(missed, reference(), spacing)
    assert lesionwise_dice(missed, reference(), (1, 1, 1)) == 0.0  # what the miss scores


def test_maps_that_cannot_be_compared_voxel_by_voxel_are_refused():
    gt = reference()
    calls = [((np.zeros((32, 32, 40), bool), gt), r"\(32, 32, (32|40)\) and reference \(32, 32, (40|32)\) are of"),
             ((gt.astype(np.float32), gt), "(prediction|reference): a boolean mask, not float32"),
             ((gt[0], gt), r"(prediction|reference): a non-empty 3D array, not \(32, 32\)"),
             ((np.zeros((0, 4, 4), bool), np.zeros((0, 4, 4), bool)), "prediction: a non-empty 3D array")]
    for (pred, ref), problem in calls:
        for score in (lesionwise_dice, score_region, score_region_2025, robust_hausdorff):
            with pytest.raises(ValueError, match=problem):
                score(pred, ref, (1, 1, 1))
    with pytest.raises(ValueError, match="percent must be in"):
        robust_hausdorff(gt, gt, (1, 1, 1), percent=150)
    labels = gt.astype(np.uint8)
    for score_labels in (evaluate_labels, score_labels_2025):
        with pytest.raises(ValueError, match="are of different shapes"):
            score_labels(labels, labels[:, :, :16], (1, 1, 1))
        with pytest.raises(ValueError, match="voxel size"):
            score_labels(labels, labels, (0, 1, 1))

