"""Training patches from the preprocessing cache: random crops, a share of them centred on a region of the label
scheme (tumour, or in brats-mets-2025 also the resection cavity).

Only the patch is read from the memory-mapped case; parts of it outside the case are zero (images are z-scored, so
zero is the mean brain intensity, and background is zero anyway). With augmentation, each batch's rotations and
scalings are drawn here too, and the patch is read with the margin they reach (`augment.read_size`), which the
device crops back off. Every batch is drawn from a generator seeded by (seed, batch index, rank), so a resumed or
sharded run draws exactly the same patches and transforms.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from transunet3d.config.schema import AugmentConfig
from transunet3d.data.cache import CachedCase, damaged, open_case
from transunet3d.data.labels import DEFAULT_SCHEME, SCHEMES, LabelScheme
from transunet3d.errors import UserError
from transunet3d.training.augment import draw_spatial, no_spatial, read_size


class PatchBatch(NamedTuple):
    """One batch as the loader delivers it (numpy arrays from `PatchBatches.batch`, tensors from the loader).

    Attributes:
        images: (B, C, *read) float32.
        targets: (B, R, *read) uint8 region masks, one per region of the label scheme.
        spatial: (B, 4) rotation angles and scale factors drawn for the batch (`augment.draw_spatial`);
            `SPATIAL_IDENTITY` rows without augmentation.
    """

    images: np.ndarray | torch.Tensor
    targets: np.ndarray | torch.Tensor
    spatial: np.ndarray | torch.Tensor

    def tensors(self) -> PatchBatch:
        return PatchBatch(*(torch.from_numpy(array) for array in self))


def forced_foreground(batch_size: int, fraction: float) -> list[bool]:
    """Which samples of a batch must contain foreground: the last ones, nnU-Net's rule (1 of 2 for a third)."""
    first_forced = round(batch_size * (1 - fraction))
    return [index >= first_forced for index in range(batch_size)]


def _patch_start(rng: np.random.Generator, shape, patch, centre=None) -> np.ndarray:
    """Corner of the patch: around `centre` when given (clipped so the patch overlaps the case), else uniform."""
    shape, patch = np.asarray(shape), np.asarray(patch)
    low, high = np.minimum(0, shape - patch), np.maximum(0, shape - patch)
    if centre is None:
        return np.array([rng.integers(lo, hi + 1) for lo, hi in zip(low, high)])
    return np.clip(np.asarray(centre) - patch // 2, low, high)


def _window(start: np.ndarray, size, shape) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """(case, patch) slices of the part of a `size` window at `start` that lies inside a case of `shape`."""
    inside = tuple(slice(max(s, 0), min(s + n, limit)) for s, n, limit in zip(start, size, shape))
    return inside, tuple(slice(sl.start - s, sl.stop - s) for sl, s in zip(inside, start))


def foreground_centre(case: CachedCase, rng: np.random.Generator, lesion_fraction: float = 0.0):
    """A random voxel of a random region of the case's label scheme (WT, TC, ET, and RC in brats-mets-2025) that
    the case holds; None for a case without any (it gives a random patch).

    With probability `lesion_fraction`, the voxel is one of a lesion chosen uniformly among the region's lesions
    (26-connected components), so that a 3 mm metastasis is centred as often as a 30 mm one; otherwise it is drawn
    uniformly from the region's voxels (nnU-Net's rule), which favours large lesions by their volume.
    """
    locations = case.properties.get("foreground_locations", {})
    regions = [r for r in locations if locations[r]]  # the cache's regions, in the scheme's order
    if not regions:
        return None
    region = regions[rng.integers(len(regions))]
    if lesion_fraction > 0 and rng.random() < lesion_fraction:
        lesions = case.properties["lesion_locations"][region]
        lesion = lesions[rng.integers(len(lesions))]
        return lesion[rng.integers(len(lesion))]
    return locations[region][rng.integers(len(locations[region]))]


def _fill_patch(case: CachedCase, patch, rng: np.random.Generator, foreground: bool, image: np.ndarray,
                regions: np.ndarray, scheme: LabelScheme, lesion_fraction: float = 0.0) -> None:
    """Write one case's patch into the zeros of `image` (C, *read) and `regions` (R, *read) of `scheme`.

    Only the part of the read inside the case is copied and converted to regions; the rest stays zero.
    """
    read = image.shape[1:]
    centre = foreground_centre(case, rng, lesion_fraction) if foreground else None
    start = _patch_start(rng, case.image.shape[1:], patch, centre) - (np.asarray(read) - patch) // 2
    inside, target = _window(start, read, case.image.shape[1:])
    image[(..., *target)] = case.image[(..., *inside)]
    # A damaged cache, not a model, made every step's loss NaN (exit 0, nothing learned), or trained on labels
    # that no region holds: checked where the voxels are read, about 2% of a CPU training step.
    if not np.isfinite(image).all():
        raise damaged(_file(case.image, case), f"values that are not finite in case {case.case_id}")
    if case.seg is not None:
        labels = case.seg[inside]
        if labels.size and labels.max() > scheme.labels[-1]:
            raise damaged(_file(case.seg, case), f"label {labels.max()} in case {case.case_id}, which the "
                                                   f"{scheme.name} scheme does not have")
        regions[(..., *target)] = scheme.labels_to_regions(labels)


def _file(array: np.ndarray, case: CachedCase) -> Path:
    """The cache file a memory-mapped array was read from (the case id for an array made in memory)."""
    return Path(getattr(array, "filename", None) or case.case_id)


def sample_patch(case: CachedCase, patch: tuple[int, int, int], rng: np.random.Generator, foreground: bool,
                 read: tuple[int, int, int] | None = None,
                 scheme: LabelScheme = SCHEMES[DEFAULT_SCHEME]) -> tuple[np.ndarray, np.ndarray]:
    """(image (C, *read) float32, region targets (R, *read) uint8 of `scheme`) of one case.

    The patch is placed as a `patch`-sized one (uniformly, or around a foreground voxel when `foreground`) and
    read as `read` voxels (default: `patch`) around the same centre, the larger input that spatial augmentation
    crops back.
    """
    read = tuple(patch if read is None else read)
    image = np.zeros((case.image.shape[0], *read), dtype=np.float32)
    regions = np.zeros((len(scheme.regions), *read), dtype=np.uint8)
    _fill_patch(case, patch, rng, foreground, image, regions, scheme)
    return image, regions


@dataclass
class PatchBatches:
    """Batches of training patches from cached cases; `batch(i)` is a pure function of (seed, i, rank).

    With `augment`, each batch also draws its rotations and scalings and reads its patches with the margin they
    need (`augment.read_size`) around the same centres; without, the patches themselves. The targets are the
    regions of `scheme`, the label scheme of the cache.
    """

    root: Path
    case_ids: list[str]
    patch_size: tuple[int, int, int]
    batch_size: int
    foreground_fraction: float = 1 / 3
    lesion_fraction: float = 0.0  # of the foreground-centred patches, those centred on a lesion chosen uniformly
    seed: int = 0
    rank: int = 0
    augment: AugmentConfig | None = None
    scheme: LabelScheme = SCHEMES[DEFAULT_SCHEME]

    def __post_init__(self) -> None:
        self._cases: dict[str, CachedCase] | None = None

    @property
    def cases(self) -> dict[str, CachedCase]:
        """The memory-mapped cases, opened on first use in each process (loader workers open their own)."""
        if self._cases is None:
            self._cases = {case_id: open_case(self.root, case_id) for case_id in self.case_ids}
        return self._cases

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_cases": None}

    def batch(self, index: int) -> PatchBatch:
        """Images, region targets and spatial parameters of batch `index`."""
        rng = np.random.default_rng([self.seed, index, self.rank])
        if self.augment is None:
            spatial = no_spatial(self.batch_size)
        else:  # a stream of its own: the patches drawn do not depend on the augmentation
            own = np.random.default_rng([self.seed, index, self.rank, 1])
            spatial = draw_spatial(self.augment, self.batch_size, own)
        read = read_size(tuple(self.patch_size), spatial)
        channels = self.cases[self.case_ids[0]].image.shape[0]
        # Samples are written in place: for enlarged reads, stacking separate arrays cost as much as reading them.
        images = np.zeros((self.batch_size, channels, *read), dtype=np.float32)
        regions = np.zeros((self.batch_size, len(self.scheme.regions), *read), dtype=np.uint8)
        for sample, forced in enumerate(forced_foreground(self.batch_size, self.foreground_fraction)):
            case = self.cases[self.case_ids[rng.integers(len(self.case_ids))]]
            _fill_patch(case, tuple(self.patch_size), rng, forced, images[sample], regions[sample], self.scheme,
                        self.lesion_fraction)
        return PatchBatch(images, regions, spatial)


class _EpochPatches(torch.utils.data.Dataset):
    """Batches `first` .. `first + count - 1` of a PatchBatches, as a dataset of whole batches."""

    def __init__(self, batches: PatchBatches, first: int, count: int):
        self.batches, self.first, self.count = batches, first, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> PatchBatch | _Unreadable:
        try:
            return self.batches.batch(self.first + index).tensors()
        except UserError as error:
            return _Unreadable(str(error))


class _Unreadable(NamedTuple):
    """A UserError met by a loader process, carried to the training process as a value: torch raises a worker's
    exception again with the worker's traceback in its message, which would end the command in many lines."""

    message: str


class _Loaded:
    """A DataLoader's batches, with a `_Unreadable` raised again as the one-line UserError it was."""

    def __init__(self, loader: torch.utils.data.DataLoader):
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            if isinstance(batch, _Unreadable):
                raise UserError(batch.message)
            yield batch


def patch_loader(batches: PatchBatches, first: int, count: int, workers: int, pin_memory: bool = False) -> _Loaded:
    """Batches `first` .. `first + count - 1` in order, read ahead by `workers` processes (0: in this one).

    Workers only read and crop; augmentation runs on the training device.
    """
    return _Loaded(torch.utils.data.DataLoader(_EpochPatches(batches, first, count), batch_size=None, shuffle=False,
                                               num_workers=workers, pin_memory=pin_memory))
