"""The paper's (nnU-Net's) augmentation, batched in torch on the training device.

All transforms act on a whole batch at once: per-sample decisions become masks and per-sample parameters, so a GPU
does the work and the data loader only reads and crops. Probabilities and ranges come from `AugmentConfig`.
Images are (B, C, D, H, W) float; region targets (B, R, D, H, W) are moved with the images (nearest neighbour).

Rotation and scaling leave no empty corners: as in nnU-Net, they resample the final patch out of a larger read.
Their parameters are drawn where the patches are read (`draw_spatial`, in the loader), so that each batch reads
only as much as its own transforms reach (`read_size`): with the default ranges, 128^3 patches and batches of 2,
1.8x the patch's voxels on average, where a read sized for the worst case would hold 14x.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from transunet3d.config.schema import AugmentConfig

SPATIAL_IDENTITY = (0.0, 0.0, 0.0, 1.0)  # rotation angles about the three axes (radians) and the scale factor


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


def no_spatial(batch: int) -> np.ndarray:
    """(B, 4) spatial parameters that leave every sample as it is."""
    return np.tile(np.asarray(SPATIAL_IDENTITY), (batch, 1))


def draw_spatial(config: AugmentConfig, batch: int, rng: np.random.Generator) -> np.ndarray:
    """(B, 4) rotation angles and scale factors of a batch; `SPATIAL_IDENTITY` for samples left as they are.

    A sample is rotated with probability `rotation_p`, by an angle within +-rotation_degrees about each of the
    three axes, and scaled with probability `scale_p`. As batchgenerators does, half of the scale factors fall
    below 1 and half above when the range spans 1. Every value is drawn whether it is used or not, so the number
    of draws from `rng` never depends on the outcome.
    """
    limit = math.radians(config.rotation_degrees)
    rotate = rng.random(batch) < config.rotation_p
    scale = rng.random(batch) < config.scale_p
    angles = rng.uniform(-limit, limit, (batch, 3))
    low, high = config.scale_range
    if low < 1 < high:
        below = rng.random(batch) < 0.5
        factors = np.where(below, rng.uniform(low, 1.0, batch), rng.uniform(1.0, high, batch))
    else:
        factors = rng.uniform(low, high, batch)
    parameters = no_spatial(batch)
    parameters[rotate, :3] = angles[rotate]
    parameters[scale, 3] = factors[scale]
    return parameters


def _moved(parameters: torch.Tensor) -> torch.Tensor:
    """Which samples of (B, 4) spatial parameters are rotated or scaled."""
    return (parameters != torch.tensor(SPATIAL_IDENTITY, dtype=parameters.dtype, device=parameters.device)).any(1)


def _matrices(parameters: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) maps from output to input voxels, in (x, y, z) order: R / s (s < 1 zooms out)."""
    return _rotation(parameters[:, :3]) / parameters[:, 3, None, None]


def read_size(patch_size: tuple[int, int, int], parameters: np.ndarray) -> tuple[int, int, int]:
    """The patch to read so that `spatial` can make `patch_size` out of it with these (B, 4) parameters.

    Every output voxel of every rotated or scaled sample then samples inside the read, between two of its voxels
    along each axis (linear interpolation). The read exceeds the patch by an even number of voxels per axis, so
    that the patch is its exact centre; a batch without rotation or scaling reads the patch itself.

    For comparison, nnU-Net reads one size for every batch, from `get_patch_size`, which rotates about one axis
    at a time: 249^3 for a 128^3 patch with +-30 degrees and scales 0.7-1.4 (205^3 with nnU-Net v2's 0.85-1.25),
    where a rotation about all three axes with the largest zoom-out reaches 308 x 314 x 308.
    """
    parameters = torch.as_tensor(parameters, dtype=torch.float64)
    moved = parameters[_moved(parameters)]
    if not len(moved):
        return tuple(patch_size)
    return _covering_size(_matrices(moved), patch_size)


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


def spatial(images, targets, parameters: torch.Tensor, patch_size: tuple[int, int, int] | None = None):
    """Rotation and isotropic scaling by (B, 4) `parameters` (see `draw_spatial`), as one affine resampling that
    also crops the centred `patch_size` patch (default: the input's size) out of the read (`read_size`).

    Samples that are neither rotated nor scaled are only cropped, without resampling.
    """
    size = tuple(patch_size or images.shape[2:])
    if any(have < want or (have - want) % 2 for have, want in zip(images.shape[2:], size)):
        raise ValueError(f"a {size} patch is not the centre of a {tuple(images.shape[2:])} input")
    cropped_images = _centre_crop(images, size).contiguous()
    cropped_targets = _centre_crop(targets, size).contiguous()
    index = _selected(_moved(parameters))
    if index is None:
        return cropped_images, cropped_targets
    matrices = _matrices(parameters[index].double())
    # Only the part of the read that the transforms reach is gathered (and, for targets, made float).
    reached = tuple(min(need, have) for need, have in zip(_covering_size(matrices, size), images.shape[2:]))
    theta = _affine(matrices, reached, size).to(device=images.device, dtype=images.dtype)
    grid = F.affine_grid(theta, [len(index), images.shape[1], *size], align_corners=False)
    source_images, source_targets = _centre_crop(images, reached)[index], _centre_crop(targets, reached)[index]
    moved = F.grid_sample(source_images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    labels = F.grid_sample(source_targets.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return _replace(cropped_images, index, moved), _replace(cropped_targets, index, labels.to(targets.dtype))


def gaussian_noise(images, config: AugmentConfig, generator):
    """Zero-mean Gaussian noise whose standard deviation is drawn from `noise_variance` (nnU-Net's name for it:
    batchgenerators uses the drawn value as the standard deviation, and so do we)."""
    batch = images.shape[0]
    apply = _chance(config.noise_p, (batch,), generator, images.device)
    std = _uniform(*config.noise_variance, (batch,), generator, images.device)
    index = _selected(apply)
    if index is None:
        return images
    noise = torch.randn((len(index), *images.shape[1:]), generator=generator, device=images.device)
    return _replace(images, index, images[index] + noise * std[index][:, None, None, None, None])


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


def thick_slices(images, config: AugmentConfig, generator):
    """A scan acquired with thicker slices along one axis, as prediction brings it back to the training grid: per
    chosen sample and channel, the sample's axis is averaged over slabs `slices_factor` voxels thick (a box slice
    profile, so that a lesion thinner than a slice stays at partial-volume contrast, as `transunet3d phantom
    --resample-to` acquires it) and each slab's mean is repeated over its voxels (nearest neighbour, which is how
    preprocessing resamples a strongly anisotropic axis, docs/data.md).

    The axis is drawn once per sample, because the thick sequences of one examination share their slice direction
    (all axial, say); each channel draws its own thickness, as sequences do.

    `lowres_*` zooms all three axes alike and interpolates back trilinearly; this one simulates the 3-5 mm slices
    of clinical 2D sequences.
    """
    if config.slices_p == 0:  # off: no draws, so the other transforms see the random stream they always saw
        return images
    chosen, factor = _channel_choices(images, config.slices_p, config.slices_channel_p, config.slices_factor,
                                      generator)
    if not chosen:
        return images
    axes = torch.randint(0, 3, (images.shape[0],), generator=generator, device=images.device).tolist()
    out = images.clone()
    for b, c in chosen:
        axis = axes[b]
        size = list(images.shape[2:])
        size[axis] = max(1, round(size[axis] / float(factor[b, c])))
        slabs = F.adaptive_avg_pool3d(images[b:b + 1, c:c + 1], size)
        out[b, c] = F.interpolate(slabs, size=images.shape[2:], mode="nearest")[0, 0]
    return out


def bias_field(images, config: AugmentConfig, generator):
    """Add a smooth random field to each chosen sample and channel: local, channel-independent brightness, as coil
    inhomogeneity leaves it, which the global brightness, contrast and gamma transforms cannot mimic.

    The field is a coarse grid of standard normal values (`bias_grid`^3) interpolated trilinearly to the patch, times
    a strength drawn from (0, `bias_strength`), in units of the z-scored intensity.
    """
    if config.bias_p == 0:  # off: no draws, so the other transforms see the random stream they always saw
        return images
    chosen, strength = _channel_choices(images, config.bias_p, config.bias_channel_p, (0.0, config.bias_strength),
                                        generator)
    if not chosen:
        return images
    grid = (config.bias_grid,) * 3
    coarse = torch.randn((len(chosen), 1, *grid), generator=generator, device=images.device)
    fields = F.interpolate(coarse, size=images.shape[2:], mode="trilinear", align_corners=True)[:, 0]
    out = images.clone()
    for field, (b, c) in zip(fields, chosen):
        out[b, c] = images[b, c] + field.to(images.dtype) * strength[b, c]
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
    images: torch.Tensor, targets: torch.Tensor, spatial_parameters: torch.Tensor, config: AugmentConfig,
    generator: torch.Generator, patch_size: tuple[int, int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole augmentation pipeline, in nnU-Net's order; returns new (images, targets) of `patch_size`.

    Args:
        images: (B, C, D, H, W) float, read at `read_size(patch_size, spatial_parameters)`.
        targets: (B, R, D, H, W) region masks of the same size.
        spatial_parameters: (B, 4) rotation angles and scale factors from `draw_spatial`.
        config: probabilities and ranges of the other transforms.
        generator: every other random choice comes from it, on the batch's device.
        patch_size: the output size, centred in the input; default: the input's size.
    """
    images, targets = spatial(images, targets, spatial_parameters, patch_size)
    images = gaussian_noise(images, config, generator)
    images = gaussian_blur(images, config, generator)
    images = brightness(images, config, generator)
    images = contrast(images, config, generator)
    images = low_resolution(images, config, generator)
    images = thick_slices(images, config, generator)
    images = bias_field(images, config, generator)
    images = gamma(images, config, generator, config.gamma_inverted_p, invert=True)
    images = gamma(images, config, generator, config.gamma_p, invert=False)
    return mirror(images, targets, config, generator)
