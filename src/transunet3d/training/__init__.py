"""Training: patch sampling from the preprocessing cache and batched on-device augmentation."""

from transunet3d.training.augment import augment
from transunet3d.training.sampling import PatchBatches, forced_foreground, sample_patch

__all__ = ["PatchBatches", "augment", "forced_foreground", "sample_patch"]
