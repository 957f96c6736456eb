"""HD95 against DeepMind's surface-distance library (the code inside the official BraTS metrics)."""

import numpy as np
import pytest
from scipy import ndimage

from transunet3d.evaluation.surface import robust_hausdorff, surface_area_table, surface_distances


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
    # k-d tree and distance transform round the same Euclidean distance alike to within an ulp
    assert robust_hausdorff(surface_distances(gt, pred, spacing)) == pytest.approx(expected, rel=1e-12)


def test_single_voxel_surface_area_is_six_faces():
    voxel = np.zeros((3, 3, 3), dtype=bool)
    voxel[1, 1, 1] = True
    distances = surface_distances(voxel, voxel, (1.0, 1.0, 1.0))
    # Eight corner elements of sqrt(3)/8 each: the marching-cubes octahedron around one voxel.
    assert distances.gt_areas.sum() == pytest.approx(8 * np.sqrt(3) / 8)
    assert np.all(distances.gt_to_pred == 0)
    assert surface_area_table((1.0, 2.0, 3.0))[1] == pytest.approx(0.125 * np.sqrt(36 + 9 + 4))


def test_empty_mask_gives_infinite_distance():
    mask = np.zeros((4, 4, 4), dtype=bool)
    mask[1, 1, 1] = True
    assert robust_hausdorff(surface_distances(mask, np.zeros_like(mask), (1.0, 1.0, 1.0))) == np.inf
