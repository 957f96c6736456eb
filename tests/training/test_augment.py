"""Batched augmentation: each transform's defining property, consistency of images and targets, determinism."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from transunet3d.config.schema import AugmentConfig
from transunet3d.training import augment as aug

OFF = AugmentConfig(rotation_p=0, scale_p=0, mirror_p=0, noise_p=0, blur_p=0, brightness_p=0, contrast_p=0,
                    lowres_p=0, gamma_p=0, gamma_inverted_p=0)


def only(**changes) -> AugmentConfig:
    return dataclasses.replace(OFF, **changes)


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def still(batch: int) -> torch.Tensor:
    """Spatial parameters that leave every sample as it is."""
    return torch.tensor([aug.SPATIAL_IDENTITY] * batch, dtype=torch.float64)


def turned(*rows: tuple[float, float, float, float]) -> torch.Tensor:
    """Spatial parameters from (degrees about x, y, z, scale factor) rows."""
    return torch.tensor([[*map(math.radians, row[:3]), row[3]] for row in rows], dtype=torch.float64)


def drawn(config: AugmentConfig, batch: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(aug.draw_spatial(config, batch, np.random.default_rng(seed)))


@pytest.fixture
def batch():
    torch.manual_seed(0)
    images = torch.randn(2, 4, 16, 16, 16)
    targets = torch.zeros(2, 3, 16, 16, 16, dtype=torch.uint8)
    targets[:, :, 4:10, 5:12, 6:11] = 1
    return images, targets


def test_everything_off_is_the_identity(batch):
    images, targets = aug.augment_batch(*batch, still(2), OFF, generator())
    torch.testing.assert_close(images, batch[0])
    assert torch.equal(targets, batch[1])


def test_mirroring_flips_images_and_targets_together(batch):
    images, targets = aug.augment_batch(*batch, still(2), only(mirror_p=1.0), generator())
    torch.testing.assert_close(images, batch[0].flip(2, 3, 4))
    assert torch.equal(targets, batch[1].flip(2, 3, 4))


def test_spatial_identity_and_consistency(batch):
    same, _ = aug.spatial(*batch, turned((1e-9, 0, 0, 1.0), (0, 0, 0, 1.0 + 1e-12)))
    torch.testing.assert_close(same, batch[0], atol=1e-5, rtol=0)  # resampled, and still the same
    images = batch[1][:, :1].float().repeat(1, 4, 1, 1, 1)  # an image that is the target itself
    moved, targets = aug.spatial(images, batch[1], drawn(only(rotation_p=1.0, scale_p=1.0), 2, seed=3))
    assert set(targets.unique().tolist()) <= {0, 1}
    assert not torch.equal(targets, batch[1])
    agree = ((moved[:, 0] > 0.5) == targets[:, 0].bool()).float().mean()
    assert agree > 0.97


def test_noise_standard_deviation_is_the_drawn_value_as_in_batchgenerators():
    images = torch.zeros(2, 1, 32, 32, 32)
    noisy = aug.gaussian_noise(images, only(noise_p=1.0, noise_variance=(0.1, 0.1)), generator())
    assert noisy.std().item() == pytest.approx(0.1, rel=0.02)


def test_blur_keeps_constants_and_smooths_noise():
    constant = torch.full((1, 2, 12, 12, 12), 3.0)
    blurred = aug.gaussian_blur(constant, only(blur_p=1.0, blur_channel_p=1.0), generator())
    torch.testing.assert_close(blurred[..., 4:-4, 4:-4, 4:-4], constant[..., 4:-4, 4:-4, 4:-4])
    noise = torch.randn(1, 2, 24, 24, 24, generator=generator(1))
    smoothed = aug.gaussian_blur(noise, only(blur_p=1.0, blur_channel_p=1.0), generator())
    assert smoothed.std() < 0.6 * noise.std()


def test_brightness_and_contrast():
    images = torch.randn(2, 3, 8, 8, 8, generator=generator(2))
    doubled = aug.brightness(images, only(brightness_p=1.0, brightness_range=(2.0, 2.0)), generator())
    torch.testing.assert_close(doubled, 2 * images)
    flat = aug.contrast(images, only(contrast_p=1.0, contrast_range=(0.5, 0.5)), generator())
    mean = images.flatten(2).mean(-1)[..., None, None, None]
    torch.testing.assert_close(flat, (images - mean) * 0.5 + mean)
    steep = aug.contrast(images, only(contrast_p=1.0, contrast_range=(1.5, 1.5)), generator())
    assert steep.amax() <= images.amax() + 1e-6 and steep.amin() >= images.amin() - 1e-6


def test_low_resolution_keeps_shape_and_loses_detail():
    images = torch.randn(1, 2, 16, 16, 16, generator=generator(4))
    low = aug.low_resolution(images, only(lowres_p=1.0, lowres_channel_p=1.0, lowres_zoom=(0.5, 0.5)),
                             generator())
    assert low.shape == images.shape
    assert low.std() < 0.9 * images.std()


@pytest.mark.parametrize("invert", [False, True])
def test_gamma_keeps_order_and_statistics(invert):
    images = torch.randn(1, 2, 8, 8, 8, generator=generator(5))
    out = aug.gamma(images, only(gamma_range=(2.0, 2.0)), generator(), p=1.0, invert=invert)
    assert not torch.allclose(out, images)
    torch.testing.assert_close(out.flatten(2).mean(-1), images.flatten(2).mean(-1), atol=1e-4, rtol=0)
    torch.testing.assert_close(out.flatten(2).std(-1), images.flatten(2).std(-1), atol=1e-4, rtol=1e-4)
    order = images.flatten(2).argsort(-1)
    assert torch.all(out.flatten(2).gather(-1, order).diff(dim=-1) >= -1e-5)


def test_default_pipeline_is_deterministic_per_generator_seed(batch):
    first = aug.augment_batch(*batch, still(2), AugmentConfig(), generator(11))
    again = aug.augment_batch(*batch, still(2), AugmentConfig(), generator(11))
    torch.testing.assert_close(first[0], again[0], rtol=0, atol=0)
    assert torch.equal(first[1], again[1])
    other = aug.augment_batch(*batch, still(2), AugmentConfig(), generator(12))
    assert not torch.equal(first[0], other[0])


def test_drawn_transforms_follow_the_probabilities_and_ranges():
    config = AugmentConfig()
    parameters = aug.draw_spatial(config, 20000, np.random.default_rng(0))
    rotated = (parameters[:, :3] != 0).any(1)
    scaled = parameters[:, 3] != 1
    assert rotated.mean() == pytest.approx(config.rotation_p, abs=0.01)
    assert scaled.mean() == pytest.approx(config.scale_p, abs=0.01)
    assert np.abs(parameters[:, :3]).max() <= math.radians(config.rotation_degrees)
    factors = parameters[scaled, 3]
    assert factors.min() >= 0.7 and factors.max() <= 1.4
    assert (factors < 1).mean() == pytest.approx(0.5, abs=0.02)  # batchgenerators' half below 1, half above
    again = aug.draw_spatial(config, 20000, np.random.default_rng(0))
    np.testing.assert_array_equal(parameters, again)
    assert (aug.draw_spatial(OFF, 5, np.random.default_rng(1)) == aug.SPATIAL_IDENTITY).all()


@pytest.mark.parametrize("rows", [[(0, 0, 0, 1.0)], [(0, 0, 0, 1.4), (0, 0, 0, 1.0)]])
def test_read_size_is_the_patch_without_rotation_or_zoom_out(rows):
    assert aug.read_size((128, 96, 64), turned(*rows).numpy()) == (128, 96, 64)


def test_read_size_of_a_zoom_out_covers_the_stretched_voxel_centres():
    # Centres at +-(n - 1) / 2 reach +-(n - 1) / (2 s) = +-19 and +-9 at s = 0.5: 39 and 19 voxels with both
    # neighbours, rounded up to an even excess over the patch.
    assert aug.read_size((20, 10, 20), turned((0, 0, 0, 0.5)).numpy()) == (40, 20, 40)


def test_a_batch_reads_what_its_most_demanding_sample_needs():
    rows = [(30, -30, 30, 0.7), (10, 0, 0, 1.2), (0, 0, 0, 1.0)]
    alone = [aug.read_size((128, 128, 128), turned(row).numpy()) for row in rows]
    assert aug.read_size((128, 128, 128), turned(*rows).numpy()) == tuple(np.max(alone, axis=0))
    assert alone[2] == (128, 128, 128) and alone[1] < alone[0]
    corners = turned(*[(x, y, z, 0.7) for x in (-30, 30) for y in (-30, 30) for z in (-30, 30)])
    assert min(aug.read_size((128,) * 3, corners.numpy())) > 249  # nnU-Net's read would leave corners empty


@pytest.mark.parametrize("patch", [(16, 16, 16), (24, 16, 10)])
def test_zoom_out_and_rotation_of_an_enlarged_read_leave_no_empty_corners(patch):
    """The issue's check: scale 0.7 and 30 degrees on every axis keep (at least 99% of) the patch non-zero."""
    corners = [(x, y, z, 0.7) for x in (-30, 30) for y in (-30, 30) for z in (-30, 30)]
    for parameters in (turned(*corners), drawn(only(rotation_p=1.0, scale_p=1.0, scale_range=(0.7, 0.7)), 8, 7)):
        size = aug.read_size(patch, parameters.numpy())
        images = 1 + torch.rand(len(parameters), 2, *size, generator=generator(6))  # no zeros anywhere
        targets = torch.ones(len(parameters), 3, *size, dtype=torch.uint8)
        moved, labels = aug.spatial(images, targets, parameters, patch)
        assert moved.shape == (len(parameters), 2, *patch) and labels.shape == (len(parameters), 3, *patch)
        assert moved.ne(0).all() and labels.all()  # the bound gives every voxel, not just 99%


def test_samples_without_rotation_or_scaling_are_exact_centre_crops():
    images = torch.randn(6, 2, 22, 30, 14, generator=generator(8))
    targets = (images[:, :1] > 0).to(torch.uint8)
    centre = (..., slice(5, 17), slice(7, 23), slice(3, 11))
    cropped, labels = aug.augment_batch(images, targets, still(6), OFF, generator(), (12, 16, 8))
    assert torch.equal(cropped, images[centre]) and torch.equal(labels, targets[centre])
    mixed, _ = aug.spatial(images, targets, turned(*[(10 * (b % 2), 0, 0, 1.0) for b in range(6)]), (12, 16, 8))
    exact = [torch.equal(mixed[b], images[centre][b]) for b in range(len(images))]
    assert exact == [True, False] * 3  # the rotated samples are resampled, the others only cropped
    same, _ = aug.spatial(images, targets, turned(*[(0, 0, 0, 1.0 + 1e-12)] * 6), (12, 16, 8))
    torch.testing.assert_close(same, images[centre], atol=1e-5, rtol=0)  # the identity resampling is centred too


def test_zoom_out_doubles_the_voxel_steps_along_each_axis_of_a_non_cubic_patch():
    patch, size = (6, 8, 4), (14, 20, 8)  # a different margin on each axis
    ramps = torch.stack(torch.meshgrid(*[torch.arange(n, dtype=torch.float32) for n in size], indexing="ij"))
    targets = torch.zeros(1, 1, *size, dtype=torch.uint8)
    moved, _ = aug.spatial(ramps[None], targets, turned((0, 0, 0, 0.5)), patch)
    for axis, (have, want) in enumerate(zip(size, patch)):
        steps = torch.arange(want, dtype=torch.float32) - (want - 1) / 2
        expected = ((have - 1) / 2 + 2 * steps).reshape([-1 if a == axis else 1 for a in range(3)]).expand(patch)
        torch.testing.assert_close(moved[0, axis], expected, atol=1e-4, rtol=0)


def test_enlarged_read_keeps_images_and_targets_aligned():
    parameters = drawn(only(rotation_p=1.0, scale_p=1.0), 2, seed=3)
    size = aug.read_size((16, 16, 16), parameters.numpy())
    centre = [(n - 16) // 2 for n in size]
    targets = torch.zeros(2, 3, *size, dtype=torch.uint8)
    targets[:, :, centre[0] + 3:centre[0] + 13, centre[1] + 4:centre[1] + 15, centre[2] + 5:centre[2] + 12] = 1
    images = targets[:, :1].float().repeat(1, 4, 1, 1, 1)  # an image that is the target itself
    moved, labels = aug.spatial(images, targets, parameters, (16, 16, 16))
    assert labels.shape == (2, 3, 16, 16, 16) and labels[:, 0].any(dim=(1, 2, 3)).all()
    assert not torch.equal(labels, aug._centre_crop(targets, (16, 16, 16)))
    agree = ((moved[:, 0] > 0.5) == labels[:, 0].bool()).float().mean()
    assert agree > 0.97


def test_bias_field_is_smooth_per_channel_and_off_by_default():
    import torch

    from transunet3d.config.schema import AugmentConfig
    from transunet3d.training.augment import augment_batch, bias_field

    images = torch.zeros((2, 4, 16, 16, 16))
    config = AugmentConfig(bias_p=1.0, bias_channel_p=1.0, bias_strength=1.0)
    out = bias_field(images, config, torch.Generator().manual_seed(0))
    assert out.abs().amax() > 0.05  # every channel of every sample gets its own field
    assert not torch.equal(out[0, 0], out[0, 1]) and not torch.equal(out[0, 0], out[1, 0])
    assert (out.diff(dim=2).abs().amax() < 0.5 * out.abs().amax())  # smooth: no voxel-to-voxel jumps
    again = bias_field(images, config, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    # Off (the default): no field and no random draws, so the rest of the pipeline is unchanged.
    batch = torch.randn((2, 4, 8, 8, 8)), torch.zeros((2, 3, 8, 8, 8), dtype=torch.uint8)
    identity = torch.tensor([[0.0, 0.0, 0.0, 1.0]] * 2)
    plain = augment_batch(*batch, identity, AugmentConfig(), torch.Generator().manual_seed(3))
    with_zero = augment_batch(*batch, identity, AugmentConfig(bias_p=0.0, bias_strength=5.0),
                              torch.Generator().manual_seed(3))
    assert torch.equal(plain[0], with_zero[0])


def test_thick_slices_average_slabs_along_one_axis_and_repeat_them():
    """Every chosen channel becomes, along its sample's axis, slabs of `factor` voxels each holding their mean (a
    box slice profile, then nearest neighbour back), and keeps its detail along the other two."""
    images = torch.randn(6, 2, 12, 12, 12, generator=generator(7))
    out = aug.thick_slices(images, only(slices_p=1.0, slices_channel_p=1.0, slices_factor=(3.0, 3.0)), generator(1))
    assert out.shape == images.shape
    blocky_axes = []
    for b in range(6):
        for c in range(2):
            for axis in range(3):
                slabs = images[b, c].unflatten(axis, (4, 3)).mean(axis + 1, keepdim=True)
                expected = slabs.expand(*slabs.shape[:axis + 1], 3, *slabs.shape[axis + 2:]).flatten(axis, axis + 1)
                if torch.allclose(out[b, c], expected, atol=1e-6):
                    blocky_axes.append(axis)
    assert len(blocky_axes) == 12  # each of the 12 channels along exactly one axis
    assert blocky_axes[0::2] == blocky_axes[1::2]  # the channels of one sample share their slice direction
    assert len(set(blocky_axes)) > 1  # the axis is drawn, not fixed
    # A 1-voxel speck inside one slab keeps a third of its contrast (partial volume), spread over the slab.
    speck = torch.zeros(1, 1, 12, 12, 12)
    speck[0, 0, 6, 6, 7] = 3.0
    thick = aug.thick_slices(speck, only(slices_p=1.0, slices_channel_p=1.0, slices_factor=(3.0, 3.0)), generator(2))
    assert thick.max().item() == pytest.approx(1.0) and thick.sum().item() == pytest.approx(3.0)


def test_thick_slices_off_draws_nothing():
    batch = torch.randn((2, 4, 8, 8, 8)), torch.zeros((2, 3, 8, 8, 8), dtype=torch.uint8)
    identity = torch.tensor([aug.SPATIAL_IDENTITY] * 2, dtype=torch.float64)
    plain = aug.augment_batch(*batch, identity, AugmentConfig(), generator(3))
    with_zero = aug.augment_batch(*batch, identity, AugmentConfig(slices_p=0.0, slices_factor=(2.0, 5.0)), generator(3))
    assert torch.equal(plain[0], with_zero[0])
