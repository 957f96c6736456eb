"""HD95 against DeepMind's surface-distance library (the code inside the official BraTS metrics)."""

import cc3d
import numpy as np
import pytest
from scipy import ndimage

from transunet3d.evaluation import surface
from transunet3d.evaluation.surface import (
    DirectedPercentiles,
    NearestCorner,
    Surface,
    component_surfaces,
    robust_hausdorff,
    surface_area_table,
    surface_of,
    weighted_percentile,
)


@pytest.fixture
def reference_metrics(monkeypatch):
    """The library's own functions, patched for NumPy 2 / current SciPy names (np.Inf, ndimage.filters)."""
    monkeypatch.setattr(np, "Inf", np.inf, raising=False)
    monkeypatch.setattr(ndimage, "filters", ndimage, raising=False)
    monkeypatch.setattr(ndimage, "morphology", ndimage, raising=False)
    from surface_distance import metrics

    return metrics


@pytest.mark.parametrize("seed", range(12))
def test_hd95_equals_the_library_on_random_blobs(reference_metrics, seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(12, 30, size=3))
    gt = ndimage.gaussian_filter(rng.random(shape), 2) > 0.52
    pred = ndimage.gaussian_filter(rng.random(shape), 2) > 0.52
    spacing = tuple(float(s) for s in rng.choice([0.5, 0.859375, 0.9, 1.0, 1.2, 1.5, 3.0], 3))
    expected = reference_metrics.compute_robust_hausdorff(
        reference_metrics.compute_surface_distances(gt, pred, spacing), 95)
    assert robust_hausdorff(gt, pred, spacing) == expected


def test_single_voxel_surface_area_is_six_faces():
    voxel = np.zeros((3, 3, 3), dtype=bool)
    voxel[1, 1, 1] = True
    surface = surface_of(voxel, (1.0, 1.0, 1.0))
    # Eight corner elements of sqrt(3)/8 each: the marching-cubes octahedron around one voxel.
    assert surface.areas.sum() == pytest.approx(8 * np.sqrt(3) / 8)
    assert robust_hausdorff(voxel, voxel, (1.0, 1.0, 1.0)) == 0.0
    assert surface_area_table((1.0, 2.0, 3.0))[1] == pytest.approx(0.125 * np.sqrt(36 + 9 + 4))


def test_empty_mask_gives_infinite_distance():
    mask = np.zeros((4, 4, 4), dtype=bool)
    mask[1, 1, 1] = True
    assert robust_hausdorff(mask, np.zeros_like(mask), (1.0, 1.0, 1.0)) == np.inf


def test_component_surfaces_are_the_pieces_of_the_whole_surface():
    labels = np.zeros((10, 10, 10), dtype=np.uint16)
    labels[0:3, 1:3, 1:3] = 1  # touches the volume border
    labels[6:9, 6:10, 6:9] = 2
    spacing = (1.0, 2.0, 1.5)
    parts = component_surfaces(labels, cc3d.statistics(labels)["bounding_boxes"], spacing)
    whole = surface_of(labels > 0, spacing)
    joined = Surface.join(list(parts.values()))
    assert sorted(zip(map(tuple, joined.corners), joined.areas)) == sorted(zip(map(tuple, whole.corners), whole.areas))
    for label, part in parts.items():
        alone = surface_of(labels == label, spacing)
        assert sorted(zip(map(tuple, part.corners), part.areas)) == sorted(zip(map(tuple, alone.corners), alone.areas))


@pytest.mark.parametrize("seed", range(6))
def test_lesion_and_legacy_hd95_equal_the_library_on_many_lesions(reference_metrics, seed):
    from transunet3d.evaluation import score_region

    rng = np.random.default_rng(100 + seed)
    shape = (40, 36, 30)
    gt = ndimage.gaussian_filter(rng.random(shape), 1.5) > 0.56
    pred = ndimage.gaussian_filter(rng.random(shape), 1.5) > 0.56
    spacing = (1.0, 0.9, 1.5)
    scores = score_region(pred, gt, spacing)

    def library_hd95(a, b):
        value = reference_metrics.compute_robust_hausdorff(reference_metrics.compute_surface_distances(a, b, spacing),
                                                           95)
        return 374.0 if np.isinf(value) else value

    assert len(scores.lesions) > 3
    assert scores.legacy_hd95 == library_hd95(gt, pred)
    for lesion in scores.lesions:
        matched = np.isin(scores.pred_components, lesion.matched)
        assert lesion.hd95 == library_hd95(scores.gt_lesions == lesion.label, matched)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.859375, 0.859375, 1.5), (1.0, 1.0, 3.0)])
def test_the_percentile_of_a_large_surface_equals_the_full_search(spacing, monkeypatch):
    """The sampled search (a surface of more than 20 000 corners), prepared once, gives the percentile of every
    distance to each of two targets, and decides it itself (without falling back to searching everything)."""
    answers = _sampled_answers(monkeypatch)
    rng = np.random.default_rng(7)
    shape = (90, 90, 70)
    large = ndimage.gaussian_filter(rng.random(shape), 3) > 0.5  # a big false-positive region, many pieces
    points = surface_of(large, spacing)
    assert len(points.corners) > 20_000
    percentiles = DirectedPercentiles(points, spacing)
    for box in (np.s_[40:46, 20:27, 30:34], np.s_[2:5, 80:88, 60:69]):
        small = np.zeros(shape, dtype=bool)
        small[box] = True
        search = NearestCorner(surface_of(small, spacing).corners, spacing)
        full = search.distances(points.corners)
        for percent in (50.0, 95.0, 99.0):
            assert percentiles.of(search, percent) == weighted_percentile(full, points.areas, percent)
    assert len(answers) == 6 and None not in answers


def _sampled_answers(monkeypatch) -> list:
    """What the sampled search decides on each call (None: not trusted, every point searched)."""
    answers = []
    decide = surface._decided_percentile
    monkeypatch.setattr(surface, "_decided_percentile", lambda *args: answers.append(decide(*args)) or answers[-1])
    return answers


def test_a_percentile_that_rounding_could_move_is_searched_in_full(monkeypatch):
    """Equal areas, 20 000 + 20 points: the cumulative area reaches 0.95 exactly, where the order of summation
    decides the position, so the sampled answer is not trusted and every point is searched."""
    answers = _sampled_answers(monkeypatch)
    points = np.stack(np.unravel_index(np.arange(20_020), (143, 140, 1)), axis=1)
    areas = np.ones(len(points))
    search = NearestCorner(np.array([[0, 0, 0], [200, 3, 0]]), (1.0, 1.0, 1.0))
    percentile = DirectedPercentiles(Surface(points, areas), (1.0, 1.0, 1.0)).of(search)
    assert percentile == weighted_percentile(search.distances(points), areas)
    assert answers == [None]


def test_lesion_hd95_of_a_large_false_positive_region_equals_the_library(reference_metrics):
    from transunet3d.evaluation import score_region

    rng = np.random.default_rng(3)
    shape = (80, 84, 64)
    spacing = (1.0, 0.9, 1.2)
    gt = np.zeros(shape, dtype=bool)
    gt[10:16, 10:17, 10:15] = gt[60:70, 50:58, 40:49] = gt[30:33, 70:73, 20:23] = True
    pred = (ndimage.gaussian_filter(rng.random(shape), 2) > 0.5) | ndimage.binary_dilation(gt, iterations=2)
    scores = score_region(pred, gt, spacing)
    assert len(surface_of(pred, spacing).corners) > 20_000

    def library_hd95(a, b):
        return reference_metrics.compute_robust_hausdorff(reference_metrics.compute_surface_distances(a, b, spacing),
                                                          95)

    assert scores.legacy_hd95 == library_hd95(gt, pred)
    for lesion in scores.lesions:
        matched = np.isin(scores.pred_components, lesion.matched)
        assert lesion.hd95 == library_hd95(scores.gt_lesions == lesion.label, matched)
