"""Training: patch sampling from the preprocessing cache and batched on-device augmentation."""

from transunet3d.training.augment import augment_batch
from transunet3d.training.sampling import PatchBatches, forced_foreground, sample_patch

__all__ = ["PatchBatches", "augment_batch", "forced_foreground", "sample_patch"]
