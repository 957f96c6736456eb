"""Sliding-window prediction: single-window identity, Gaussian blending, exact TTA inversion, padding, batching."""

import pytest
import torch

from transunet3d.inference.gaussian import gaussian_importance
from transunet3d.inference.sliding_window import _zeros, sliding_window_probabilities
from transunet3d.inference.tta import View, tta_views

PATCH = (16, 16, 12)


@pytest.fixture(scope="module")
def conv_model():
    """A random convolution: neither flip- nor rotation-invariant, so a wrongly inverted view would show."""
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(2, 3, 3, padding=1)
    return lambda patches: torch.sigmoid(conv(patches))


def volume(shape=(40, 34, 29), seed=1) -> torch.Tensor:
    return torch.randn((2, *shape), generator=torch.Generator().manual_seed(seed))


def test_a_window_covering_the_volume_equals_one_forward(conv_model):
    image = volume(PATCH)
    result = sliding_window_probabilities(conv_model, image, PATCH)
    torch.testing.assert_close(result, conv_model(image[None])[0], rtol=0, atol=1e-6)


def test_overlapping_windows_blend_with_the_gaussian_weights():
    image = torch.arange(24, dtype=torch.float32)[:, None, None].expand(24, 16, 12)[None].clone()

    def patch_mean(patches):  # one constant per window: the mean x coordinate it sees
        return patches.mean(dim=(2, 3, 4), keepdim=True).expand(-1, 1, *patches.shape[2:])

    result = sliding_window_probabilities(patch_mean, image, PATCH, step=0.5)  # windows at x = 0 and x = 8
    profile = gaussian_importance(PATCH)[:, 3, 4]  # the windows start at y = z = 0
    for x in range(24):
        w_first = profile[x] if x < 16 else 0.0
        w_second = profile[x - 8] if x >= 8 else 0.0
        expected = (w_first * 7.5 + w_second * 15.5) / (w_first + w_second)
        assert float(result[0, x, 3, 4]) == pytest.approx(float(expected), rel=1e-5), x


@pytest.mark.parametrize("view", tta_views("flip+rot"), ids=str)
def test_each_view_equals_a_sliding_window_over_the_viewed_volume(conv_model, view: View):
    image = volume()
    ours = sliding_window_probabilities(conv_model, image, PATCH, step=0.5, views=[view], batch_windows=3)
    reference = view.invert(sliding_window_probabilities(conv_model, view.apply(image), PATCH, step=0.5))
    assert ours.shape == (3, 40, 34, 29)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-6)


def test_tta_averages_the_views(conv_model):
    image = volume()
    views = tta_views("flip+rot")
    ours = sliding_window_probabilities(conv_model, image, PATCH, views=views, batch_windows=7)
    each = [sliding_window_probabilities(conv_model, image, PATCH, views=[v]) for v in views]
    torch.testing.assert_close(ours, torch.stack(each).mean(0), rtol=0, atol=1e-5)


def test_a_model_that_outputs_its_input_coordinates_gets_them_back_through_every_view():
    shape = (37, 30, 21)
    coordinates = torch.stack(torch.meshgrid(*(torch.arange(n, dtype=torch.float32) for n in shape), indexing="ij"))
    result = sliding_window_probabilities(lambda patches: patches, coordinates, PATCH, views=tta_views("flip+rot"),
                                          batch_windows=5)
    torch.testing.assert_close(result, coordinates, rtol=3e-5, atol=1e-5)


def test_a_volume_smaller_than_the_patch_is_padded_around(conv_model):
    image = volume((20, 10, 9))
    result = sliding_window_probabilities(conv_model, image, PATCH)
    padded = torch.nn.functional.pad(image, (1, 2, 3, 3, 0, 0))  # z 9 -> 12, y 10 -> 16, x stays 20
    expected = sliding_window_probabilities(conv_model, padded, PATCH)[:, :, 3:13, 1:10]
    assert result.shape == (3, 20, 10, 9)
    torch.testing.assert_close(result, expected, rtol=0, atol=1e-6)


def test_the_batch_size_does_not_change_the_result(conv_model):
    image = volume()
    one = sliding_window_probabilities(conv_model, image, PATCH, views=tta_views("flip"), batch_windows=1)
    many = sliding_window_probabilities(conv_model, image, PATCH, views=tta_views("flip"), batch_windows=13)
    torch.testing.assert_close(one, many, rtol=0, atol=1e-6)


def test_rotations_need_a_square_axial_patch(conv_model):
    with pytest.raises(ValueError, match="square axial patch"):
        sliding_window_probabilities(conv_model, volume(), (16, 12, 12), views=tta_views("flip+rot"))


def test_accumulation_falls_back_to_the_cpu_when_the_device_is_full(monkeypatch):
    real_zeros = torch.zeros

    def full_device(*shape, dtype=None, device=None):
        if device is not None and torch.device(device).type != "cpu":
            raise torch.cuda.OutOfMemoryError("out of memory")
        return real_zeros(*shape, dtype=dtype)

    monkeypatch.setattr(torch, "zeros", full_device)
    with pytest.warns(UserWarning, match="accumulating on the CPU"):
        accumulator = _zeros((3, 4, 5, 6), torch.device("meta"))
    assert accumulator.device.type == "cpu" and accumulator.shape == (3, 4, 5, 6)


def test_nnunet_weighting_weighs_each_window_after_mapping_its_views_back(conv_model):
    """nnU-Net's loop, restated: per window, the mean of the views mapped back, times its (off-centre) Gaussian
    in the volume's coordinates; then the sum over windows divided by the summed Gaussians."""
    from transunet3d.inference.windows import window_grid

    image, views = volume(), tta_views("flip")
    weight = gaussian_importance(PATCH, weighting="nnunet")
    total, coverage = torch.zeros(3, *image.shape[1:]), torch.zeros(image.shape[1:])
    for window in window_grid(tuple(image.shape[1:]), PATCH, 0.5):
        crop = image[(slice(None), *window)][None]
        mean = torch.stack([view.invert(conv_model(view.apply(crop))[0]) for view in views]).mean(0)
        total[(slice(None), *window)] += mean * weight
        coverage[window] += weight
    ours = sliding_window_probabilities(conv_model, image, PATCH, views=views, batch_windows=5, weighting="nnunet")
    torch.testing.assert_close(ours, total / coverage, rtol=0, atol=1e-5)
