"""Label schemes: regions from labels and back, on hand-made voxels."""

import numpy as np
import pytest

from transunet3d.data.labels import SCHEMES, label_scheme


@pytest.mark.parametrize("name", list(SCHEMES))
def test_every_label_survives_regions_and_back(name):
    scheme = label_scheme(name)
    seg = np.array(scheme.labels, dtype=np.uint8)
    assert np.array_equal(scheme.regions_to_labels(scheme.labels_to_regions(seg)), seg)


def test_2025_regions_hold_the_official_labels():
    scheme = label_scheme("brats-mets-2025")
    seg = np.array([0, 1, 2, 3, 4], dtype=np.uint8)
    masks = dict(zip(scheme.region_names, scheme.labels_to_regions(seg)))
    assert masks["WT"].tolist() == [False, True, True, True, False]
    assert masks["TC"].tolist() == [False, True, False, True, False]
    assert masks["ET"].tolist() == [False, False, False, True, False]
    assert masks["RC"].tolist() == [False, False, False, False, True]


def test_tumour_wins_over_a_cavity_predicted_at_the_same_voxel():
    scheme = label_scheme("brats-mets-2025")
    # voxels: cavity only; cavity + whole tumour; cavity + core; cavity + enhancing (nested); nothing
    wt = [0, 1, 1, 1, 0]
    tc = [0, 0, 1, 1, 0]
    et = [0, 0, 0, 1, 0]
    rc = [1, 1, 1, 1, 0]
    regions = np.array([wt, tc, et, rc], dtype=bool)
    assert scheme.regions_to_labels(regions).tolist() == [4, 2, 1, 3, 0]


def test_unknown_scheme_names_the_known_ones():
    with pytest.raises(KeyError, match="brats-mets-2023"):
        label_scheme("brats-gli-2024")


def test_wrong_region_count_is_refused():
    with pytest.raises(ValueError, match="expected 4 regions"):
        label_scheme("brats-mets-2025").regions_to_labels(np.zeros((3, 2), dtype=bool))


def test_the_tumour_regions_are_nested_and_the_cavity_stands_alone():
    scheme = label_scheme("brats-mets-2025")
    assert [inner for inner in scheme.region_names if scheme.encloses("WT", inner)] == ["WT", "TC", "ET"]
    assert [outer for outer in scheme.region_names if scheme.encloses(outer, "ET")] == ["WT", "TC", "ET"]
    assert [outer for outer in scheme.region_names if scheme.encloses(outer, "RC")] == ["RC"]
