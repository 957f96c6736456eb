"""Training patches from the preprocessing cache: random crops, a share of them centred on tumour.

Only the patch is read from the memory-mapped case; parts of the patch outside the case are zero (images are
z-scored, so zero is the mean brain intensity, and background is zero anyway). Every batch is drawn from a
generator seeded by (seed, batch index, rank), so a resumed or sharded run draws exactly the same patches.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from transunet3d.config.schema import REGIONS
from transunet3d.data.cache import CachedCase, open_case
from transunet3d.data.regions import labels_to_regions


def forced_foreground(batch_size: int, fraction: float) -> list[bool]:
    """Which samples of a batch must contain tumour: the last ones, nnU-Net's rule (1 of 2 for a third)."""
    first_forced = round(batch_size * (1 - fraction))
    return [index >= first_forced for index in range(batch_size)]


def _patch_start(rng: np.random.Generator, shape, patch, centre=None) -> np.ndarray:
    """Corner of the patch: around `centre` when given (clipped so the patch overlaps the case), else uniform."""
    shape, patch = np.asarray(shape), np.asarray(patch)
    low, high = np.minimum(0, shape - patch), np.maximum(0, shape - patch)
    if centre is None:
        return np.array([rng.integers(lo, hi + 1) for lo, hi in zip(low, high)])
    return np.clip(np.asarray(centre) - patch // 2, low, high)


def _read(array: np.ndarray, start: np.ndarray, patch: tuple[int, int, int]) -> np.ndarray:
    """array[..., start:start+patch] with zeros wherever the window leaves the array."""
    spatial = array.shape[-3:]
    out = np.zeros((*array.shape[:-3], *patch), dtype=array.dtype)
    source = tuple(slice(max(s, 0), min(s + p, n)) for s, p, n in zip(start, patch, spatial))
    target = tuple(slice(sl.start - s, sl.stop - s) for sl, s in zip(source, start))
    out[(..., *target)] = array[(..., *source)]
    return out


def sample_patch(case: CachedCase, patch: tuple[int, int, int], rng: np.random.Generator, foreground: bool,
                 read: tuple[int, int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(image (C, *read) float32, region targets (3, *read) uint8) of one case.

    The patch is placed as a `patch`-sized one (uniformly, or around a tumour voxel when `foreground`) and read as
    `read` voxels (default: `patch`) around the same centre, the larger input that spatial augmentation crops back.
    """
    centre = None
    if foreground:
        locations = case.properties.get("foreground_locations", {})
        regions = [r for r in REGIONS if locations.get(r)]
        if regions:  # a case without tumour gives a random patch
            region_locations = locations[regions[rng.integers(len(regions))]]
            centre = region_locations[rng.integers(len(region_locations))]
    read = patch if read is None else read
    start = _patch_start(rng, case.image.shape[1:], patch, centre) - (np.asarray(read) - patch) // 2
    image = _read(case.image, start, read)
    if case.seg is None:
        return image, np.zeros((len(REGIONS), *read), dtype=np.uint8)
    return image, labels_to_regions(_read(case.seg, start, read)).astype(np.uint8)


@dataclass
class PatchBatches:
    """Batches of training patches from cached cases; `batch(i)` is a pure function of (seed, i, rank).

    Patches are placed as `patch_size` patches and read as `read_size` ones around the same centre (default: the
    patch itself; larger for spatial augmentation, see `augment.read_size`).
    """

    root: Path
    case_ids: list[str]
    patch_size: tuple[int, int, int]
    batch_size: int
    foreground_fraction: float = 1 / 3
    seed: int = 0
    rank: int = 0
    read_size: tuple[int, int, int] | None = None

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

    def batch(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Images (B, C, *read) float32 and region targets (B, 3, *read) uint8 of batch `index`."""
        rng = np.random.default_rng([self.seed, index, self.rank])
        read = tuple(self.read_size or self.patch_size)
        samples = []
        for forced in forced_foreground(self.batch_size, self.foreground_fraction):
            case = self.cases[self.case_ids[rng.integers(len(self.case_ids))]]
            samples.append(sample_patch(case, tuple(self.patch_size), rng, forced, read))
        return np.stack([s[0] for s in samples]), np.stack([s[1] for s in samples])


class _EpochPatches(torch.utils.data.Dataset):
    """Batches `first` .. `first + count - 1` of a PatchBatches, as a dataset of whole batches."""

    def __init__(self, batches: PatchBatches, first: int, count: int):
        self.batches, self.first, self.count = batches, first, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        images, targets = self.batches.batch(self.first + index)
        return torch.from_numpy(images), torch.from_numpy(targets)


def patch_loader(batches: PatchBatches, first: int, count: int, workers: int, pin_memory: bool = False):
    """Batches `first` .. `first + count - 1` in order, read ahead by `workers` processes (0: in this one).

    Workers only read and crop; augmentation runs on the training device.
    """
    return torch.utils.data.DataLoader(_EpochPatches(batches, first, count), batch_size=None, shuffle=False,
                                       num_workers=workers, pin_memory=pin_memory)
