"""The paper's (nnU-Net's) augmentation, batched in torch on the training device.

All transforms act on a whole batch at once: per-sample decisions become masks and per-sample parameters, so a GPU
does the work and the data loader only reads and crops. Probabilities and ranges come from `AugmentConfig`.
Images are (B, C, D, H, W) float; region targets (B, R, D, H, W) are moved with the images (nearest neighbour).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from transunet3d.config.schema import AugmentConfig


def _chance(p: float, size, generator: torch.Generator, device) -> torch.Tensor:
    return torch.rand(size, generator=generator, device=device) < p


def _uniform(low: float, high: float, size, generator: torch.Generator, device) -> torch.Tensor:
    return low + (high - low) * torch.rand(size, generator=generator, device=device)


def _rotation(angles: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) rotation matrices from (B, 3) angles about the three axes."""
    cos, sin = angles.cos(), angles.sin()
    one, zero = torch.ones_like(angles[:, 0]), torch.zeros_like(angles[:, 0])

    def matrix(rows):
        return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)

    rx = matrix([[one, zero, zero], [zero, cos[:, 0], -sin[:, 0]], [zero, sin[:, 0], cos[:, 0]]])
    ry = matrix([[cos[:, 1], zero, sin[:, 1]], [zero, one, zero], [-sin[:, 1], zero, cos[:, 1]]])
    rz = matrix([[cos[:, 2], -sin[:, 2], zero], [sin[:, 2], cos[:, 2], zero], [zero, zero, one]])
    return rz @ ry @ rx


def _selected(apply: torch.Tensor) -> torch.Tensor | None:
    """Indices of the samples a transform applies to, or None when it applies to none."""
    index = apply.nonzero().flatten()
    return index if len(index) else None


def _replace(images: torch.Tensor, index: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """A new batch: `values` for the samples at `index`, the others from `images` (which is left untouched)."""
    if len(index) == len(images):
        return values
    position = {int(i): n for n, i in enumerate(index)}
    return torch.stack([values[position[b]] if b in position else images[b] for b in range(len(images))])


def spatial(images, targets, config: AugmentConfig, generator):
    """Rotation (each axis, +-rotation_degrees) and isotropic scaling, as one affine resampling."""
    batch, device = images.shape[0], images.device
    rotate = _chance(config.rotation_p, (batch, 1), generator, device)
    scale = _chance(config.scale_p, (batch,), generator, device)
    limit = math.radians(config.rotation_degrees)
    angles = _uniform(-limit, limit, (batch, 3), generator, device) * rotate
    factors = torch.where(scale, _uniform(*config.scale_range, (batch,), generator, device), 1.0)
    index = _selected(rotate[:, 0] | scale)
    if index is None:
        return images, targets
    # A zoom by s samples the input on a grid shrunk by 1/s.
    matrix = _rotation(angles[index]) / factors[index, None, None]
    theta = torch.cat([matrix, torch.zeros(len(index), 3, 1, device=device)], dim=2)
    grid = F.affine_grid(theta, [len(index), *images.shape[1:]], align_corners=False)
    moved = F.grid_sample(images[index], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    labels = F.grid_sample(targets[index].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return _replace(images, index, moved), _replace(targets, index, labels.to(targets.dtype))


def gaussian_noise(images, config: AugmentConfig, generator):
    batch = images.shape[0]
    apply = _chance(config.noise_p, (batch,), generator, images.device)
    variance = _uniform(*config.noise_variance, (batch,), generator, images.device)
    index = _selected(apply)
    if index is None:
        return images
    noise = torch.randn((len(index), *images.shape[1:]), generator=generator, device=images.device)
    return _replace(images, index, images[index] + noise * variance[index].sqrt()[:, None, None, None, None])


def _channel_choices(images, p_sample: float, p_channel: float, value_range, generator):
    """(sample, channel) pairs chosen with probability p_sample per sample and p_channel per channel, and a
    parameter drawn from `value_range` for every pair of the batch."""
    batch, channels = images.shape[:2]
    device = images.device
    apply = (_chance(p_sample, (batch, 1), generator, device)
             & _chance(p_channel, (batch, channels), generator, device))
    values = _uniform(*value_range, (batch, channels), generator, device)
    return apply.nonzero().tolist(), values


def gaussian_blur(images, config: AugmentConfig, generator):
    """Separable Gaussian blur with its own sigma for each chosen sample and channel."""
    chosen, sigma = _channel_choices(images, config.blur_p, config.blur_channel_p, config.blur_sigma, generator)
    if not chosen:
        return images
    radius = math.ceil(3 * config.blur_sigma[1])
    offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    out = images.clone()
    for b, c in chosen:
        kernel = torch.exp(-0.5 * (offsets / sigma[b, c]) ** 2)
        out[b, c] = _blur_volume(images[b, c], kernel / kernel.sum(), radius)
    return out


def _blur_volume(volume: torch.Tensor, kernel: torch.Tensor, radius: int) -> torch.Tensor:
    """Convolve a 3D volume with the same 1-D kernel along each axis (zero padding), as weighted shifted sums:
    a few multiply-adds over the volume per tap, much faster on the CPU than a 1-D convolution of every row."""
    for axis in range(3):
        padding = [0] * 6
        padding[2 * (2 - axis)] = padding[2 * (2 - axis) + 1] = radius
        padded = F.pad(volume, padding)
        length = volume.shape[axis]
        blurred = padded.narrow(axis, 0, length) * kernel[0]
        for tap in range(1, len(kernel)):
            blurred.add_(padded.narrow(axis, tap, length), alpha=float(kernel[tap]))
        volume = blurred
    return volume


def brightness(images, config: AugmentConfig, generator):
    batch, channels = images.shape[:2]
    apply = _chance(config.brightness_p, (batch,), generator, images.device)
    factor = _uniform(*config.brightness_range, (batch, channels), generator, images.device)
    index = _selected(apply)
    if index is None:
        return images
    return _replace(images, index, images[index] * factor[index][..., None, None, None])


def contrast(images, config: AugmentConfig, generator):
    """Scale around each channel's mean, keeping the channel's original value range."""
    batch, channels = images.shape[:2]
    apply = _chance(config.contrast_p, (batch,), generator, images.device)
    factor = _uniform(*config.contrast_range, (batch, channels), generator, images.device)
    index = _selected(apply)
    if index is None:
        return images
    flat = images[index].flatten(2)
    mean, low, high = flat.mean(-1, keepdim=True), flat.amin(-1, keepdim=True), flat.amax(-1, keepdim=True)
    out = ((flat - mean) * factor[index][..., None] + mean).clamp_(min=low, max=high)
    return _replace(images, index, out.reshape(len(index), *images.shape[1:]))


def low_resolution(images, config: AugmentConfig, generator):
    """Down-sample (nearest) by a zoom in `lowres_zoom` and back up (trilinear), per chosen sample and channel."""
    chosen, zoom = _channel_choices(images, config.lowres_p, config.lowres_channel_p, config.lowres_zoom, generator)
    if not chosen:
        return images
    out = images.clone()
    for b, c in chosen:
        size = [max(1, round(s * float(zoom[b, c]))) for s in images.shape[2:]]
        small = F.interpolate(images[b:b + 1, c:c + 1], size=size, mode="nearest")
        out[b, c] = F.interpolate(small, size=images.shape[2:], mode="trilinear", align_corners=False)[0, 0]
    return out


def gamma(images, config: AugmentConfig, generator, p: float, invert: bool):
    """x -> x^gamma on each channel rescaled to [0, 1], then the channel's mean and std are restored."""
    batch, channels = images.shape[:2]
    device = images.device
    apply = _chance(p, (batch,), generator, device)
    low, high = config.gamma_range
    below = _chance(0.5, (batch, channels), generator, device) & (low < 1)
    value = torch.where(below, _uniform(low, 1.0, (batch, channels), generator, device),
                        _uniform(max(low, 1.0), high, (batch, channels), generator, device))
    index = _selected(apply)
    if index is None:
        return images
    out = images[index].flatten(2)  # a copy: indexing with a tensor gathers
    if invert:
        out.neg_()
    std, mean = torch.std_mean(out, dim=-1, keepdim=True)
    low_value = out.amin(-1, keepdim=True)
    span = out.amax(-1, keepdim=True) - low_value + 1e-7
    out.sub_(low_value).div_(span).pow_(value[index][..., None])
    out_std, out_mean = torch.std_mean(out, dim=-1, keepdim=True)
    # Back to the original mean and std (the rescaling to [0, 1] cancels out).
    out.sub_(out_mean).mul_(std / (out_std + 1e-8)).add_(mean)
    if invert:
        out.neg_()
    return _replace(images, index, out.reshape(len(index), *images.shape[1:]))


def mirror(images, targets, config: AugmentConfig, generator):
    """Flip each spatial axis of each sample with probability `mirror_p`."""
    flips = _chance(config.mirror_p, (images.shape[0], 3), generator, images.device).tolist()
    axes = [[axis + 1 for axis in range(3) if chosen[axis]] for chosen in flips]
    if not any(axes):
        return images, targets

    def flipped(batch: torch.Tensor) -> torch.Tensor:
        return torch.stack([sample.flip(dims) if dims else sample for sample, dims in zip(batch, axes)])

    return flipped(images), flipped(targets)


def augment_batch(
    images: torch.Tensor, targets: torch.Tensor, config: AugmentConfig, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole augmentation pipeline, in nnU-Net's order; returns new (images, targets)."""
    images, targets = spatial(images, targets, config, generator)
    images = gaussian_noise(images, config, generator)
    images = gaussian_blur(images, config, generator)
    images = brightness(images, config, generator)
    images = contrast(images, config, generator)
    images = low_resolution(images, config, generator)
    images = gamma(images, config, generator, config.gamma_inverted_p, invert=True)
    images = gamma(images, config, generator, config.gamma_p, invert=False)
    return mirror(images, targets, config, generator)
