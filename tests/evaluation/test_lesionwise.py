"""Lesion-wise metrics on hand-built cases whose scores follow from the challenge's rules by hand."""

import numpy as np
import pytest

from transunet3d.evaluation import region_mask, score_region
from transunet3d.evaluation.lesionwise import merged_lesions

ONE_MM = (1.0, 1.0, 1.0)


def box(shape=(24, 24, 24), *boxes):
    mask = np.zeros(shape, dtype=bool)
    for (x0, x1), (y0, y1), (z0, z1) in boxes:
        mask[x0:x1, y0:y1, z0:z1] = True
    return mask


CUBE_A = ((4, 7), (4, 7), (4, 7))  # 27 voxels
CUBE_B = ((14, 17), (14, 17), (14, 17))


def test_both_empty_scores_perfect():
    s = score_region(box(), box(), ONE_MM)
    assert (s.lesionwise_dice, s.lesionwise_hd95, s.legacy_dice, s.legacy_hd95) == (1.0, 0.0, 1.0, 0.0)
    assert (s.num_tp, s.num_fp, s.num_fn, s.sensitivity, s.specificity) == (0, 0, 0, 1.0, 1.0)


def test_false_positives_on_empty_reference():
    s = score_region(box((24, 24, 24), CUBE_A, CUBE_B), box(), ONE_MM)
    assert (s.num_tp, s.num_fp, s.num_fn) == (0, 2, 0)
    assert (s.lesionwise_dice, s.lesionwise_hd95, s.legacy_dice, s.legacy_hd95) == (0.0, 374.0, 0.0, 374.0)


def test_empty_prediction_misses_every_lesion():
    s = score_region(box(), box((24, 24, 24), CUBE_A, CUBE_B), ONE_MM)
    assert (s.num_tp, s.num_fp, s.num_fn) == (0, 0, 2)
    assert (s.lesionwise_dice, s.lesionwise_hd95, s.sensitivity) == (0.0, 374.0, 0.0)
    assert s.gt_volume == 54.0


def test_prediction_touching_without_overlap_is_matched_with_dice_zero():
    gt = box((24, 24, 24), CUBE_A)
    s = score_region(box((24, 24, 24), ((7, 10), (4, 7), (4, 7))), gt, ONE_MM)  # face-adjacent
    assert (s.num_tp, s.num_fp, s.num_fn) == (1, 0, 0)
    assert s.lesionwise_dice == 0.0 and s.lesionwise_hd95 < 374
    one_gap = score_region(box((24, 24, 24), ((8, 11), (4, 7), (4, 7))), gt, ONE_MM)
    assert (one_gap.num_tp, one_gap.num_fp, one_gap.num_fn) == (0, 1, 1)
    assert (one_gap.lesionwise_dice, one_gap.lesionwise_hd95) == (0.0, 374.0)


@pytest.mark.parametrize("gap, lesions", [(1, 1), (2, 1), (3, 2)])
def test_reference_lesions_merge_when_their_dilations_touch(gap, lesions):
    gt = box((24, 24, 24), ((4, 7), (4, 7), (4, 7)), ((7 + gap, 10 + gap), (4, 7), (4, 7)))
    assert merged_lesions(gt)[0].max() == lesions
    assert score_region(gt, gt, ONE_MM).num_tp == lesions


def test_split_prediction_is_scored_as_the_union_of_its_parts():
    gt = box((24, 24, 24), ((4, 10), (4, 9), (4, 9)))  # 150 voxels
    pred = box((24, 24, 24), ((4, 6), (4, 9), (4, 9)), ((8, 10), (4, 9), (4, 9)))  # 2 x 50, one empty plane between
    s = score_region(pred, gt, ONE_MM)
    assert (s.num_tp, s.num_fp, s.num_fn) == (1, 0, 0)
    assert s.lesions[0].matched == (1, 2)
    assert s.lesionwise_dice == pytest.approx(2 * 100 / (150 + 100))


def test_one_prediction_covering_two_lesions_counts_for_both():
    gt = box((24, 24, 24), ((4, 7), (4, 7), (4, 7)), ((11, 14), (4, 7), (4, 7)))
    pred = box((24, 24, 24), ((4, 14), (4, 7), (4, 7)))  # 90 voxels over both
    s = score_region(pred, gt, ONE_MM)
    assert (s.num_tp, s.num_fp, s.num_fn) == (2, 0, 0)
    assert s.lesionwise_dice == pytest.approx(2 * 27 / (27 + 90))


def test_tiny_reference_lesions_are_ignored_but_absorb_their_predictions():
    gt = box((24, 24, 24), CUBE_A, ((15, 17), (15, 16), (15, 16)))  # 27 voxels and a 2 mm^3 lesion
    s = score_region(gt, gt, ONE_MM)
    assert (s.num_tp, s.num_fp, s.num_fn, s.lesionwise_dice) == (1, 0, 0, 1.0)
    missed_small = score_region(box((24, 24, 24), CUBE_A), gt, ONE_MM)
    assert (missed_small.num_fn, missed_small.lesionwise_dice) == (0, 1.0)
    # With 1.5 mm slices the same two voxels are 3 mm^3: a real lesion, now missed.
    anisotropic = score_region(box((24, 24, 24), CUBE_A), gt, (1.0, 1.0, 1.5))
    assert (anisotropic.num_tp, anisotropic.num_fn) == (1, 1)
    assert anisotropic.lesionwise_dice == pytest.approx(0.5)
    assert anisotropic.gt_volume == pytest.approx(29 * 1.5)


def test_lesions_on_the_volume_border():
    gt = box((12, 12, 12), ((0, 3), (0, 3), (9, 12)))
    s = score_region(gt, gt, ONE_MM)
    assert (s.num_tp, s.lesionwise_dice, s.lesionwise_hd95, s.legacy_hd95) == (1, 1.0, 0.0, 0.0)


def test_shift_by_one_voxel_gives_hd95_of_one_voxel_spacing():
    gt = box((30, 30, 30), ((5, 20), (5, 20), (5, 20)))
    pred = box((30, 30, 30), ((6, 21), (5, 20), (5, 20)))
    assert score_region(pred, gt, ONE_MM).lesionwise_hd95 == pytest.approx(1.0)
    assert score_region(pred, gt, (2.0, 1.0, 1.0)).lesionwise_hd95 == pytest.approx(2.0)


def test_region_masks_compare_label_values_exactly():
    labels = np.array([0, 1.0, 2.0, 3.0, 4, 1.5])
    np.testing.assert_array_equal(region_mask(labels, "WT"), [0, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(region_mask(labels, "TC"), [0, 1, 0, 1, 0, 0])
    np.testing.assert_array_equal(region_mask(labels, "ET"), [0, 0, 0, 1, 0, 0])


def test_fast_18_dilation_equals_scipy():
    from scipy import ndimage

    from transunet3d.evaluation.lesionwise import dilate_18

    mask = np.random.default_rng(1).random((9, 11, 7)) > 0.9
    mask[0, 0, 0] = mask[-1, -1, -1] = True
    expected = ndimage.binary_dilation(mask, structure=ndimage.generate_binary_structure(3, 2))
    np.testing.assert_array_equal(dilate_18(mask), expected)
