"""The pieces of the BraTS 2025 rules on hand-built cases whose numbers follow by hand (no official package)."""

import math

import numpy as np
import pytest
from scipy import ndimage

from transunet3d.evaluation import border
from transunet3d.evaluation.border import (
    border_voxels,
    hd95,
    hd95_needs_all,
    normalized_surface_dice,
    percentile95,
)
from transunet3d.evaluation.brats2025 import (
    MISSED_HD95,
    ReferenceLesion,
    _region_mask,
    parse_lesions,
    score_region_2025,
)
from transunet3d.evaluation.matching import components, match_components
from transunet3d.evaluation.surface import NearestCorner


def line(shape, *runs) -> np.ndarray:
    """Labels along axis 0 of a (N, 1, 1) array: runs of (start, stop, label)."""
    labels = np.zeros(shape, dtype=np.int32)
    for start, stop, label in runs:
        labels[start:stop] = label
    return labels.reshape(-1, 1, 1)


@pytest.mark.parametrize("seed", range(6))
def test_border_voxels_are_the_mask_minus_its_6_connected_erosion(seed):
    rng = np.random.default_rng(seed)
    mask = np.asfortranarray(ndimage.gaussian_filter(rng.random((13, 17, 11)), 1.5) > 0.5)
    mask[0, 3, 4] = mask[-1, -1, -1] = True  # on the array's faces: outside counts as background
    expected = mask ^ ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(3, 1))
    padded = tuple(n + 4 for n in mask.shape)  # border_voxels gives flat indices into the mask padded by 2
    found = np.stack(np.unravel_index(border_voxels(mask, pad=2), padded, order="F"), axis=1) - 2
    assert sorted(map(tuple, found)) == sorted(map(tuple, np.argwhere(expected)))


def test_nearest_distances_all_against_all_equal_the_k_d_tree():
    rng = np.random.default_rng(0)
    points, targets = rng.integers(0, 30, (40, 3)), rng.integers(0, 30, (30, 3))
    spacing = (0.8594, 0.8594, 1.5)
    small = NearestCorner(targets, spacing).distances(points)  # 1200 pairs: the full table
    large = NearestCorner(targets, spacing).distances(np.repeat(points, 20, axis=0))[::20]  # 24000 pairs: the tree
    assert np.array_equal(small, large)
    steps = (targets[None] - points[:, None]) * np.asarray(spacing)
    np.testing.assert_allclose(small, np.sqrt((steps**2).sum(axis=2)).min(axis=1), rtol=1e-15)


def test_matching_maximises_the_summed_dice_not_the_best_pair():
    """Greedy matching would pair R1 with P1 (Dice 20/34) and leave R2 unmatched; the optimum pairs R1 with P2
    (16/28) and R2 with P1 (8/18), a larger sum."""
    reference = line(40, (0, 20, 1), (20, 24, 2))
    prediction = line(40, (0, 8, 2), (8, 18, 1), (20, 24, 1))
    matching = match_components(np.asfortranarray(reference), 2, np.asfortranarray(prediction), 2)
    assert matching.pairs == {1: 2, 2: 1}
    assert matching.dice == {1: 16 / 28, 2: 8 / 18}
    assert matching.false_positives == ()


def test_one_prediction_over_two_lesions_is_matched_once_and_a_split_one_leaves_a_false_positive():
    reference = line(60, (0, 10, 1), (12, 16, 2), (30, 45, 3))
    prediction = line(60, (0, 16, 1), (30, 35, 2), (37, 45, 3))
    matching = match_components(np.asfortranarray(reference), 3, np.asfortranarray(prediction), 3)
    assert matching.pairs == {1: 1, 3: 3}  # Dice 20/26 beats 8/20; 16/23 beats 10/20
    assert matching.false_positives == (2,)


def test_components_are_26_connected_and_numbered_in_fortran_order():
    mask = np.zeros((4, 4, 4), dtype=bool)
    mask[3, 0, 0] = mask[0, 3, 0] = True  # in Fortran order (x fastest) (3, 0, 0) comes first; in C order, last
    mask[1, 1, 1] = mask[2, 2, 2] = True  # touching only by a corner: one component
    labels, count = components(mask)
    assert count == 3
    assert (labels[3, 0, 0], labels[0, 3, 0], labels[1, 1, 1], labels[2, 2, 2]) == (1, 2, 3, 3)


def test_lesion_distances_use_the_voxel_size_of_the_axes_in_reverse_order():
    """The official package reads (z, y, x) arrays with an (x, y, z) spacing. Two 2-voxel lesions overlapping by
    one voxel, with voxels of 1 x 1 x 0.5 mm: shifted along axis 0 they are 0.5 mm apart (the z size), shifted
    along axis 2, 1 mm (the x size). NSD's tolerance is the smallest voxel size, 0.5 mm."""
    spacing = (1.0, 1.0, 0.5)
    ref, pred = np.zeros((5, 3, 5), bool), np.zeros((5, 3, 5), bool)
    ref[1:3, 1, 1], pred[2:4, 1, 1] = True, True
    along_0 = score_region_2025(pred, ref, spacing).lesions[0]
    assert (along_0.dice, along_0.nsd, along_0.hd95) == (0.5, 1.0, 0.5)
    ref[:], pred[:] = False, False
    ref[1, 1, 1:3], pred[1, 1, 2:4] = True, True
    scores = score_region_2025(pred, ref, spacing)
    along_2 = scores.lesions[0]
    assert (along_2.dice, along_2.nsd, along_2.hd95) == (0.5, 0.5, 1.0)
    # Global metrics are taken without the voxel size: in voxels, NSD within 0.5 voxel.
    q = scores.quantities
    assert (q["global_dsc"], q["global_hd95"], q["global_nsd"]) == (0.5, 1.0, 0.5)
    # 2 voxels of 0.5 mm^3: a small lesion, detected (Dice 0.5 >= 0.2); no large lesion, so no lesion-wise means.
    assert (q["small_instance_tp"], q["small_instance_fn"], q["small_instance_f1"]) == (1, 0, 1.0)
    assert math.isnan(q["lesionwise_dsc_mean"]) and math.isnan(q["large_instance_tp"])


def test_hd95_interpolates_the_pooled_distances_and_nsd_weighs_each_side_by_its_voxels():
    to_pred, to_ref = np.array([0.0, 0.0, 3.0]), np.array([0.0, 1.0])
    assert hd95(to_pred, to_ref) == pytest.approx(3.0 - 0.2 * 2.0)  # sorted 0 0 0 1 3, position 3.8
    # Within 1 mm: 2 of 3 reference voxels, 2 of 2 predicted ones.
    assert normalized_surface_dice(to_pred, to_ref, 1.0) == pytest.approx((2 / 3 + 1) / (2 / 3 + 1 + 1 / 3))


@pytest.mark.parametrize("count", [1, 2, 3, 20, 21, 39, 40, 41, 199, 1000, 4321])
def test_percentile95_is_numpy_s_to_the_bit(count):
    rng = np.random.default_rng(count)
    for values in (rng.random(count) * 40, np.sqrt(rng.integers(0, 30, count).astype(np.float64)),
                   np.full(count, 2.5), np.r_[rng.random(count) * 9, np.full(count // 25, np.inf)]):
        expected = float(np.percentile(values, 95))
        assert percentile95(values) == expected or (math.isnan(expected) and math.isnan(percentile95(values)))


@pytest.mark.parametrize("values", [(1, 2, 3), (1, 3), (3,), (4,), (0,), (0, 1), (2, 3, 5), (254, 255), (1, 2, 4, 5)])
def test_region_masks_by_runs_of_labels_equal_isin(values):
    labels = np.asfortranarray(np.random.default_rng(3).integers(0, 256, (9, 10, 11)).astype(np.uint8) % 7)
    labels[0, 0, :2] = 254, 255
    mask = _region_mask(labels, values)
    assert mask.dtype == bool and mask.flags.f_contiguous and np.array_equal(mask, np.isin(labels, values))


def test_hd95_needs_the_far_distances_only_when_its_rank_reaches_them():
    distances = np.arange(100.0)  # ranks 94 and 95 are interpolated: 94.05
    open_top = distances.copy()
    open_top[97:] = np.inf
    assert not hd95_needs_all(open_top) and hd95(open_top, np.zeros(0)) == hd95(distances, np.zeros(0))
    open_top[95:] = np.inf
    assert hd95_needs_all(open_top)
    assert hd95_needs_all(np.array([np.inf])) and not hd95_needs_all(np.array([1.0]))


def _border(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(3, 1), border_value=0)


def _hd95_and_nsd_by_distance_transform(ref, pred, spacing, tolerance):
    """HD95 and NSD from every border voxel's distance, taken from a distance transform as the package does."""
    ref_border, pred_border = _border(ref), _border(pred)
    to_pred = ndimage.distance_transform_edt(~pred_border, sampling=spacing)[ref_border]
    to_ref = ndimage.distance_transform_edt(~ref_border, sampling=spacing)[pred_border]
    return hd95(to_pred, to_ref), normalized_surface_dice(to_pred, to_ref, tolerance)


def _balls(shape, centres_and_radii, spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    mask = np.zeros(shape, dtype=bool)
    for centre, radius in centres_and_radii:
        mask |= sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, spacing)) <= radius**2
    return np.asfortranarray(mask)


@pytest.mark.parametrize("seed", range(4))
def test_hd95_from_a_few_searched_far_voxels_equals_the_distance_transform_s(seed, monkeypatch):
    """Missed lesions leave thousands of border voxels beyond the grid's reach; only those the 95th percentile
    reads are searched (`settle_for_hd95`), and the global and lesion-wise HD95 and NSD stay exactly the
    distance transform's."""
    bounded = []
    bounds = border._Opened.bounds
    monkeypatch.setattr(border._Opened, "bounds", lambda self: bounded.append(len(self.points)) or bounds(self))
    rng = np.random.default_rng(seed)
    shape = (96, 84, 72)
    spacing = (1.0, 1.0, 1.0) if seed % 2 else (0.9, 1.1, 1.6)
    centres = [tuple(int(rng.integers(14, n - 14)) for n in shape) for _ in range(5)]
    radii = rng.uniform(6.0, 12.0, size=5)
    ref = _balls(shape, list(zip(centres[:4], radii[:4])))
    pred = _balls(shape, [(tuple(c + 1 for c in centres[0]), radii[0] * 0.8),  # found, smaller and shifted
                          (centres[4], radii[4])])  # a false positive; the other three are missed
    scores = score_region_2025(pred, ref, spacing)
    q = scores.quantities
    expected_hd95, expected_nsd = _hd95_and_nsd_by_distance_transform(ref, pred, (1.0, 1.0, 1.0), 0.5)
    assert (q["global_hd95"], q["global_nsd"]) == (expected_hd95, expected_nsd)
    ref_labels, _ = components(ref)
    pred_labels, _ = components(pred)
    for lesion_row in scores.lesions:
        if lesion_row.matched:
            expected = _hd95_and_nsd_by_distance_transform(
                ref_labels == lesion_row.label, pred_labels == lesion_row.matched[0], spacing[::-1],
                min(spacing))
            assert (lesion_row.hd95, lesion_row.nsd) == expected
    assert max(bounded) > border._SEARCH_ALL  # the sampled bounds were used, not only the search of everything


def test_hd95_when_only_the_reference_has_far_voxels(monkeypatch):
    """One lesion found exactly and three missed: thousands of the reference's border voxels lie beyond the
    grid's reach, none of the prediction's; the reference's are bounded, the prediction's side has none."""
    bounded = []
    bounds = border._Opened.bounds
    monkeypatch.setattr(border._Opened, "bounds", lambda self: bounded.append(len(self.points)) or bounds(self))
    shape = (96, 84, 72)
    balls = [((20, 20, 20), 10.0), ((70, 60, 50), 11.0), ((25, 62, 48), 9.0), ((72, 22, 24), 8.0)]
    ref, pred = _balls(shape, balls), _balls(shape, balls[:1])
    scores = score_region_2025(pred, ref, (1.0, 1.0, 1.0))
    expected_hd95, expected_nsd = _hd95_and_nsd_by_distance_transform(ref, pred, (1.0, 1.0, 1.0), 0.5)
    assert (scores.quantities["global_hd95"], scores.quantities["global_nsd"]) == (expected_hd95, expected_nsd)
    assert sorted(bounded)[0] == 0 and max(bounded) > border._SEARCH_ALL


def lesion(volume, dice=None, nsd=0.0, hd=0.0):
    if dice is None:
        return ReferenceLesion(0, volume, (), 0.0, 0.0, MISSED_HD95)
    return ReferenceLesion(0, volume, (1,), dice, nsd, hd)


def test_the_parser_s_aggregation_by_hand():
    """Large lesions (>= 27 mm^3): Dice 0.9 and 0.1 (matched below 0.2: not detected), one missed; small ones:
    Dice 0.5, 0.1 and one missed; two false positives, which count for both sizes and score 0, 0, 373."""
    lesions = [lesion(30, 0.9, 0.8, 2.0), lesion(27, 0.1, 0.3, 10.0), lesion(5, 0.5, 0.9, 1.0),
               lesion(26.9, 0.1, 0.2, 3.0), lesion(100), lesion(1)]
    q = parse_lesions(lesions, n_ref=6, n_pred=6)
    assert q["lesionwise_dsc_mean"] == pytest.approx((0.9 + 0.1) / 5)
    assert q["lesionwise_nsd_mean"] == pytest.approx((0.8 + 0.3) / 5)
    assert q["lesionwise_hd95_mean"] == pytest.approx((2 + 10 + 3 * 373) / 5)
    assert q["lesionwise_dsc_std"] == pytest.approx(np.std([0.9, 0.1, 0, 0, 0]))
    large = [q[f"large_instance_{n}"] for n in ("tp", "fp", "fn", "prec", "rec", "f1")]
    small = [q[f"small_instance_{n}"] for n in ("tp", "fp", "fn", "prec", "rec", "f1")]
    assert large == [1, 2, 2, pytest.approx(1 / 3), pytest.approx(1 / 3), pytest.approx(2 / 6)]
    assert small == [1, 2, 2, pytest.approx(1 / 3), pytest.approx(1 / 3), pytest.approx(2 / 6)]
    every = [q[f"all_instance_{n}"] for n in ("tp", "fp", "fn", "prec", "rec", "f1")]
    assert every == [4, 2, 2, pytest.approx(4 / 6), pytest.approx(4 / 6), pytest.approx(4 / 6)]


def test_edge_cases_by_hand():
    empty = np.zeros((6, 6, 6), bool)
    cube = empty.copy()
    cube[1:4, 1:4, 1:4] = True  # 27 voxels: large
    nothing = score_region_2025(empty, empty, (1.0, 1.0, 1.0)).quantities
    assert (nothing["all_instance_tp"], nothing["all_instance_fp"], nothing["all_instance_fn"]) == (0, 0, 0)
    counts = {"all_instance_tp", "all_instance_fp", "all_instance_fn"}
    assert all(math.isnan(value) for name, value in nothing.items() if name not in counts)
    only_pred = score_region_2025(cube, empty, (1.0, 1.0, 1.0)).quantities
    assert (only_pred["all_instance_fp"], only_pred["all_instance_prec"], only_pred["all_instance_f1"]) == (1, 0, 0)
    assert math.isnan(only_pred["all_instance_rec"]) and math.isnan(only_pred["lesionwise_dsc_mean"])
    assert (only_pred["global_dsc"], only_pred["global_nsd"], only_pred["global_hd95"]) == (0.0, 0.0, 373.0)
    only_ref = score_region_2025(empty, cube, (1.0, 1.0, 1.0)).quantities
    assert (only_ref["all_instance_fn"], only_ref["all_instance_rec"], only_ref["all_instance_f1"]) == (1, 0, 0)
    assert math.isnan(only_ref["all_instance_prec"])
    assert (only_ref["lesionwise_dsc_mean"], only_ref["lesionwise_hd95_mean"], only_ref["large_instance_fn"]) == (
        0.0, 373.0, 1)
    assert (only_ref["global_dsc"], only_ref["global_hd95"]) == (0.0, 373.0)
    perfect = score_region_2025(cube, cube, (1.0, 1.0, 1.0)).quantities
    assert (perfect["lesionwise_dsc_mean"], perfect["lesionwise_nsd_mean"], perfect["lesionwise_hd95_mean"]) == (
        1.0, 1.0, 0.0)
    assert (perfect["global_dsc"], perfect["global_nsd"], perfect["global_hd95"]) == (1.0, 1.0, 0.0)
