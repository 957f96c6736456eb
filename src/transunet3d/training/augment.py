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


def spatial(images, targets, config: AugmentConfig, generator):
    """Rotation (each axis, +-rotation_degrees) and isotropic scaling, as one affine resampling."""
    batch, device = images.shape[0], images.device
    rotate = _chance(config.rotation_p, (batch, 1), generator, device)
    scale = _chance(config.scale_p, (batch,), generator, device)
    if not (rotate.any() or scale.any()):
        return images, targets
    limit = math.radians(config.rotation_degrees)
    angles = _uniform(-limit, limit, (batch, 3), generator, device) * rotate
    factors = torch.where(scale, _uniform(*config.scale_range, (batch,), generator, device), 1.0)
    # A zoom by s samples the input on a grid shrunk by 1/s.
    matrix = _rotation(angles) / factors[:, None, None]
    theta = torch.cat([matrix, torch.zeros(batch, 3, 1, device=device)], dim=2)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    targets = F.grid_sample(targets.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return images, targets.to(torch.uint8)


def gaussian_noise(images, config: AugmentConfig, generator):
    batch = images.shape[0]
    apply = _chance(config.noise_p, (batch,), generator, images.device)
    variance = _uniform(*config.noise_variance, (batch,), generator, images.device)
    if not apply.any():
        return images
    noise = torch.randn(images.shape, generator=generator, device=images.device)
    return images + noise * (variance.sqrt() * apply)[:, None, None, None, None]


def gaussian_blur(images, config: AugmentConfig, generator):
    """Separable Gaussian blur with a sigma per sample and channel (identity where not blurred)."""
    batch, channels = images.shape[:2]
    device = images.device
    apply = (_chance(config.blur_p, (batch, 1), generator, device)
             & _chance(config.blur_channel_p, (batch, channels), generator, device))
    sigma = _uniform(*config.blur_sigma, (batch, channels), generator, device)
    if not apply.any():
        return images
    radius = math.ceil(3 * config.blur_sigma[1])
    offsets = torch.arange(-radius, radius + 1, device=device, dtype=images.dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma.reshape(-1, 1)) ** 2)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)
    identity = (offsets == 0).to(images.dtype).expand_as(kernel)
    kernel = torch.where(apply.reshape(-1, 1), kernel, identity)
    x = images.reshape(1, batch * channels, *images.shape[2:])
    for axis in range(3):
        shape = [batch * channels, 1, 1, 1, 1]
        shape[2 + axis] = kernel.shape[1]
        padding = [0, 0, 0]
        padding[axis] = radius
        x = F.conv3d(x, kernel.reshape(shape), padding=tuple(padding), groups=batch * channels)
    return x.reshape(images.shape)


def brightness(images, config: AugmentConfig, generator):
    batch, channels = images.shape[:2]
    apply = _chance(config.brightness_p, (batch, 1), generator, images.device)
    factor = _uniform(*config.brightness_range, (batch, channels), generator, images.device)
    return images * torch.where(apply, factor, 1.0)[..., None, None, None]


def contrast(images, config: AugmentConfig, generator):
    """Scale around each channel's mean, keeping the channel's original value range."""
    batch, channels = images.shape[:2]
    apply = _chance(config.contrast_p, (batch, 1), generator, images.device)
    factor = torch.where(apply, _uniform(*config.contrast_range, (batch, channels), generator, images.device), 1.0)
    flat = images.flatten(2)
    mean, low, high = flat.mean(-1), flat.amin(-1), flat.amax(-1)
    out = (flat - mean[..., None]) * factor[..., None] + mean[..., None]
    return torch.maximum(torch.minimum(out, high[..., None]), low[..., None]).reshape(images.shape)


def low_resolution(images, config: AugmentConfig, generator):
    """Down-sample (nearest) by a zoom in `lowres_zoom` and back up (trilinear), per chosen sample and channel."""
    batch, channels = images.shape[:2]
    device = images.device
    apply = (_chance(config.lowres_p, (batch, 1), generator, device)
             & _chance(config.lowres_channel_p, (batch, channels), generator, device))
    zoom = _uniform(*config.lowres_zoom, (batch, channels), generator, device)
    out = images.clone()
    for b, c in apply.nonzero().tolist():
        size = [max(1, round(s * float(zoom[b, c]))) for s in images.shape[2:]]
        small = F.interpolate(images[b:b + 1, c:c + 1], size=size, mode="nearest")
        out[b, c] = F.interpolate(small, size=images.shape[2:], mode="trilinear", align_corners=False)[0, 0]
    return out


def gamma(images, config: AugmentConfig, generator, p: float, invert: bool):
    """x -> x^gamma on each channel rescaled to [0, 1], then the channel's mean and std are restored."""
    batch, channels = images.shape[:2]
    device = images.device
    apply = _chance(p, (batch,), generator, device)
    if not apply.any():
        return images
    low, high = config.gamma_range
    below = _chance(0.5, (batch, channels), generator, device) & (low < 1)
    value = torch.where(below, _uniform(low, 1.0, (batch, channels), generator, device),
                        _uniform(max(low, 1.0), high, (batch, channels), generator, device))
    x = -images if invert else images
    flat = x.flatten(2)
    mean, std = flat.mean(-1, keepdim=True), flat.std(-1, keepdim=True)
    low_value, span = flat.amin(-1, keepdim=True), flat.amax(-1, keepdim=True) - flat.amin(-1, keepdim=True)
    out = ((flat - low_value) / (span + 1e-7)) ** value[..., None] * (span + 1e-7) + low_value
    out = (out - out.mean(-1, keepdim=True)) / (out.std(-1, keepdim=True) + 1e-8) * std + mean
    out = -out if invert else out
    return torch.where(apply[:, None, None], out, images.flatten(2)).reshape(images.shape)


def mirror(images, targets, config: AugmentConfig, generator):
    """Flip each spatial axis of each sample with probability `mirror_p`."""
    flips = _chance(config.mirror_p, (images.shape[0], 3), generator, images.device)
    images, targets = images.clone(), targets.clone()
    for axis in range(3):
        chosen = flips[:, axis]
        if chosen.any():
            images[chosen] = images[chosen].flip(axis + 2)
            targets[chosen] = targets[chosen].flip(axis + 2)
    return images, targets


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
