"""Training: patch sampling from the preprocessing cache (the trainer, augmentation and DDP follow)."""

from transunet3d.training.sampling import PatchBatches, forced_foreground, sample_patch

__all__ = ["PatchBatches", "forced_foreground", "sample_patch"]
