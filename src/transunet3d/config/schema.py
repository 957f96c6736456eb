"""The experiment config: one dataclass per pipeline section, saved beside every run.

Defaults are the paper's setting where it states one and the official 3D-TransUNet / nnU-Net code where it is
silent; presets (see `presets.py`) are named sets of overrides on top of these defaults. Every number carries the
range it accepts (`Range`, in the field's metadata), checked with the types when a config is built (`io.py`), so
that a bad setting is reported before a command writes anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

# Input channel order, fixed across the package (the output regions are the label scheme's: `data.labels`).
MODALITIES: tuple[str, ...] = ("t1n", "t1c", "t2w", "t2f")


@dataclass(frozen=True)
class Range:
    """The numbers a field accepts: between `low` and `high` (either may be open or absent), for a tuple field
    every value; `ordered`: a (low, high) pair of a distribution, which needs low <= high."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    ordered: bool = False

    def problem(self, value: Any) -> str | None:
        """What is wrong with `value` (a number, a tuple of them, or None for an unset optional), or None.

        Infinity is refused even where the range has no upper end: a learning rate or a spacing of inf trains or
        predicts nothing but NaN.
        """
        values = value if isinstance(value, tuple) else () if value is None else (value,)
        each = "each " if isinstance(value, tuple) else ""
        if not all(map(math.isfinite, values)):
            return f"must be {each}a finite number {self.describe()}, not {_shown(value)}"
        if not all(map(self._holds, values)):
            return f"must be {each}{self.describe()}, not {_shown(value)}"
        if self.ordered and values[0] > values[1]:
            return f"must be a (low, high) pair with low <= high, not {_shown(value)}"
        return None

    def describe(self) -> str:
        """The range in words: "in [0, 1]", "> 0", ">= 1"."""
        low, high = _number(self.low), _number(self.high)
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {low}"
        return f"{'<' if self.high_open else '<='} {high}"

    def _holds(self, number: float) -> bool:
        above = self.low is None or (number > self.low if self.low_open else number >= self.low)
        below = self.high is None or (number < self.high if self.high_open else number <= self.high)
        return above and below


def _number(bound: float | None) -> str:
    """A bound in words: whole numbers in full (a seed's 4294967295, not 4.29497e+09), others as %g."""
    return str(bound) if isinstance(bound, int) else f"{bound:g}" if bound is not None else ""


def _shown(value: Any) -> str:
    return str(list(value)) if isinstance(value, tuple) else repr(value)


PROBABILITY = Range(0, 1)
FRACTION = Range(0, 1, high_open=True)  # dropout, momentum, Adam's betas: 1 would stop learning
OPEN_FRACTION = Range(0, 1, low_open=True, high_open=True)
POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)
COUNT = Range(1)  # a positive whole number
# Sliding-window stride as a fraction of the patch: from windows 1/20 of a patch apart (8000x the windows of step 1,
# over 1000x the default 0.5's; smaller steps on a 128 patch only repeat windows) to windows side by side.
WINDOW_STEP = Range(0.05, 1)
SIDES = Range(1)  # each side of a patch (the model adds the multiples its strides need: config/io.py)
POSITIVE_PAIR = Range(0, low_open=True, ordered=True)
NON_NEGATIVE_PAIR = Range(0, ordered=True)
TWO_FOLDS = Range(2)
MAX_SEED = 2**32 - 1  # the largest seed every generator takes (numpy's RandomState, torch, random)
# The largest whole number any setting takes: 1e20 iterations per epoch overflowed torch's index type in a
# traceback, and a 1e20-layer ViT or warm-up never ended or never trained.
MAX_WHOLE = MAX_SEED
SEED = Range(0, MAX_SEED)


class Section:
    """A config section (`InferConfig` is section "infer"): checked as it is built, so that one made in code,
    `InferConfig(threshold=7)`, is refused as `--set infer.threshold=7` is, not used (an empty label map)."""

    def __post_init__(self) -> None:
        from transunet3d.config.io import check_section  # io reads this module's types

        check_section(self)

    @classmethod
    def section_name(cls) -> str:
        return cls.__name__.removesuffix("Config").lower()


def ranged(default: Any, rule: Range) -> Any:
    """A dataclass field with `default` that accepts the numbers of `rule`."""
    return field(default=default, metadata={"range": rule})


@dataclass
class DataConfig(Section):
    """The preprocessed cases a run trains on, and how they are split into cross-validation folds."""

    num_folds: int = ranged(5, TWO_FOLDS)
    split_seed: int = ranged(12345, SEED)
    preprocessed: str = ""  # the cache of the run's training cases, recorded by `transunet3d train`
    # Voxel size (mm, RAS order) of the training grid: None takes the cache's, recorded by `transunet3d train`.
    # A run without one was trained before target spacings and predicts on each input's own grid.
    target_spacing: tuple[float, float, float] | None = ranged(None, POSITIVE)
    axis_order: Literal["", "RAS"] = ""  # the cache's axis order, recorded with the target spacing
    # The label scheme (data/labels.py): which labels the cases hold and which regions are trained, one output
    # channel each. `transunet3d train` checks it against the cache's; a run saved without one is a 2023 run.
    labels: Literal["brats-mets-2023", "brats-mets-2025"] = "brats-mets-2023"


@dataclass
class ModelConfig(Section):
    """Which network and at which size (see the model registry)."""

    name: Literal["unet", "encoder", "decoder", "both"] = "encoder"
    width: Literal["full", "tiny"] = "full"
    deep_supervision: bool = True
    vit_dropout: float = ranged(0.1, FRACTION)
    # ViT blocks; None: the width's (12 full, 2 tiny); official encoder+decoder: 1
    vit_depth: int | None = ranged(None, COUNT)
    masked_attention: bool = False  # the paper dropped masked attention for training stability
    decoder_attention_fp32: bool = True  # query-decoder attention in fp32 under autocast (official is_mhsa_float32)
    num_queries: int = ranged(20, COUNT)
    init_encoder: str = ""  # a `transunet3d pretrain` run whose ViT blocks initialise this model ("" = none)


@dataclass
class AugmentConfig(Section):
    """nnU-Net's augmentation set and probabilities, as used by the paper."""

    rotation_p: float = ranged(0.2, PROBABILITY)
    rotation_degrees: float = ranged(30.0, Range(0, 180))
    scale_p: float = ranged(0.2, PROBABILITY)
    # s < 1 zooms out; half the draws below 1, half above
    scale_range: tuple[float, float] = ranged((0.7, 1.4), POSITIVE_PAIR)
    mirror_p: float = ranged(0.5, PROBABILITY)
    noise_p: float = ranged(0.1, PROBABILITY)
    # nnU-Net's name; the drawn value is the standard deviation
    noise_variance: tuple[float, float] = ranged((0.0, 0.1), NON_NEGATIVE_PAIR)
    blur_p: float = ranged(0.2, PROBABILITY)
    blur_channel_p: float = ranged(0.5, PROBABILITY)
    blur_sigma: tuple[float, float] = ranged((0.5, 1.0), NON_NEGATIVE_PAIR)
    brightness_p: float = ranged(0.15, PROBABILITY)
    brightness_range: tuple[float, float] = ranged((0.75, 1.25), POSITIVE_PAIR)
    contrast_p: float = ranged(0.15, PROBABILITY)
    contrast_range: tuple[float, float] = ranged((0.75, 1.25), POSITIVE_PAIR)
    lowres_p: float = ranged(0.25, PROBABILITY)
    lowres_channel_p: float = ranged(0.5, PROBABILITY)
    lowres_zoom: tuple[float, float] = ranged((0.5, 1.0), Range(0, 1, low_open=True, ordered=True))
    # Not in nnU-Net's set: a scan of thicker slices along one axis, as prediction resamples it
    # (training/augment.py: thick_slices); 0 turns it off.
    slices_p: float = ranged(0.0, PROBABILITY)
    slices_channel_p: float = ranged(0.5, PROBABILITY)
    slices_factor: tuple[float, float] = ranged((1.5, 4.0), Range(1, None, ordered=True))
    # Not in nnU-Net's set: a smooth additive field per channel (training/augment.py: bias_field); 0 turns it off.
    bias_p: float = ranged(0.0, PROBABILITY)
    bias_channel_p: float = ranged(0.5, PROBABILITY)
    bias_strength: float = ranged(1.0, NON_NEGATIVE)  # the field's largest scale, in z-score units
    bias_grid: int = ranged(4, COUNT)  # control points per axis of the coarse field
    gamma_p: float = ranged(0.3, PROBABILITY)
    gamma_inverted_p: float = ranged(0.1, PROBABILITY)
    gamma_range: tuple[float, float] = ranged((0.7, 1.5), POSITIVE_PAIR)


@dataclass
class LoopConfig(Section):
    """The training loop's settings, the same for supervised training and MAE pre-training (training/trainer.py)."""

    epochs: int = ranged(600, COUNT)
    # 0: one pass over the training cases, cases / (batch x processes) iterations
    iterations_per_epoch: int = ranged(250, NON_NEGATIVE)
    batch_size: int = ranged(2, COUNT)  # per process
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"  # auto: bf16 where the hardware computes it
    checkpoint_every: int = ranged(1, COUNT)
    val_every: int = ranged(1, COUNT)
    val_batches: int = ranged(10, COUNT)
    max_nonfinite_steps: int = ranged(10, COUNT)
    num_workers: int = ranged(2, NON_NEGATIVE)  # loader processes
    seed: int = ranged(12345, SEED)


@dataclass
class TrainConfig(Section):
    """Optimisation, sampling and losses of supervised training (the loop itself: `LoopConfig`)."""

    patch_size: tuple[int, int, int] = ranged((128, 128, 128), SIDES)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = ranged(2e-3, POSITIVE)
    weight_decay: float = ranged(3e-5, NON_NEGATIVE)
    momentum: float = ranged(0.99, FRACTION)
    poly_power: float = ranged(0.9, NON_NEGATIVE)
    warmup_iterations: int = ranged(0, NON_NEGATIVE)
    grad_clip: float = ranged(12.0, POSITIVE)
    foreground_fraction: float = ranged(1 / 3, PROBABILITY)
    # Of the tumour-centred patches, the share centred on a lesion chosen uniformly (then a voxel of it) instead of
    # a tumour voxel chosen uniformly (nnU-Net), which rarely centres the smallest metastases (training/sampling.py).
    lesion_sampling: float = ranged(0.0, PROBABILITY)
    # Weight of the blob loss, a soft Dice per ground-truth lesion that makes every lesion count alike, as the
    # lesion-wise metric does (losses/blob.py); 0: off, as in nnU-Net and the official code.
    blob_loss_weight: float = ranged(0.0, NON_NEGATIVE)
    cnn_deep_supervision: bool = True  # CNN head losses next to the set loss (off for the decoder-only variant)
    mask_loss_weight: float = ranged(0.7, NON_NEGATIVE)  # lambda_0 of the set loss
    class_loss_weight: float = ranged(0.3, NON_NEGATIVE)  # lambda_1 of the set loss
    # "no object" in the set loss's class cross-entropy (official; Mask2Former: 0.1)
    no_object_weight: float = ranged(1.0, NON_NEGATIVE)


@dataclass
class InferConfig(Section):
    """Sliding-window prediction, test-time augmentation and post-processing."""

    step: float = ranged(0.5, WINDOW_STEP)
    gaussian_sigma_scale: float = ranged(1 / 8, POSITIVE)
    # floored: MONAI's map, at least 1e-3 everywhere; nnunet: nnU-Net v2's, off-centre by half a voxel and without
    # a floor, for parity with it (inference/gaussian.py)
    gaussian_weighting: Literal["floored", "nnunet"] = "floored"
    # Network inputs (window x view) per forward pass; None sizes it from the memory there is and the network
    # (inference/window_batch.py). max_memory_gb: what the windows in flight may take (None: 80% of what is free).
    batch_windows: int | None = ranged(None, COUNT)
    max_memory_gb: float | None = ranged(None, POSITIVE)
    tta: Literal["none", "flip", "flip+rot"] = "flip+rot"
    threshold: float = ranged(0.5, OPEN_FRACTION)
    min_lesion_mm3: float = ranged(0.0, NON_NEGATIVE)
    require_core: bool = False  # drop WT components without tumour core (postprocessing/rules.py)
    # Out-of-fold validation after training; None: `tta`, so that the post-processing tuned on its predictions
    # (`transunet3d tune`) is tuned for the views `predict` uses
    validation_tta: Literal["none", "flip", "flip+rot"] | None = None

    @property
    def out_of_fold_tta(self) -> str:
        """The TTA of out-of-fold validation: `validation_tta`, or `tta` where it is unset."""
        return self.validation_tta or self.tta


@dataclass
class PretrainConfig(Section):
    """Masked-autoencoder pre-training of the ViT encoder."""

    tokenizer: Literal["slice2d", "cube3d"] = "slice2d"
    mask_ratio: float = ranged(0.75, OPEN_FRACTION)
    # the crops (the loop's batch_size of them per step)
    patch_size: tuple[int, int, int] = ranged((128, 128, 128), SIDES)
    warmup_epochs: int = ranged(40, NON_NEGATIVE)
    base_lr: float = ranged(1.5e-4, POSITIVE)  # the paper's "base learning rate"
    # linear: peak lr = base_lr x total batch / 256, MAE's rule that defines a "base" lr (9.4e-6 at 8 GPUs x 2);
    # none: base_lr is the peak lr itself (docs/training.md)
    lr_scaling: Literal["linear", "none"] = "linear"
    weight_decay: float = ranged(0.05, NON_NEGATIVE)
    betas: tuple[float, float] = ranged((0.9, 0.95), FRACTION)
    decoder_depth: int = ranged(1, COUNT)
    decoder_dim: int = ranged(512, COUNT)
    decoder_heads: int = ranged(16, COUNT)
    token_side: int = ranged(16, COUNT)  # voxels per token along x and y (and z for cube3d)


@dataclass
class ExperimentConfig:
    """Everything that defines one run; `preset` records which named preset it started from."""

    preset: str | None = None
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    infer: InferConfig = field(default_factory=InferConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)


# The sections each job reads; a --set of another section is recorded in config.yaml and changes nothing.
SEGMENTATION_SECTIONS = ("data", "model", "augment", "loop", "train", "infer")
PRETRAINING_SECTIONS = ("model", "loop", "pretrain")
