"""Masked-autoencoder pre-training of the ViT encoder: the task that `transunet3d pretrain` runs."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from transunet3d.config.io import save_config
from transunet3d.config.schema import MODALITIES, ExperimentConfig
from transunet3d.data.cache import cached_case_ids
from transunet3d.errors import ConfigError, UserError
from transunet3d.files import atomic_path
from transunet3d.models.mae import MaskedAutoencoder
from transunet3d.models.registry import spec_from_config
from transunet3d.runs.cache_record import record_cache
from transunet3d.runs.layout import ModelFolder
from transunet3d.training.distributed import SINGLE_PROCESS, Distributed
from transunet3d.training.sampling import PatchBatches
from transunet3d.training.schedule import cosine_lr
from transunet3d.training.task import Task, batch_generator, seeded_network

_NO_DECAY = ("position", "mask_token")


class PretrainTask(Task):
    """Random crops of every cached case (labels unused), 75% of their tokens hidden, pixels of those predicted."""

    metric_columns = ("val_loss",)

    def __init__(self, config: ExperimentConfig, preprocessed: Path, processes: Distributed = SINGLE_PROCESS):
        self.config, pretrain, self.loop = config, config.pretrain, config.loop
        crop = tuple(pretrain.patch_size)
        spec = spec_from_config(config, crop)
        if not spec.use_vit:
            raise ConfigError(f"model {config.model.name!r} has no ViT encoder to pre-train; use encoder or both")
        cases = cached_case_ids(Path(preprocessed))
        if not cases:
            raise UserError(f"{preprocessed}: no preprocessed cases")
        self.preprocessed, self.case_ids = Path(preprocessed), cases
        batch, seed = self.loop.batch_size, self.loop.seed
        self.batches = PatchBatches(Path(preprocessed), cases, crop, batch, 0.0, seed=seed, rank=processes.rank)
        self.validation = PatchBatches(Path(preprocessed), cases, crop, batch, 0.0, seed=seed + 1)
        try:
            self.network = seeded_network(seed, lambda: MaskedAutoencoder(
                spec, crop, pretrain.tokenizer, pretrain.mask_ratio, pretrain.decoder_dim, pretrain.decoder_depth,
                pretrain.decoder_heads, pretrain.token_side))
        except ValueError as error:
            raise ConfigError(str(error)) from None
        self.total_batch = batch * processes.world
        self.iterations_per_epoch = self.loop.iterations_per_epoch or math.ceil(len(cases) / self.total_batch)

    def write_run_files(self, folder: ModelFolder) -> None:
        save_config(self.config, folder.config)
        record_cache(folder, self.preprocessed, self.case_ids)

    def optimizer(self) -> torch.optim.Optimizer:
        """AdamW; no weight decay on biases, norms, position embeddings and the mask token (as MAE)."""
        decay, no_decay = [], []
        for name, parameter in self.network.named_parameters():
            (no_decay if parameter.ndim <= 1 or name.startswith(_NO_DECAY) else decay).append(parameter)
        pretrain = self.config.pretrain
        groups = [{"params": decay, "weight_decay": pretrain.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=self.peak_lr, betas=tuple(pretrain.betas))

    @property
    def peak_lr(self) -> float:
        """The base lr, scaled by MAE's linear rule (x total batch / 256) unless `pretrain.lr_scaling` is none."""
        pretrain = self.config.pretrain
        return pretrain.base_lr * (self.total_batch / 256 if pretrain.lr_scaling == "linear" else 1.0)

    def learning_rate(self, iteration: int) -> float:
        iterations = self.iterations_per_epoch
        return cosine_lr(self.peak_lr, iteration, self.loop.epochs * iterations,
                         self.config.pretrain.warmup_epochs * iterations)

    def _noise(self, batch: int, iteration: int, rank: int, device: torch.device, seed: int) -> torch.Tensor:
        generator = batch_generator(seed, iteration, rank, device)
        return torch.rand((batch, self.network.num_tokens), generator=generator, device=device)

    def prepare(self, batch, iteration, rank, device):
        """Images on the device and the masking noise of this step (the labels are not used)."""
        images = batch.images.to(device, non_blocking=True)
        return images, self._noise(images.shape[0], iteration, rank, device, self.loop.seed)

    def loss(self, model, images, noise):
        return model(images, noise).loss()

    def _validation_batch(self, index: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.from_numpy(self.validation.batch(index).images).to(device)
        return images, self._noise(images.shape[0], index, 0, device, self.loop.seed + 1)

    def validate(self, device: torch.device, autocast: contextlib.AbstractContextManager) -> dict[str, float]:
        """The masked-token loss on fixed crops with fixed masks."""
        losses = []
        for index in range(self.loop.val_batches):
            with autocast:
                losses.append(float(self.network(*self._validation_batch(index, device)).loss()))
        return {"val_loss": float(np.mean(losses))}

    def after_validation(self, device: torch.device, folder: ModelFolder) -> None:
        """Axial slices of one validation crop: input, masked input and reconstruction, for two modalities."""
        images, noise = self._validation_batch(0, device)
        prediction = self.network(images[:1], noise[:1])
        reconstruction = self.network.reconstruct(prediction, images[:1])[0].cpu().numpy()
        hidden = self.network.masked_image(prediction.mask)[0, 0].cpu().numpy().astype(bool)
        write_reconstruction_figure(images[0].cpu().numpy(), hidden, reconstruction, folder.reconstruction)


def write_reconstruction_figure(image: np.ndarray, hidden: np.ndarray, reconstruction: np.ndarray,
                                path: Path) -> None:
    """Rows t1c and t2f; columns input, masked input (hidden tokens blank), and the reconstruction of the hidden
    tokens next to the visible ones (as in the MAE paper); middle axial slice."""
    z = image.shape[-1] // 2
    figure = Figure(figsize=(9, 6))
    axes = figure.subplots(2, 3)
    for row, modality in zip(axes, ("t1c", "t2f")):
        channel = MODALITIES.index(modality)
        low, high = np.percentile(image[channel], [1, 99])
        masked = np.where(hidden[..., z], np.nan, image[channel, ..., z])
        filled = np.where(hidden[..., z], reconstruction[channel, ..., z], image[channel, ..., z])
        for axis, picture, title in zip(row, (image[channel, ..., z], masked, filled),
                                        ("input", "masked input", "reconstruction")):
            axis.imshow(picture.T, cmap="gray", vmin=low, vmax=high, origin="lower")
            axis.set_title(f"{modality}: {title}")
            axis.axis("off")
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=80, format="png")
