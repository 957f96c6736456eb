"""The experiment config: one dataclass per pipeline section, saved beside every run.

Defaults are the paper's setting where it states one and the official 3D-TransUNet / nnU-Net code where it is
silent; presets (see `presets.py`) are named sets of overrides on top of these defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# Input channel order and output region order, fixed across the package.
MODALITIES: tuple[str, ...] = ("t1n", "t1c", "t2w", "t2f")
REGIONS: tuple[str, ...] = ("WT", "TC", "ET")


@dataclass
class DataConfig:
    """The preprocessed cases a run trains on, and how they are split into cross-validation folds."""

    num_folds: int = 5
    split_seed: int = 12345
    preprocessed: str = ""  # the cache of the run's training cases, recorded by `transunet3d train`


@dataclass
class ModelConfig:
    """Which network and at which size (see the model registry)."""

    name: Literal["unet", "encoder", "decoder", "both"] = "encoder"
    width: Literal["full", "tiny"] = "full"
    deep_supervision: bool = True
    vit_dropout: float = 0.1
    vit_depth: int | None = None  # ViT blocks; None: the width's (12 full, 2 tiny); official encoder+decoder: 1
    masked_attention: bool = False  # the paper dropped masked attention for training stability
    decoder_attention_fp32: bool = True  # query-decoder attention in fp32 under autocast (official is_mhsa_float32)
    num_queries: int = 20
    init_encoder: str = ""  # a `transunet3d pretrain` run whose ViT blocks initialise this model ("" = none)


@dataclass
class AugmentConfig:
    """nnU-Net's augmentation set and probabilities, as used by the paper."""

    rotation_p: float = 0.2
    rotation_degrees: float = 30.0
    scale_p: float = 0.2
    scale_range: tuple[float, float] = (0.7, 1.4)  # s < 1 zooms out; half the draws below 1, half above
    mirror_p: float = 0.5
    noise_p: float = 0.1
    noise_variance: tuple[float, float] = (0.0, 0.1)  # nnU-Net's name; the drawn value is the standard deviation
    blur_p: float = 0.2
    blur_channel_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.5, 1.0)
    brightness_p: float = 0.15
    brightness_range: tuple[float, float] = (0.75, 1.25)
    contrast_p: float = 0.15
    contrast_range: tuple[float, float] = (0.75, 1.25)
    lowres_p: float = 0.25
    lowres_channel_p: float = 0.5
    lowres_zoom: tuple[float, float] = (0.5, 1.0)
    # Not in nnU-Net's set: a smooth additive field per channel (training/augment.py: bias_field); 0 turns it off.
    bias_p: float = 0.0
    bias_channel_p: float = 0.5
    bias_strength: float = 1.0  # the field's largest scale, in z-score units
    bias_grid: int = 4  # control points per axis of the coarse field
    gamma_p: float = 0.3
    gamma_inverted_p: float = 0.1
    gamma_range: tuple[float, float] = (0.7, 1.5)


@dataclass
class LoopConfig:
    """The training loop's settings, the same for supervised training and MAE pre-training (training/trainer.py)."""

    epochs: int = 600
    iterations_per_epoch: int = 250  # 0: one pass over the training cases, cases / (batch x processes) iterations
    batch_size: int = 2  # per process
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"  # auto: bf16 where the hardware computes it
    checkpoint_every: int = 1
    val_every: int = 1
    val_batches: int = 10
    max_nonfinite_steps: int = 10
    num_workers: int = 2  # loader processes
    seed: int = 12345


@dataclass
class TrainConfig:
    """Optimisation, sampling and losses of supervised training (the loop itself: `LoopConfig`)."""

    patch_size: tuple[int, int, int] = (128, 128, 128)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = 2e-3
    weight_decay: float = 3e-5
    momentum: float = 0.99
    poly_power: float = 0.9
    warmup_iterations: int = 0
    grad_clip: float = 12.0
    foreground_fraction: float = 1 / 3
    # Of the tumour-centred patches, the share centred on a lesion chosen uniformly (then a voxel of it) instead of
    # a tumour voxel chosen uniformly (nnU-Net), which rarely centres the smallest metastases (training/sampling.py).
    lesion_sampling: float = 0.0
    cnn_deep_supervision: bool = True  # CNN head losses next to the set loss (off for the decoder-only variant)
    mask_loss_weight: float = 0.7  # lambda_0 of the set loss
    class_loss_weight: float = 0.3  # lambda_1 of the set loss
    no_object_weight: float = 1.0  # "no object" in the set loss's class cross-entropy (official; Mask2Former: 0.1)


@dataclass
class InferConfig:
    """Sliding-window prediction, test-time augmentation and post-processing."""

    step: float = 0.5
    gaussian_sigma_scale: float = 1 / 8
    batch_windows: int = 4
    tta: Literal["none", "flip", "flip+rot"] = "flip+rot"
    threshold: float = 0.5
    min_lesion_mm3: float = 0.0
    require_core: bool = False  # drop WT components without tumour core (postprocessing/rules.py)
    validation_tta: Literal["none", "flip", "flip+rot"] = "flip"  # out-of-fold validation after training


@dataclass
class PretrainConfig:
    """Masked-autoencoder pre-training of the ViT encoder."""

    tokenizer: Literal["slice2d", "cube3d"] = "slice2d"
    mask_ratio: float = 0.75
    patch_size: tuple[int, int, int] = (128, 128, 128)  # the crops (the loop's batch_size of them per step)
    warmup_epochs: int = 40
    base_lr: float = 1.5e-4  # the paper's "base learning rate"
    # linear: peak lr = base_lr x total batch / 256, MAE's rule that defines a "base" lr (9.4e-6 at 8 GPUs x 2);
    # none: base_lr is the peak lr itself (docs/training.md)
    lr_scaling: Literal["linear", "none"] = "linear"
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    decoder_depth: int = 1
    decoder_dim: int = 512
    decoder_heads: int = 16
    token_side: int = 16  # voxels per token along x and y (and z for cube3d)


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
