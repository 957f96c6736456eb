"""Thresholding, small-component and coreless-edema removal, and nesting of the predicted regions."""

import json
import re

import cc3d
import numpy as np
import pytest

from transunet3d.data.labels import label_scheme
from transunet3d.errors import UserError
from transunet3d.postprocessing.rules import (
    PostprocessSettings,
    drop_coreless_whole_tumour,
    min_component_voxels,
    remove_small_components,
    without_small_components,
)

ONE_MM = (1.0, 1.0, 1.0)


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
    kept = remove_small_components(regions, (5, 5, 5))
    assert kept[:, 15:, 15:, 15:].sum() == 0
    np.testing.assert_array_equal(kept[:, :10, :10, :10], regions[:, :10, :10, :10])


def test_a_core_smaller_than_the_limit_goes_but_its_whole_tumour_stays():
    regions = regions_with_a_big_and_a_small_lesion()
    kept = remove_small_components(regions, (2, 2, 2))
    assert kept[0, 15:, 15:, 15:].sum() == 4  # WT of 4 voxels survives
    assert kept[1:, 15:, 15:, 15:].sum() == 0  # its one-voxel TC and ET do not


def test_no_limit_changes_nothing():
    regions = regions_with_a_big_and_a_small_lesion()
    assert remove_small_components(regions, (0, 1, 0)) is regions


def test_component_size_from_the_voxel_volume():
    assert min_component_voxels(30.0, (2.0, 2.0, 2.0)) == 4  # 8 mm^3 voxels: 3.75 -> 4
    assert min_component_voxels(16.0, (2.0, 2.0, 2.0)) == 2
    assert min_component_voxels(0.0, (1.0, 1.0, 1.0)) == 0


def test_default_threshold_is_strictly_above_one_half():
    probabilities = np.zeros((3, 2, 2, 1), dtype=np.float32)
    probabilities[:, 0, 0, 0] = (0.9, 0.2, 0.1)  # edema only
    probabilities[:, 0, 1, 0] = (0.9, 0.8, 0.3)  # necrosis
    probabilities[:, 1, 0, 0] = (0.9, 0.8, 0.7)  # enhancing
    probabilities[:, 1, 1, 0] = (0.5, 0.5, 0.5)  # exactly one half: background
    np.testing.assert_array_equal(PostprocessSettings().labels(probabilities, ONE_MM)[..., 0], [[2, 1], [3, 0]])


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
    assert (PostprocessSettings().labels(probabilities, ONE_MM)[0:3] == 2).all()
    required = PostprocessSettings.uniform(require_core=True).labels(probabilities, ONE_MM)
    assert (required[0:3] == 0).all()
    np.testing.assert_array_equal(required[5:8, 0, 0], [2, 1, 2])


def test_each_region_has_its_own_threshold():
    probabilities = np.zeros((3, 4, 1, 1), dtype=np.float32)
    probabilities[:, 0, 0, 0] = (0.4, 0.5, 0.9)  # WT and ET, TC below its 0.6: enhancing
    probabilities[:, 1, 0, 0] = (0.35, 0.65, 0.7)  # WT and TC, ET below its 0.8: necrosis
    probabilities[:, 2, 0, 0] = (0.25, 0.9, 0.9)  # TC and ET without WT: labels grow WT around them
    probabilities[:, 3, 0, 0] = (0.3, 0.2, 0.1)  # exactly WT's threshold: background
    settings = PostprocessSettings((0.3, 0.6, 0.8), (0, 0, 0), False)
    np.testing.assert_array_equal(settings.labels(probabilities, ONE_MM)[:, 0, 0], [3, 1, 3, 0])


def three_lesions_along_x() -> np.ndarray:
    """Probabilities (3, 20, 1, 1): lesions A (x 0-2), B (x 6-11) and C (x 15-19), each with a core."""
    probabilities = np.zeros((3, 20, 1, 1), dtype=np.float32)
    probabilities[0, 0:3] = probabilities[1, 1] = 0.9  # A: WT 3 voxels, TC 1
    probabilities[0, 6:12] = probabilities[1, 7:11] = probabilities[2, 8:10] = 0.9  # B: WT 6, TC 4, ET 2
    probabilities[0, 15:20] = probabilities[1, 16:19] = probabilities[2, 17] = 0.9  # C: WT 5, TC 3, ET 1
    return probabilities


def test_minimum_sizes_per_region_are_volumes_in_the_voxel_spacing():
    settings = PostprocessSettings((0.5, 0.5, 0.5), (8.0, 5.0, 3.0), False)
    # 2 mm^3 voxels: WT needs 4 voxels (A goes), TC 3 (A's goes), ET 2 (C's goes, its core stays).
    labels = settings.labels(three_lesions_along_x(), (1.0, 1.0, 2.0))[:, 0, 0]
    expected = [0, 0, 0, 0, 0, 0, 2, 1, 3, 3, 1, 2, 0, 0, 0, 2, 1, 1, 1, 2]
    np.testing.assert_array_equal(labels, expected)
    # 1 mm^3 voxels: the same volumes need twice the voxels, so B's WT of 6 goes too, with its core.
    labels = settings.labels(three_lesions_along_x(), ONE_MM)[:, 0, 0]
    assert (labels[:15] == 0).all()


def test_a_dropped_whole_tumour_takes_its_core_even_when_the_core_has_no_limit():
    settings = PostprocessSettings((0.5, 0.5, 0.5), (8.0, 0.0, 0.0), False)
    labels = settings.labels(three_lesions_along_x(), (1.0, 1.0, 2.0))[:, 0, 0]
    assert (labels[0:3] == 0).all()  # A's WT is 6 mm^3 < 8: its one-voxel core goes with it
    np.testing.assert_array_equal(labels[15:20], [2, 1, 3, 1, 2])


def test_a_core_removed_for_its_size_leaves_a_coreless_whole_tumour_that_require_core_drops():
    probabilities = three_lesions_along_x()
    kept = PostprocessSettings((0.5, 0.5, 0.5), (0.0, 7.0, 0.0), False).labels(probabilities, (1.0, 1.0, 2.0))
    np.testing.assert_array_equal(kept[15:20, 0, 0], [2, 2, 2, 2, 2])  # C's core of 6 mm^3 goes, its edema stays
    cored = PostprocessSettings((0.5, 0.5, 0.5), (0.0, 7.0, 0.0), True).labels(probabilities, (1.0, 1.0, 2.0))
    assert (cored[0:3] == 0).all() and (cored[15:20] == 0).all()  # A and C have lost their cores
    np.testing.assert_array_equal(cored[6:12, 0, 0], [2, 1, 3, 3, 1, 2])


def test_uniform_settings_give_every_region_the_same_values():
    settings = PostprocessSettings.uniform(0.4, 10.0, True)
    assert settings == PostprocessSettings((0.4, 0.4, 0.4), (10.0, 10.0, 10.0), True)
    assert PostprocessSettings.uniform() == PostprocessSettings()


def test_json_round_trip():
    settings = PostprocessSettings((0.3, 0.55, 0.7), (0.0, 12.5, 40.0), True)
    data = json.loads(json.dumps(settings.to_json()))
    assert data["thresholds"] == {"WT": 0.3, "TC": 0.55, "ET": 0.7}
    assert PostprocessSettings.from_json(data) == settings


@pytest.mark.parametrize("change, message", [
    ({"thresholds": {"WT": 0.5, "TC": 1.0, "ET": 0.5}}, "thresholds.TC = 1.0 is not a finite number in (0, 1)"),
    ({"thresholds": {"WT": 0, "TC": 0.5, "ET": 0.5}}, "thresholds.WT = 0 is not"),
    ({"thresholds": {"WT": "0.5", "TC": 0.5, "ET": 0.5}}, "thresholds.WT = '0.5' is not a finite number"),
    ({"min_lesion_mm3": {"WT": 0, "TC": 0, "ET": -1}}, "min_lesion_mm3.ET = -1 is not a finite number >= 0"),
    ({"min_lesion_mm3": {"WT": 0, "TC": float("inf"), "ET": 0}}, "min_lesion_mm3.TC = inf is not a finite number >= 0"),
    ({"min_lesion_mm3": {"WT": 0, "TC": 0}}, "min_lesion_mm3 must give exactly the regions WT, TC, ET"),
    ({"thresholds": [0.5, 0.5, 0.5]}, "thresholds must give exactly the regions"),
    ({"require_core": "yes"}, "require_core must be true or false"),
    ({"threshold": 0.5}, "unknown key(s) threshold"),
])
def test_bad_settings_are_user_errors_that_name_the_problem(change, message):
    data = {**PostprocessSettings().to_json(), **change}
    with pytest.raises(UserError, match=re.escape(message)):
        PostprocessSettings.from_json(data)


def test_settings_that_are_not_an_object_are_a_user_error():
    with pytest.raises(UserError, match="expected an object, got list"):
        PostprocessSettings.from_json([0.5, 0.5, 0.5])


@pytest.mark.parametrize("min_voxels", [0, 1, 2, 5, 30])
def test_small_components_go_exactly_as_cc3d_dust_removes_them(min_voxels: int):
    mask = np.random.default_rng(min_voxels).random((17, 13, 11)) > 0.8
    expected = cc3d.dust(mask, threshold=min_voxels, connectivity=26)
    np.testing.assert_array_equal(without_small_components(mask, min_voxels), expected)
    np.testing.assert_array_equal(without_small_components(np.asfortranarray(mask), min_voxels), expected)


BRATS_2025 = label_scheme("brats-mets-2025")


def test_2025_settings_cover_the_cavity_and_the_tumour_is_written_over_it():
    settings = PostprocessSettings.uniform(scheme=BRATS_2025)
    assert settings.thresholds == (0.5,) * 4 and settings != PostprocessSettings()
    probabilities = np.zeros((4, 4, 1, 1), dtype=np.float32)
    probabilities[3, 0:3] = 0.9  # a cavity, ...
    probabilities[0, 1:3] = 0.9  # ... edema over part of it, ...
    probabilities[1:3, 2] = 0.9  # ... and an enhancing core over that
    np.testing.assert_array_equal(settings.labels(probabilities, ONE_MM)[:, 0, 0], [4, 2, 3, 0])
    with pytest.raises(ValueError, match="expected one value per region"):
        PostprocessSettings((0.5, 0.5, 0.5), (0.0, 0.0, 0.0), False, BRATS_2025)


def test_the_core_rule_and_small_components_leave_the_cavity_to_its_own_settings():
    regions = np.zeros((4, 20, 20, 20), dtype=bool)
    regions[:3] = regions_with_a_big_and_a_small_lesion()
    regions[0, 10:13, 2:5, 2:5] = True  # coreless edema: dropped by the core rule
    regions[3, 12:18, 2:8, 2:8] = True  # a cavity beside it, touching it, without any core
    regions[3, 2, 15, 15] = True  # a one-voxel cavity
    cored = drop_coreless_whole_tumour(regions, BRATS_2025)
    assert not cored[0, 10:13, 2:5, 2:5].any()
    np.testing.assert_array_equal(cored[3], regions[3])
    kept = remove_small_components(regions, (5, 2, 2, 2), BRATS_2025)  # RC is not cut to ET, only by its limit
    expected = regions[3].copy()
    expected[2, 15, 15] = False
    np.testing.assert_array_equal(kept[3], expected)
    assert not kept[:, 15:17, 15:17, 15].any()  # the small tumour, its core with it


def test_2025_settings_read_back_and_need_the_cavity():
    settings = PostprocessSettings((0.3, 0.5, 0.6, 0.7), (0.0, 5.0, 10.0, 20.0), True, BRATS_2025)
    data = json.loads(json.dumps(settings.to_json()))
    assert data["thresholds"] == {"WT": 0.3, "TC": 0.5, "ET": 0.6, "RC": 0.7}
    assert PostprocessSettings.from_json(data, BRATS_2025) == settings
    with pytest.raises(UserError, match="thresholds must give exactly the regions WT, TC, ET, RC"):
        PostprocessSettings.from_json(PostprocessSettings().to_json(), BRATS_2025)
