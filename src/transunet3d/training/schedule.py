"""Learning-rate schedule: optional linear warm-up, then polynomial decay (power 0.9 in the paper)."""

from __future__ import annotations


def poly_lr(base_lr: float, iteration: int, total: int, power: float = 0.9, warmup: int = 0) -> float:
    """Learning rate for `iteration` (0-based) of `total`."""
    if iteration < warmup:
        return base_lr * (iteration + 1) / warmup
    progress = (iteration - warmup) / max(total - warmup, 1)
    return base_lr * (1 - min(progress, 1.0)) ** power
