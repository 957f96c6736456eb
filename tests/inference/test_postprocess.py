"""Thresholding, small-component and coreless-edema removal, and nesting of the predicted regions."""

import numpy as np

from transunet3d.inference.postprocess import (
    drop_coreless_whole_tumour,
    labels_from_probabilities,
    min_component_voxels,
    remove_small_components,
)


def regions_with_a_big_and_a_small_lesion() -> np.ndarray:
    regions = np.zeros((3, 20, 20, 20), dtype=bool)
    regions[0, 2:8, 2:8, 2:8] = True  # big lesion: 216 voxels of WT
    regions[1, 3:7, 3:7, 3:7] = True
    regions[2, 4:6, 4:6, 4:6] = True
    regions[0, 15:17, 15:17, 15] = True  # small lesion: 4 voxels of WT with 1 of ET inside
    regions[1, 15, 15, 15] = regions[2, 15, 15, 15] = True
    return regions


def test_small_components_are_dropped_with_what_they_contain():
    regions = regions_with_a_big_and_a_small_lesion()
    kept = remove_small_components(regions, min_voxels=5)
    assert kept[:, 15:, 15:, 15:].sum() == 0
    np.testing.assert_array_equal(kept[:, :10, :10, :10], regions[:, :10, :10, :10])


def test_a_core_smaller_than_the_limit_goes_but_its_whole_tumour_stays():
    regions = regions_with_a_big_and_a_small_lesion()
    kept = remove_small_components(regions, min_voxels=2)
    assert kept[0, 15:, 15:, 15:].sum() == 4  # WT of 4 voxels survives
    assert kept[1:, 15:, 15:, 15:].sum() == 0  # its one-voxel TC and ET do not


def test_no_limit_changes_nothing():
    regions = regions_with_a_big_and_a_small_lesion()
    assert remove_small_components(regions, 0) is regions


def test_component_size_from_the_voxel_volume():
    assert min_component_voxels(30.0, (2.0, 2.0, 2.0)) == 4  # 8 mm^3 voxels: 3.75 -> 4
    assert min_component_voxels(16.0, (2.0, 2.0, 2.0)) == 2
    assert min_component_voxels(0.0, (1.0, 1.0, 1.0)) == 0


def test_labels_from_probabilities_threshold_strictly_above_one_half():
    probabilities = np.zeros((3, 2, 2, 1), dtype=np.float32)
    probabilities[:, 0, 0, 0] = (0.9, 0.2, 0.1)  # edema only
    probabilities[:, 0, 1, 0] = (0.9, 0.8, 0.3)  # necrosis
    probabilities[:, 1, 0, 0] = (0.9, 0.8, 0.7)  # enhancing
    probabilities[:, 1, 1, 0] = (0.5, 0.5, 0.5)  # exactly one half: background
    np.testing.assert_array_equal(labels_from_probabilities(probabilities)[..., 0], [[2, 1], [3, 0]])


def test_whole_tumour_without_core_is_dropped_and_cored_ones_stay_whole():
    regions = regions_with_a_big_and_a_small_lesion()
    regions[0, 10:13, 2:5, 2:5] = True  # edema only: 27 voxels, no core
    regions[0, 2:8, 8, 2:8] = True  # edema attached to the big lesion: same component, kept
    kept = drop_coreless_whole_tumour(regions)
    assert kept[0, 10:13, 2:5, 2:5].sum() == 0
    expected = regions.copy()
    expected[0, 10:13, 2:5, 2:5] = False
    np.testing.assert_array_equal(kept, expected)


def test_a_core_outside_the_whole_tumour_does_not_rescue_a_component():
    regions = np.zeros((3, 6, 6, 6), dtype=bool)
    regions[0, 0:2, 0:2, 0:2] = True  # edema only
    regions[1, 4, 4, 4] = True  # a stray core voxel, not inside any WT
    assert not drop_coreless_whole_tumour(regions)[0].any()


def test_labels_keep_coreless_edema_unless_a_core_is_required():
    probabilities = np.zeros((3, 8, 4, 1), dtype=np.float32)
    probabilities[0, 0:3] = 0.9  # edema only
    probabilities[0, 5:8] = 0.9  # edema around a necrotic core
    probabilities[1, 6] = 0.9
    assert (labels_from_probabilities(probabilities)[0:3] == 2).all()
    required = labels_from_probabilities(probabilities, require_core=True)
    assert (required[0:3] == 0).all()
    np.testing.assert_array_equal(required[5:8, 0, 0], [2, 1, 2])
