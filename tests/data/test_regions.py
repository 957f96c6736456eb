import numpy as np

from transunet3d.data.regions import labels_to_regions, regions_to_labels


def test_labels_to_regions_by_hand():
    seg = np.array([0, 1, 2, 3], dtype=np.uint8)
    regions = labels_to_regions(seg)
    np.testing.assert_array_equal(regions, [[0, 1, 1, 1], [0, 1, 0, 1], [0, 0, 0, 1]])  # WT, TC, ET


def test_regions_round_trip_to_labels():
    seg = np.random.default_rng(0).integers(0, 4, size=(6, 7, 8)).astype(np.uint8)
    np.testing.assert_array_equal(regions_to_labels(labels_to_regions(seg)), seg)


def test_later_regions_overwrite_earlier():
    # ET without WT/TC (not nested) still becomes label 3; TC without ET becomes 1.
    regions = np.array([[[0]], [[1]], [[0]]], dtype=bool).reshape(3, 1)
    assert regions_to_labels(regions)[0] == 1
    regions = np.array([[0], [0], [1]], dtype=bool)
    assert regions_to_labels(regions)[0] == 3
