"""Where the windows of a sliding-window prediction go: an evenly spaced grid, the same seen from either end."""

from __future__ import annotations

import itertools
import math

Window = tuple[slice, slice, slice]


def window_starts(size: int, patch: int, step: float) -> list[int]:
    """Start offsets along one axis for windows of `patch` voxels, at most `step` * patch apart (nnU-Net's rule).

    The first window starts at 0 and the last ends at `size`; the grid is mirror-symmetric (the starts seen from the
    other end are the same list), so flipped views of the volume are covered by exactly the same windows. A middle
    window can only be centred when size - patch is even; otherwise the count is made even by one more window.
    """
    if size < patch:
        raise ValueError(f"axis of {size} voxels is smaller than the patch ({patch}); pad it first")
    if not 0 < step <= 1:
        raise ValueError(f"step must be in (0, 1], not {step}")
    span = size - patch
    count = min(math.ceil(span / (step * patch)) + 1, span + 1)  # at most one window per start: none twice
    if count % 2 and span % 2:
        count += 1
    if count == 1:
        return [0]
    first_half = [math.floor(i * span / (count - 1) + 0.5) for i in range((count + 1) // 2)]
    return first_half + [span - start for start in reversed(first_half[: count // 2])]


def window_grid(shape: tuple[int, int, int], patch: tuple[int, int, int], step: float) -> list[Window]:
    """Every window (as slices) covering a volume of `shape`, in C order of their starts."""
    starts = [window_starts(size, side, step) for size, side in zip(shape, patch)]
    return [tuple(slice(s, s + side) for s, side in zip(corner, patch)) for corner in itertools.product(*starts)]


def padding_to_patch(shape: tuple[int, int, int], patch: tuple[int, int, int]) -> list[tuple[int, int]]:
    """(before, after) zero padding per axis that makes a volume at least as large as the patch, centred."""
    missing = [max(side - size, 0) for size, side in zip(shape, patch)]
    return [(m // 2, m - m // 2) for m in missing]
