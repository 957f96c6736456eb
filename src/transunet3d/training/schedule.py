"""Learning-rate schedules: poly decay (the paper's segmentation training) and cosine (MAE pre-training)."""

from __future__ import annotations

import math


def poly_lr(base_lr: float, iteration: int, total: int, power: float = 0.9, warmup: int = 0) -> float:
    """Learning rate for `iteration` (0-based) of `total`."""
    if iteration < warmup:
        return base_lr * (iteration + 1) / warmup
    progress = (iteration - warmup) / max(total - warmup, 1)
    return base_lr * (1 - min(progress, 1.0)) ** power


def cosine_lr(peak_lr: float, iteration: int, total: int, warmup: int = 0) -> float:
    """Linear warm-up to `peak_lr`, then a half cosine down to 0 at `total` (MAE's schedule)."""
    if iteration < warmup:
        return peak_lr * (iteration + 1) / warmup
    progress = min((iteration - warmup) / max(total - warmup, 1), 1.0)
    return peak_lr * 0.5 * (1 + math.cos(math.pi * progress))
