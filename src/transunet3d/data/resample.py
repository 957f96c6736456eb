"""Resampling to the dataset's target spacing and back, following nnU-Net v2's rules.

Every interpolation here is extent-preserving (`align_corners=False`): voxel centres sit at (i + 0.5) * size, so a
volume keeps its field of view when its voxel size changes. Where one axis is much coarser than the others (more
than `ANISOTROPY` times, in the source or the target spacing), that axis is interpolated with nearest neighbour and
only the others smoothly, as nnU-Net does: a smooth interpolator across 5 mm slices invents structure between them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from transunet3d.data.crop import crop, mask_bounds
from transunet3d.data.labels import DEFAULT_SCHEME, SCHEMES, LabelScheme

ANISOTROPY = 3.0  # nnU-Net's ANISO_THRESHOLD
LOW_RES_PERCENTILE = 10  # target of a strongly anisotropic dataset's coarse axis (nnU-Net's plan)
SLAB_ELEMENTS = 2**24  # temporaries of one slab of resample_probabilities (64 MiB of float32)

Spacing = Sequence[float]
Shape = Sequence[int]


def target_spacing(spacings: Sequence[Spacing], shapes: Sequence[Shape]) -> tuple[float, float, float]:
    """The dataset's target voxel size, by nnU-Net v2's plan (`determine_fullres_target_spacing`).

    The per-axis median of the cases' spacings; but when the median's coarsest axis is more than 3x any other and
    the cases have more than 3x fewer voxels along it than along any other (a stack of thick slices), that axis
    takes the 10th percentile of its spacings instead (and never less than the others' largest), so that the thin
    slices of some cases are not averaged away by the thick slices of most.

    Args:
        spacings: voxel size (mm) of every training case, in the canonical axis order.
        shapes: their shapes after cropping to the brain, same order.
    """
    spacings = np.asarray(spacings, dtype=np.float64)
    target = np.percentile(spacings, 50, axis=0)
    median_shape = np.percentile(np.asarray(shapes, dtype=np.float64), 50, axis=0)
    coarse = int(np.argmax(target))
    others = [axis for axis in range(3) if axis != coarse]
    few_voxels = median_shape[coarse] * ANISOTROPY < min(median_shape[others])
    if shapes_decide(spacings) and few_voxels:
        low = float(np.percentile(spacings[:, coarse], LOW_RES_PERCENTILE))
        # nnU-Net's small margin keeps the coarse axis the coarsest.
        target[coarse] = low if low >= max(target[others]) else max(target[others]) + 1e-5
    return tuple(float(s) for s in target)


def shapes_decide(spacings: Sequence[Spacing]) -> bool:
    """Whether the cases' shapes take part in `target_spacing`: only when the median spacing's coarsest axis is
    more than `ANISOTROPY` times any other."""
    target = np.percentile(np.asarray(spacings, dtype=np.float64), 50, axis=0)
    coarse = int(np.argmax(target))
    return bool(target[coarse] > ANISOTROPY * max(np.delete(target, coarse)))


def resampled_shape(shape: Shape, spacing: Spacing, target: Spacing) -> tuple[int, int, int]:
    """The shape of a `shape` volume of voxel size `spacing` at voxel size `target`: same extent, at least 1.

    Computed as nnU-Net's `compute_new_shape` does, s / t * n rounded half to even: at an extent of exactly half a
    voxel the order of the operations decides (245 voxels of 1.2 mm at 0.8 mm: 1.2 / 0.8 * 245 = 367.4999...),
    and the grid must be nnU-Net's for its images to be."""
    return tuple(max(1, round(s / t * n)) for n, s, t in zip(shape, spacing, target))


def anisotropic_axis(spacing: Spacing, target: Spacing) -> int | None:
    """The axis to interpolate with nearest neighbour, or None (nnU-Net's `determine_do_sep_z_and_axis`).

    The source spacing decides first, then the target: if its coarsest voxel size is more than `ANISOTROPY` times
    its finest, its one coarsest axis is separate; two equally coarse axes (0.24 x 1.25 x 1.25) mean none is.
    """
    for candidate in (np.asarray(spacing, dtype=np.float64), np.asarray(target, dtype=np.float64)):
        if candidate.max() / candidate.min() > ANISOTROPY:
            coarsest = np.flatnonzero(candidate == candidate.max())
            return int(coarsest[0]) if coarsest.size == 1 else None
    return None


def resample_image(
    image: np.ndarray, shape: Shape, spacing: Spacing, target: Spacing,
    mode: Literal["spline", "trilinear"] = "spline",
) -> np.ndarray:
    """`image` (C, X, Y, Z) float32 resampled to spatial `shape`; `image` itself when the shape does not change.

    Args:
        image: the channels of one case.
        shape: the output's spatial shape (usually `resampled_shape(image.shape[1:], spacing, target)`).
        spacing, target: the voxel sizes before and after; they decide the anisotropic axis.
        mode: "spline" (third-order B-spline, nnU-Net's default for images; output clipped to each interpolated
            piece's input range like scikit-image, so that it never overshoots) or "trilinear" (torch).
    """
    shape = tuple(int(n) for n in shape)
    axis = anisotropic_axis(spacing, target)
    if tuple(image.shape[1:]) == shape or axis is None:
        return resample_smoothly(image, shape, mode)
    smooth = _smooth_function(mode)
    sliced = np.moveaxis(image, 1 + axis, 0)  # (slices, C, a, b): each slice interpolated in its own plane
    planes = np.stack([smooth(piece, tuple(n for i, n in enumerate(shape) if i != axis)) for piece in sliced])
    return _nearest_along(np.moveaxis(planes, 0, 1 + axis), 1 + axis, shape[axis])


def resample_smoothly(image: np.ndarray, shape: Shape, mode: Literal["spline", "trilinear"] = "spline") -> np.ndarray:
    """`image` (C, X, Y, Z) resampled to spatial `shape` by `mode` along every axis, none by nearest neighbour
    (`image` itself when the shape does not change): what a simulated acquisition refines by, where
    `resample_image` takes nnU-Net's separate axis."""
    shape = tuple(int(n) for n in shape)
    return image if tuple(image.shape[1:]) == shape else _smooth_function(mode)(image, shape)


def _smooth_function(mode: str) -> Callable[[np.ndarray, tuple[int, ...]], np.ndarray]:
    if mode not in ("spline", "trilinear"):
        raise ValueError(f"unknown resampling mode {mode!r} (spline or trilinear)")
    return _spline if mode == "spline" else _trilinear


def _spline(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Third-order spline per channel (scipy's zoom on the pixel grid, edge values extended), clipped to the
    channel's input range: scikit-image's `resize(order=3, mode="edge")` that nnU-Net calls."""
    out = np.empty((image.shape[0], *shape), dtype=np.float32)
    for channel, volume in enumerate(image):
        zoom = [n / m for n, m in zip(shape, volume.shape)]
        ndimage.zoom(volume, zoom, output=out[channel], order=3, mode="nearest", grid_mode=True)
        np.clip(out[channel], volume.min(), volume.max(), out=out[channel])
    return out


def _trilinear(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Linear interpolation along every axis of `image` (C, *spatial) with torch (2D or 3D)."""
    mode = "trilinear" if len(shape) == 3 else "bilinear"
    with torch.no_grad():
        out = F.interpolate(torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None], size=shape,
                            mode=mode, align_corners=False)
    return out[0].numpy()


def nearest_sources(count: int, size: int) -> np.ndarray:
    """Which of `count` input slices each of `size` output slices takes, resampled by nearest neighbour.

    Output i sits at input coordinate (count / size) * (i + 0.5) - 0.5, and the slice is the one scipy's
    `map_coordinates` (order 0) picks there, as nnU-Net resamples a separate axis: at an exact tie between two
    slices the rounding of that expression decides, so it is computed the same way.
    """
    coordinates = (float(count) / size) * (np.arange(size, dtype=np.float64) + 0.5) - 0.5
    return ndimage.map_coordinates(np.arange(count, dtype=np.float64), coordinates[None], order=0,
                                   mode="nearest").astype(np.int64)


def _nearest_along(array: np.ndarray, axis: int, size: int) -> np.ndarray:
    """Nearest-neighbour resampling of one axis to `size` (`nearest_sources`)."""
    return np.ascontiguousarray(np.take(array, nearest_sources(array.shape[axis], size), axis=axis))


def resample_labels(seg: np.ndarray, shape: Shape, spacing: Spacing, target: Spacing,
                    scheme: LabelScheme = SCHEMES[DEFAULT_SCHEME]) -> np.ndarray:
    """A label map (X, Y, Z) uint8 of `scheme` resampled to `shape`, region by region;
    `seg` itself when the shape does not change.

    Each region of the scheme (WT, TC, ET, and RC in 2025) is interpolated linearly as a 0/1 float mask (the
    anisotropic axis by nearest neighbour) and kept where it reaches 0.5, then the regions are written back as
    labels (`LabelScheme.regions_to_labels`). Linear per mask is nnU-Net's order-1 rule for label maps; doing it
    per nested region rather than per label keeps a small enhancing core inside its tumour: its TC and WT masks
    include it, so they reach 0.5 wherever ET does, whereas per label a thin rim of 3 around 1 can lose the vote to
    the background on either side. The cavity, not nested, is resampled as a region of its own; where the tumour
    reaches 0.5 too (only at their common border: disjoint masks interpolate to at most 1 together) the tumour is
    written over it, as in prediction.

    A small lesion can reach 0.5 nowhere (a 2 mm thick one between the centres of 3 mm slices, or one coarse voxel
    spread over four finer ones); each such 26-connected component is resampled by nearest neighbour instead, so
    that no lesion is lost, since lesion-wise metrics count a missed lesion as a whole. This is done per region,
    so it holds for the cavity as well: only a cavity component whose every restored voxel the tumour also claims
    is lost, to the tumour.
    """
    shape = tuple(int(n) for n in shape)
    if tuple(seg.shape) == shape:
        return seg
    source = scheme.labels_to_regions(seg)
    return labels_from_fractions(source, resample_image(source.astype(np.float32), shape, spacing, target,
                                                        "trilinear"), scheme)


def labels_from_fractions(source: np.ndarray, fractions: np.ndarray, scheme: LabelScheme) -> np.ndarray:
    """Labels on a new grid from each region's fraction there (R, ...): a region where it reaches 0.5, and every
    26-connected component of its `source` mask (R, ... on the old grid) that reaches 0.5 nowhere kept anyway
    (`vanished_components`), written back by the scheme's order."""
    regions = fractions >= 0.5
    for mask, values, kept in zip(source, fractions, regions):
        flat, fraction = kept.reshape(-1), values.reshape(-1)
        restored, _ = vanished_components(mask, kept.shape, kept=lambda voxels, flat=flat: flat[voxels],
                                          rank=lambda _, voxels, fraction=fraction: fraction[voxels])
        flat[restored] = True
    return scheme.regions_to_labels(regions)


def keep_vanished_lesions(source: np.ndarray, resampled: np.ndarray, thresholds: Sequence[float]) -> None:
    """Region probabilities resampled to another grid (`resampled`, R, ..., changed in place) that keep every
    lesion of the old grid's (`source`, R, ...): each 26-connected component above its region's threshold in
    `source` that the resampled values exceed the threshold nowhere in (`vanished_components`) takes the values
    of its own voxels back by nearest neighbour.

    Smooth interpolation lowers the peak of a lesion a voxel or two across: a core at 0.68 on the network's grid,
    spread over 0.6 mm voxels, reached 0.33 at most and was lost as a whole under a 0.6 threshold, where the
    reference's own resampling keeps every lesion (`resample_labels`).
    """
    for old_values, values, threshold in zip(source, resampled, thresholds):
        old, new = old_values.reshape(-1), values.reshape(-1)
        restored, taken_from = vanished_components(old_values > threshold, values.shape,
                                                    kept=lambda voxels, new=new, t=threshold: new[voxels] > t,
                                                    rank=lambda voxels, _, old=old: old[voxels])
        new[restored] = np.maximum(new[restored], old[taken_from])


def vanished_components(mask: np.ndarray, shape: Shape, kept: Callable[[np.ndarray], np.ndarray],
                        rank: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Where to restore every 26-connected component of `mask` (old grid) that a resampling to `shape` (new grid,
    extent-preserving) lost: the new voxels whose nearest old voxel is in it; when there are none (it is thinner
    than the new voxels), the new voxel holding the centre of its highest-ranked old voxel. Returns the restored
    voxels and the old voxel each stands for, as flat indices into the new and the old grid.

    Args:
        kept: whether the region holds each of the given new voxels (flat indices) already. A component counts as
            lost when it holds none of those that hold its voxels' centres.
        rank: for old voxels and the new voxels holding their centres (flat indices, pairwise), the values by
            which a thin component's peak is chosen.

    Everything is computed within the bounding box of `mask` and the new voxels it maps to: a few lesions in a
    512x512x300 grid cost no whole-grid array.
    """
    none = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    box = mask_bounds(mask)
    if box is None:
        return none
    components, count = ndimage.label(crop(mask, box), structure=np.ones((3, 3, 3), dtype=bool))
    found = np.nonzero(components)
    label, voxels = components[found], tuple(index + lo for index, (lo, _) in zip(found, box))
    # The new voxel holding each old voxel's centre.
    shape = tuple(int(n) for n in shape)
    target = np.ravel_multi_index(
        [np.minimum(((v + 0.5) * n / m).astype(np.int64), n - 1) for v, n, m in zip(voxels, shape, mask.shape)],
        shape)
    lost = np.bincount(label, weights=kept(target), minlength=count + 1) == 0
    lost[0] = False
    if not lost.any():
        return none
    sources = [nearest_sources(m, n) for m, n in zip(mask.shape, shape)]
    spans = [np.nonzero((taken >= lo) & (taken < hi))[0] for taken, (lo, hi) in zip(sources, box)]
    nearest = components[np.ix_(*(taken[span] - lo for taken, span, (lo, _) in zip(sources, spans, box)))]
    hit = np.nonzero(lost[nearest])
    new = tuple(span[index] for span, index in zip(spans, hit))
    restored = [np.ravel_multi_index(new, shape)]
    taken_from = [np.ravel_multi_index(tuple(taken[index] for taken, index in zip(sources, new)), mask.shape)]
    thin = lost.copy()
    thin[nearest[hit]] = False
    candidates = thin[label]
    if candidates.any():
        label, target = label[candidates], target[candidates]
        old = np.ravel_multi_index(tuple(v[candidates] for v in voxels), mask.shape)
        order = np.lexsort((rank(old, target), label))  # by component, then by rank: the last one is the peak
        last_of_each = np.r_[label[order][1:] != label[order][:-1], True]
        restored.append(target[order][last_of_each])
        taken_from.append(old[order][last_of_each])
    return np.concatenate(restored), np.concatenate(taken_from)


def resample_probabilities(
    probabilities: torch.Tensor, shape: Shape, device: torch.device | str | None = None,
    slab_elements: int = SLAB_ELEMENTS, nearest_axis: int | None = None,
) -> torch.Tensor:
    """Region probabilities (R, X, Y, Z) resampled trilinearly (extent-preserving) to spatial `shape` on `device`.

    Equal to `F.interpolate(mode="trilinear", align_corners=False)`, but computed as three 1D linear
    interpolations over slabs of output rows, so that the memory beyond input and output stays below about
    `slab_elements` values (one slab's temporaries) however large the output: a 512x512x300 grid of three regions
    is 0.9 GB, and F.interpolate's own temporaries would come on top of it.

    Args:
        probabilities: on any device; only the slab being worked on is copied to `device`.
        shape: the output's spatial shape (the input's own grid, in prediction).
        device: where to compute and return the result; default the input's device.
        slab_elements: the temporaries' budget in values; a slab has at least one output row.
        nearest_axis: a spatial axis (0-2) taken by nearest neighbour instead (`nearest_sources`): the
            anisotropic axis of the two grids (`anisotropic_axis`), with the orders nnU-Net resamples its logits
            with (`resample_data_or_seg_to_shape`, order 1, order_z 0) and as preprocessing resamples images.
    """
    device = torch.device(device) if device is not None else probabilities.device
    shape = tuple(int(n) for n in shape)
    channels, *source_shape = probabilities.shape
    out = torch.empty((channels, *shape), dtype=torch.float32, device=device)
    rows = slab_rows(channels, source_shape, shape, slab_elements)
    first, second, last = ((_nearest_taps if axis == nearest_axis else _linear_taps)(n, m, device)
                           for axis, (n, m) in enumerate(zip(source_shape, shape)))
    with torch.no_grad():
        for start in range(0, shape[0], rows):
            stop = min(start + rows, shape[0])
            low, high = int(first[0][start]), int(first[1][stop - 1]) + 1
            slab = probabilities[:, low:high].to(device=device, dtype=torch.float32)
            taps = (first[0][start:stop] - low, first[1][start:stop] - low, first[2][start:stop])
            slab = _interpolate_axis(slab, 1, taps)
            slab = _interpolate_axis(slab, 2, second)
            out[:, start:stop] = _interpolate_axis(slab, 3, last)
    return out


def slab_rows(channels: int, source_shape: Shape, shape: Shape, slab_elements: int = SLAB_ELEMENTS) -> int:
    """Output rows (first spatial axis) per slab of `resample_probabilities`, so that one slab's temporaries stay
    within `slab_elements` values: per row, at most four arrays (the input of a 1D step, its two gathered taps and
    their blend) of at most channels x max(Y, Y') x max(Z, Z') values."""
    per_row = 4 * channels * max(source_shape[1], shape[1]) * max(source_shape[2], shape[2])
    return max(1, min(int(shape[0]), slab_elements // per_row))


def _linear_taps(count: int, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each of `size` outputs along an axis of `count` inputs: the two input indices and the weight of the
    second, with torch's align_corners=False rule (source (i + 0.5) * count / size - 0.5, clamped at 0)."""
    source = ((torch.arange(size, dtype=torch.float64) + 0.5) * (count / size) - 0.5).clamp(min=0)
    lower = source.floor().long().clamp(max=count - 1)
    upper = (lower + 1).clamp(max=count - 1)
    return lower.to(device), upper.to(device), (source - lower).to(device=device, dtype=torch.float32)


def _nearest_taps(count: int, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`_linear_taps` of nearest-neighbour resampling (`nearest_sources`)."""
    source = torch.from_numpy(nearest_sources(count, size)).to(device)
    return source, source, torch.zeros(size, dtype=torch.float32, device=device)


def _interpolate_axis(array: torch.Tensor, axis: int, taps: tuple[torch.Tensor, ...]) -> torch.Tensor:
    lower, upper, weight = taps
    view = [1] * array.ndim
    view[axis] = -1
    return torch.lerp(array.index_select(axis, lower), array.index_select(axis, upper), weight.view(view))
