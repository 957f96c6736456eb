"""Validation pseudo-Dice per region, accumulated over patches (as nnU-Net reports during training)."""

from __future__ import annotations

import torch


class PseudoDice:
    """Accumulates TP, FP, FN per region over batches; Dice = 2TP / (2TP + FP + FN)."""

    def __init__(self, regions: int):
        self.tp = torch.zeros(regions, dtype=torch.float64)
        self.fp = torch.zeros(regions, dtype=torch.float64)
        self.fn = torch.zeros(regions, dtype=torch.float64)

    def update(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        predicted, actual = logits > 0, targets.bool()
        dims = (0, *range(2, logits.ndim))
        self.tp += (predicted & actual).sum(dims).double().cpu()
        self.fp += (predicted & ~actual).sum(dims).double().cpu()
        self.fn += (~predicted & actual).sum(dims).double().cpu()

    def values(self) -> list[float]:
        denominator = 2 * self.tp + self.fp + self.fn
        return [float(2 * t / d) if d > 0 else float("nan") for t, d in zip(self.tp, denominator)]
