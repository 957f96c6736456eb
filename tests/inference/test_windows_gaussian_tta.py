"""Window grid, Gaussian importance map and TTA views: hand-computed values and exact invariances."""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from transunet3d.inference.gaussian import MIN_WEIGHT, gaussian_importance
from transunet3d.inference.tta import View, tta_views
from transunet3d.inference.windows import padding_to_patch, window_grid, window_starts


@pytest.mark.parametrize(("size", "patch", "step", "expected"), [
    (128, 128, 0.5, [0]),
    (155, 128, 0.5, [0, 27]),  # nnU-Net: ceil(27 / 64) + 1 = 2 windows
    (240, 128, 0.5, [0, 56, 112]),
    (128, 64, 0.5, [0, 32, 64]),
    (100, 64, 0.5, [0, 18, 36]),  # 36 / 2 = 18 exactly
    (69, 64, 0.5, [0, 5]),
    (71, 64, 0.25, [0, 7]),
])
def test_window_starts_hand_computed(size, patch, step, expected):
    assert window_starts(size, patch, step) == expected


@pytest.mark.parametrize("step", [0.25, 0.5, 0.7, 1.0])
def test_window_grid_is_mirror_symmetric_and_covers_the_axis(step):
    for size in range(64, 300, 7):
        starts = window_starts(size, 64, step)
        assert starts == [size - 64 - s for s in reversed(starts)], size
        assert starts[0] == 0 and starts[-1] == size - 64
        assert max((b - a for a, b in itertools.pairwise(starts)), default=0) <= step * 64 + 1  # rounding


@pytest.mark.parametrize("step", [1e-5, 1e-3, 0.005])
def test_a_step_under_a_voxel_gives_each_start_once(step):
    """1e-5 gave 32814 starts along a 170-voxel axis, 43 of them distinct: 3.5e13 windows for a volume."""
    starts = window_starts(170, 128, step)
    assert starts == list(range(43))


def test_window_starts_rejects_a_volume_smaller_than_the_patch():
    with pytest.raises(ValueError, match="smaller than the patch"):
        window_starts(50, 64, 0.5)


def test_window_grid_is_the_product_of_the_axis_grids():
    windows = window_grid((128, 96, 64), (64, 64, 64), 0.5)
    assert len(windows) == 3 * 2 * 1
    assert windows[-1] == (slice(64, 128), slice(32, 96), slice(0, 64))


def test_padding_centres_a_small_volume_in_the_patch():
    assert padding_to_patch((50, 64, 80), (64, 64, 64)) == [(7, 7), (0, 0), (0, 0)]
    assert padding_to_patch((63, 1, 64), (64, 64, 64)) == [(0, 1), (31, 32), (0, 0)]


def test_gaussian_has_sigma_of_one_eighth_of_the_patch():
    weights = gaussian_importance((65, 65, 65))  # odd: the centre is a voxel
    centre = weights[32, 32, 32]
    assert weights.argmax() == 32 * 65 * 65 + 32 * 65 + 32
    sigma = 65 / 8
    offset = 8  # voxels from the centre along x
    assert math.isclose(weights[32 + offset, 32, 32] / centre, math.exp(-offset**2 / (2 * sigma**2)), rel_tol=1e-5)


def test_gaussian_is_symmetric_and_clamped():
    weights = gaussian_importance((64, 64, 48))
    for axis in range(3):
        torch.testing.assert_close(weights, torch.flip(weights, [axis]), rtol=0, atol=0)
    cube = gaussian_importance((32, 32, 32))
    torch.testing.assert_close(cube, cube.permute(1, 0, 2), rtol=0, atol=0)
    assert float(weights.min()) == pytest.approx(MIN_WEIGHT)
    assert float(weights.max()) < 1.0 and float(weights.max()) > 0.99


def test_tta_view_counts_and_identity_first():
    assert tta_views("none") == [View()]
    assert len(tta_views("flip")) == 8 and len(tta_views("flip+rot")) == 16
    assert tta_views("flip")[0] == View() and tta_views("flip+rot")[0] == View()
    with pytest.raises(ValueError, match="unknown TTA mode"):
        tta_views("rot")


def test_views_are_distinct_and_contain_the_axial_rotations():
    volume = torch.arange(4 * 4 * 3, dtype=torch.float32).reshape(1, 4, 4, 3)
    seen = [view.apply(volume) for view in tta_views("flip+rot")]
    assert len({tuple(t.flatten().tolist()) for t in seen}) == 16
    for turns in (1, 2, 3):
        rotated = torch.rot90(volume, turns, (-3, -2))
        assert any(torch.equal(rotated, t) for t in seen), turns


@pytest.mark.parametrize("view", tta_views("flip+rot"))
def test_each_view_is_inverted_exactly(view: View):
    volume = torch.randn(2, 3, 6, 6, 5)
    assert torch.equal(view.invert(view.apply(volume)), volume)


def test_the_nnunet_weighting_is_nnunet_s_filtered_delta():
    """nnU-Net v2's compute_gaussian, restated: a delta at side // 2 blurred by scipy with sigma = side / 8, scaled
    to 1 at its peak (nnU-Net then only replaces weights that underflow to 0)."""
    patch = (32, 24, 40)
    delta = np.zeros(patch)
    delta[tuple(side // 2 for side in patch)] = 1
    expected = ndimage.gaussian_filter(delta, [side / 8 for side in patch], mode="constant", cval=0)
    expected /= expected.max()
    weights = gaussian_importance(patch, weighting="nnunet").double().numpy()
    np.testing.assert_allclose(weights, expected, rtol=1e-5)
    assert weights.min() < MIN_WEIGHT / 100  # no floor
    with pytest.raises(ValueError, match="unknown Gaussian weighting"):
        gaussian_importance(patch, weighting="flat")
