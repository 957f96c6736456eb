"""Batched augmentation: each transform's defining property, consistency of images and targets, determinism."""

import dataclasses

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


@pytest.fixture
def batch():
    torch.manual_seed(0)
    images = torch.randn(2, 4, 16, 16, 16)
    targets = torch.zeros(2, 3, 16, 16, 16, dtype=torch.uint8)
    targets[:, :, 4:10, 5:12, 6:11] = 1
    return images, targets


def test_everything_off_is_the_identity(batch):
    images, targets = aug.augment_batch(*batch, OFF, generator())
    torch.testing.assert_close(images, batch[0])
    assert torch.equal(targets, batch[1])


def test_mirroring_flips_images_and_targets_together(batch):
    images, targets = aug.augment_batch(*batch, only(mirror_p=1.0), generator())
    torch.testing.assert_close(images, batch[0].flip(2, 3, 4))
    assert torch.equal(targets, batch[1].flip(2, 3, 4))


def test_spatial_identity_and_consistency(batch):
    same, _ = aug.spatial(*batch, only(scale_p=1.0, scale_range=(1.0, 1.0)), generator())
    torch.testing.assert_close(same, batch[0], atol=1e-5, rtol=0)
    images = batch[1][:, :1].float().repeat(1, 4, 1, 1, 1)  # an image that is the target itself
    moved, targets = aug.spatial(images, batch[1], only(rotation_p=1.0, scale_p=1.0), generator(3))
    assert set(targets.unique().tolist()) <= {0, 1}
    assert not torch.equal(targets, batch[1])
    agree = ((moved[:, 0] > 0.5) == targets[:, 0].bool()).float().mean()
    assert agree > 0.97


def test_noise_has_the_requested_variance():
    images = torch.zeros(2, 1, 32, 32, 32)
    noisy = aug.gaussian_noise(images, only(noise_p=1.0, noise_variance=(0.1, 0.1)), generator())
    assert noisy.std().item() == pytest.approx(0.1**0.5, rel=0.02)


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
    first = aug.augment_batch(*batch, AugmentConfig(), generator(11))
    again = aug.augment_batch(*batch, AugmentConfig(), generator(11))
    torch.testing.assert_close(first[0], again[0], rtol=0, atol=0)
    assert torch.equal(first[1], again[1])
    other = aug.augment_batch(*batch, AugmentConfig(), generator(12))
    assert not torch.equal(first[0], other[0])


@pytest.mark.parametrize("config", [OFF, only(rotation_p=1.0, rotation_degrees=0.0, scale_p=1.0,
                                                scale_range=(1.0, 1.4))])
def test_read_size_is_the_patch_without_rotation_or_zoom_out(config):
    assert aug.read_size((128, 96, 64), config) == (128, 96, 64)


def test_read_size_of_a_zoom_out_covers_the_stretched_voxel_centres():
    # Centres at +-(n - 1) / 2 reach +-(n - 1) / (2 s) = +-19 and +-9 at s = 0.5: 39 and 19 voxels with both
    # neighbours, rounded up to an even excess over the patch.
    assert aug.read_size((20, 10, 20), only(scale_p=1.0, scale_range=(0.5, 1.0))) == (40, 20, 40)


@pytest.mark.parametrize("patch", [(16, 16, 16), (24, 16, 10)])
def test_zoom_out_and_rotation_of_an_enlarged_read_leave_no_empty_corners(patch):
    config = only(rotation_p=1.0, rotation_degrees=30.0, scale_p=1.0, scale_range=(0.7, 0.7))
    size = aug.read_size(patch, config)
    images = 1 + torch.rand(4, 2, *size, generator=generator(6))  # no zeros anywhere
    targets = torch.ones(4, 3, *size, dtype=torch.uint8)
    moved, labels = aug.spatial(images, targets, config, generator(7), patch)
    assert moved.shape == (4, 2, *patch) and labels.shape == (4, 3, *patch)
    assert moved.ne(0).all() and labels.all()  # the issue asks for 99% of the voxels; the bound gives all of them


def test_samples_without_rotation_or_scaling_are_exact_centre_crops():
    images = torch.randn(6, 2, 22, 30, 14, generator=generator(8))
    targets = (images[:, :1] > 0).to(torch.uint8)
    centre = (..., slice(5, 17), slice(7, 23), slice(3, 11))
    cropped, labels = aug.augment_batch(images, targets, OFF, generator(), (12, 16, 8))
    assert torch.equal(cropped, images[centre]) and torch.equal(labels, targets[centre])
    mixed, _ = aug.spatial(images, targets, only(rotation_p=0.5), generator(9), (12, 16, 8))
    exact = [torch.equal(mixed[b], images[centre][b]) for b in range(len(images))]
    assert 0 < sum(exact) < len(images)  # the rotated samples are resampled, the others only cropped
    same, _ = aug.spatial(images, targets, only(scale_p=1.0, scale_range=(1.0, 1.0)), generator(), (12, 16, 8))
    torch.testing.assert_close(same, images[centre], atol=1e-5, rtol=0)  # the identity resampling is centred too


def test_zoom_out_doubles_the_voxel_steps_along_each_axis_of_a_non_cubic_patch():
    patch, size = (6, 8, 4), (14, 20, 8)  # a different margin on each axis
    ramps = torch.stack(torch.meshgrid(*[torch.arange(n, dtype=torch.float32) for n in size], indexing="ij"))
    targets = torch.zeros(1, 1, *size, dtype=torch.uint8)
    moved, _ = aug.spatial(ramps[None], targets, only(scale_p=1.0, scale_range=(0.5, 0.5)), generator(), patch)
    for axis, (have, want) in enumerate(zip(size, patch)):
        steps = torch.arange(want, dtype=torch.float32) - (want - 1) / 2
        expected = ((have - 1) / 2 + 2 * steps).reshape([-1 if a == axis else 1 for a in range(3)]).expand(patch)
        torch.testing.assert_close(moved[0, axis], expected, atol=1e-4, rtol=0)


def test_enlarged_read_keeps_images_and_targets_aligned():
    config = AugmentConfig()
    size = aug.read_size((16, 16, 16), config)
    targets = torch.zeros(2, 3, *size, dtype=torch.uint8)
    targets[:, :, 14:24, 15:26, 16:23] = 1
    images = targets[:, :1].float().repeat(1, 4, 1, 1, 1)  # an image that is the target itself
    moved, labels = aug.spatial(images, targets, only(rotation_p=1.0, scale_p=1.0), generator(3), (16, 16, 16))
    assert labels.shape == (2, 3, 16, 16, 16) and labels[:, 0].any(dim=(1, 2, 3)).all()
    assert not torch.equal(labels, targets[..., 11:27, 11:27, 11:27])
    agree = ((moved[:, 0] > 0.5) == labels[:, 0].bool()).float().mean()
    assert agree > 0.97
