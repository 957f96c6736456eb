"""Test-time augmentation views: flips along each axis and rotations by 90/180/270 degrees in the axial plane.

A view acts on the last three (spatial, x y z) dimensions of a tensor; `invert` maps a prediction made on the
viewed input back onto the original grid.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

SPATIAL = (-3, -2, -1)
AXIAL = (-3, -2)  # x and y: the axial plane of a BraTS (RAS/LPS) volume
TTA_MODES = ("none", "flip", "flip+rot")


@dataclass(frozen=True)
class View:
    """Flip the axes in `flips` (0 = x, 1 = y, 2 = z), then rotate by `quarter_turns` x 90 degrees in x-y."""

    flips: tuple[int, ...] = ()
    quarter_turns: int = 0

    def apply(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.flips:
            tensor = torch.flip(tensor, [SPATIAL[a] for a in self.flips])
        return torch.rot90(tensor, self.quarter_turns, AXIAL) if self.quarter_turns else tensor

    def invert(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.quarter_turns:
            tensor = torch.rot90(tensor, -self.quarter_turns, AXIAL)
        return torch.flip(tensor, [SPATIAL[a] for a in self.flips]) if self.flips else tensor

    @property
    def rotates(self) -> bool:
        return self.quarter_turns % 2 == 1


def tta_views(mode: str) -> list[View]:
    """The distinct views of `mode`, identity first.

    "flip": the 8 combinations of flips along x, y and z (nnU-Net's mirroring). "flip+rot": those combined with
    rotations by 90, 180 and 270 degrees in the axial plane; a 180-degree turn equals flipping x and y, so the
    distinct views are the 16 of the 8 flips with and without a quarter turn.
    """
    if mode not in TTA_MODES:
        raise ValueError(f"unknown TTA mode {mode!r}; choose one of {', '.join(TTA_MODES)}")
    if mode == "none":
        return [View()]
    flips = [axes for n in range(4) for axes in itertools.combinations(range(3), n)]
    turns = (0, 1) if mode == "flip+rot" else (0,)
    return [View(axes, turn) for turn in turns for axes in flips]
