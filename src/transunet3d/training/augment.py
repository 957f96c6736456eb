"""The paper's (nnU-Net's) augmentation, batched in torch on the training device.

All transforms act on a whole batch at once: per-sample decisions become masks and per-sample parameters, so a GPU
does the work and the data loader only reads and crops. Probabilities and ranges come from `AugmentConfig`.
Images are (B, C, D, H, W) float; region targets (B, R, D, H, W) are moved with the images (nearest neighbour).
As in nnU-Net, the loader reads a patch larger than the network's (`read_size`) and rotation and scaling resample
the final patch out of it, so that zoom-outs and rotations leave no empty corners.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from transunet3d.config.schema import AugmentConfig

ROTATION_GRID_STEPS = 31  # angles per axis for `read_size`: 2-degree steps for +-30; finer grids give the same sizes


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


def read_size(patch_size: tuple[int, int, int], config: AugmentConfig) -> tuple[int, int, int]:
    """The size of the patch to read so that `spatial` can make a `patch_size` patch of it without empty corners.

    Every output voxel of every rotation `spatial` may draw (all three axes at once, each within +-rotation_degrees)
    combined with the largest zoom-out samples inside the read patch, between two of its voxels along each axis
    (linear interpolation). Our matrix is R / s, so the largest zoom-out is the smallest scale factor. The bound is
    the bounding box of the transformed output voxel centres, maximised over a grid of the three angles that
    includes the extremes. The read exceeds the patch by an even number of voxels per axis, so that the patch is
    its exact centre; without rotation and scaling it is the patch itself.

    nnU-Net's `get_patch_size` rotates about one axis at a time, which under-estimates combined rotations: for
    128^3, +-30 degrees and scales 0.7-1.4 it gives 249^3 (nnU-Net v2 computes it with scales 0.85-1.25: 205^3),
    this function 308 x 314 x 308.

    Args:
        patch_size: the final (D, H, W) patch, as the network sees it.
        config: the augmentation whose rotation and scale ranges the read must cover.

    Returns:
        (D, H, W) of the patch to read around the final patch's centre.
    """
    limit = math.radians(config.rotation_degrees) if config.rotation_p > 0 else 0.0
    steps = torch.linspace(-limit, limit, ROTATION_GRID_STEPS, dtype=torch.float64)
    smallest_factor = min(config.scale_range[0], 1.0) if config.scale_p > 0 else 1.0
    return _covering_size(_rotation(torch.cartesian_prod(steps, steps, steps)) / smallest_factor, patch_size)


def _covering_size(matrices: torch.Tensor, patch_size) -> tuple[int, ...]:
    """The smallest input around a `patch_size` output, larger by an even number of voxels per axis, in which every
    output voxel centre mapped by any of `matrices` (N, 3, 3: output to input voxels, in (x, y, z) order) lies
    between two input voxels along each axis."""
    half = torch.tensor([(size - 1) / 2 for size in reversed(patch_size)], dtype=torch.float64)
    reach = (matrices.detach().cpu().double().abs() @ half).amax(0)
    needed = [2 * float(r) + 1 for r in reversed(reach)]  # one voxel more: both neighbours of the outermost sample
    # The tolerance keeps float noise from adding voxels to an unrotated, unscaled patch.
    return tuple(size + 2 * math.ceil(max(need - size - 1e-6, 0) / 2) for need, size in zip(needed, patch_size))


def _centre_crop(volumes: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """A view of the centred `size` part of (B, C, *spatial) volumes."""
    starts = [(have - want) // 2 for have, want in zip(volumes.shape[2:], size)]
    return volumes[(..., *(slice(s, s + n) for s, n in zip(starts, size)))]


def _affine(matrices: torch.Tensor, input_size, output_size) -> torch.Tensor:
    """affine_grid's (B, 3, 4) matrices for voxel-space maps (B, 3, 3) from output voxels to input voxels.

    affine_grid works in normalised (x, y, z) = (W, H, D) coordinates, each spanning its own tensor; scaling the
    output's to voxels and the input's back, diag(1 / input) @ matrix @ diag(output), keeps a rotation a rotation
    in voxel space for any sizes, and the two centres coincide.
    """
    def xyz(size) -> torch.Tensor:
        return torch.tensor(size[::-1], dtype=matrices.dtype, device=matrices.device)

    scaled = matrices * (xyz(output_size)[None, :] / xyz(input_size)[:, None])
    return torch.cat([scaled, torch.zeros(len(matrices), 3, 1, dtype=matrices.dtype, device=matrices.device)], dim=2)


def spatial(images, targets, config: AugmentConfig, generator, patch_size: tuple[int, int, int] | None = None):
    """Rotation (each axis, +-rotation_degrees) and isotropic scaling, as one affine resampling that also crops the
    centred `patch_size` patch (default: the input's size) out of a larger read (`read_size`).

    Samples that are neither rotated nor scaled are only cropped, without resampling.
    """
    batch, device = images.shape[0], images.device
    size = tuple(patch_size or images.shape[2:])
    if any(have < want or (have - want) % 2 for have, want in zip(images.shape[2:], size)):
        raise ValueError(f"a {size} patch is not the centre of a {tuple(images.shape[2:])} input")
    rotate = _chance(config.rotation_p, (batch, 1), generator, device)
    scale = _chance(config.scale_p, (batch,), generator, device)
    limit = math.radians(config.rotation_degrees)
    angles = _uniform(-limit, limit, (batch, 3), generator, device) * rotate
    factors = torch.where(scale, _uniform(*config.scale_range, (batch,), generator, device), 1.0)
    cropped_images = _centre_crop(images, size).contiguous()
    cropped_targets = _centre_crop(targets, size).contiguous()
    index = _selected(rotate[:, 0] | scale)
    if index is None:
        return cropped_images, cropped_targets
    # A zoom by s samples the input on a grid shrunk by 1/s: s < 1 zooms out.
    matrices = _rotation(angles[index]) / factors[index, None, None]
    # Only the part of the read that the drawn transforms reach is gathered (and, for targets, made float).
    reached = tuple(min(need, have) for need, have in zip(_covering_size(matrices, size), images.shape[2:]))
    grid = F.affine_grid(_affine(matrices, reached, size), [len(index), images.shape[1], *size], align_corners=False)
    source_images, source_targets = _centre_crop(images, reached)[index], _centre_crop(targets, reached)[index]
    moved = F.grid_sample(source_images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    labels = F.grid_sample(source_targets.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return _replace(cropped_images, index, moved), _replace(cropped_targets, index, labels.to(targets.dtype))


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
    images: torch.Tensor, targets: torch.Tensor, config: AugmentConfig, generator: torch.Generator,
    patch_size: tuple[int, int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole augmentation pipeline, in nnU-Net's order; returns new (images, targets) of `patch_size`.

    Args:
        images: (B, C, D, H, W) float, read at `read_size(patch_size, config)` (or at `patch_size`, for corners
            that zoom-outs and rotations leave empty).
        targets: (B, R, D, H, W) region masks of the same size.
        config: probabilities and ranges.
        generator: every random choice comes from it, on the batch's device.
        patch_size: the output size, centred in the input; default: the input's size.
    """
    images, targets = spatial(images, targets, config, generator, patch_size)
    images = gaussian_noise(images, config, generator)
    images = gaussian_blur(images, config, generator)
    images = brightness(images, config, generator)
    images = contrast(images, config, generator)
    images = low_resolution(images, config, generator)
    images = gamma(images, config, generator, config.gamma_inverted_p, invert=True)
    images = gamma(images, config, generator, config.gamma_p, invert=False)
    return mirror(images, targets, config, generator)
