import numpy as np
import pytest

from tests.factories import brain_case_arrays
from transunet3d.data.crop import brain_box, crop, uncrop
from transunet3d.data.normalize import brain_mask, zscore_brain


def test_brain_box_is_tight_union_over_channels():
    image = np.zeros((2, 10, 10, 10))
    image[0, 2, 3, 4] = 1
    image[1, 7, 5, 6] = -3
    assert brain_box(image) == ((2, 8), (3, 6), (4, 7))


def test_crop_then_uncrop_restores_the_volume_exactly():
    image, seg = brain_case_arrays()
    box = brain_box(image)
    cropped = crop(image, box)
    assert cropped.shape[1:] == (8, 9, 7)
    np.testing.assert_array_equal(uncrop(cropped, box, image.shape[1:]), image)
    np.testing.assert_array_equal(uncrop(crop(seg, box), box, seg.shape), seg)


def test_empty_image_keeps_full_box():
    assert brain_box(np.zeros((1, 3, 4, 5))) == ((0, 3), (0, 4), (0, 5))


def test_zscore_brain_voxels_mean_zero_std_one_background_zero():
    rng = np.random.default_rng(0)
    image = np.zeros((3, 20, 20, 20), dtype=np.float32)
    brain = np.zeros((20, 20, 20), dtype=bool)
    brain[3:17, 4:15, 2:18] = True
    image[:, brain] = rng.normal([[100.0], [5.0], [2000.0]], [[10.0], [1.0], [300.0]], size=(3, brain.sum()))
    normalized, stats = zscore_brain(image, brain)
    assert normalized.dtype == np.float32
    np.testing.assert_allclose(normalized[:, brain].mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(normalized[:, brain].std(axis=1), 1, atol=1e-5)
    assert np.all(normalized[:, ~brain] == 0)
    np.testing.assert_allclose([m for m, _ in stats], image[:, brain].astype(np.float64).mean(axis=1), rtol=1e-9)


def test_a_zero_cavity_inside_the_brain_is_brain_as_in_nnunet():
    """nnU-Net fills the holes of the nonzero mask: a cavity of exact zeros enclosed by brain enters the statistics
    and becomes -mean/std (left at 0, every brain voxel of the case was normalised with other statistics)."""
    image = np.zeros((2, 12, 12, 12), dtype=np.float32)
    image[:, 2:10, 2:10, 2:10] = [[[[4.0]]], [[[10.0]]]]
    image[0, 2, 2, 2] = 8.0  # not constant: a nonzero std
    image[:, 5:7, 5:7, 5:7] = 0  # 8 voxels of zeros, enclosed
    image[:, 2:4, 9, 9] = 0  # zeros open to the background stay background
    mask = brain_mask(image)
    assert mask.sum() == 8**3 - 2 and mask[5:7, 5:7, 5:7].all() and not mask[2:4, 9, 9].any()
    normalized, stats = zscore_brain(image, mask)
    values = image[0][mask].astype(np.float64)  # 510 voxels: 8 zeros, one 8, the rest 4
    assert stats[0] == (values.mean(), values.std())
    assert values.mean() == pytest.approx((501 * 4 + 8) / 510, rel=1e-12)
    np.testing.assert_allclose(normalized[0, 5, 5, 5], -values.mean() / values.std(), rtol=1e-6)
    assert normalized[:, 2:4, 9, 9].tolist() == [[0, 0], [0, 0]] and normalized[:, 0].max() == 0


def test_zscore_constant_channel_does_not_divide_by_zero():
    image = np.full((1, 4, 4, 4), 7.0, dtype=np.float32)
    normalized, _ = zscore_brain(image, np.ones((4, 4, 4), dtype=bool))
    assert np.all(normalized == 0)


def test_zscore_gives_unit_variance_at_any_intensity_scale():
    """An absolute floor on the standard deviation (1e-8) left an image in units of 1e-12 unscaled: blank."""
    rng = np.random.default_rng(0)
    image = rng.uniform(50, 500, size=(1, 6, 6, 6))
    for scale in (1.0, 1e-12, 1e12):
        normalized, _ = zscore_brain(image * scale, np.ones((6, 6, 6), dtype=bool))
        assert normalized.std() == pytest.approx(1.0, rel=1e-5)
        np.testing.assert_allclose(normalized, zscore_brain(image, np.ones((6, 6, 6), dtype=bool))[0], atol=1e-5)


def test_mask_bounds_of_integer_volumes_and_their_union():
    from transunet3d.data.crop import mask_bounds, union_bounds

    labels = np.zeros((6, 7, 8), dtype=np.uint16)
    assert mask_bounds(labels) is None
    labels[1, 2, 3] = 5
    labels[4, 2, 6] = 1
    assert mask_bounds(labels) == ((1, 5), (2, 3), (3, 7))
    assert union_bounds(mask_bounds(labels), None, ((0, 2), (5, 6), (4, 5))) == ((0, 5), (2, 6), (3, 7))
    assert union_bounds(None, None) is None
