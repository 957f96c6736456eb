"""What a training run optimises, separated from the loop that runs it (training/trainer.py).

Supervised segmentation (training/segmentation.py) and masked-autoencoder pre-training (training/pretraining.py)
are tasks; checkpoints, exact resume, mixed precision, DDP, the non-finite guard, logging and the progress plot
belong to the one Trainer that runs either.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np
import torch

from transunet3d.config.schema import LoopConfig
from transunet3d.runs.layout import ModelFolder
from transunet3d.training.sampling import PatchBatch, PatchBatches


class Task(ABC):
    """A network, its training batches, its loss, its optimiser and schedule, and its validation."""

    network: torch.nn.Module
    batches: PatchBatches
    loop: LoopConfig  # the config's loop section
    iterations_per_epoch: int  # the loop's, with 0 (one pass over the cases) resolved
    grad_clip: float | None = None  # gradient-norm clipping
    metric_columns: tuple[str, ...] = ()  # validation numbers logged each epoch
    score_column: str | None = None  # the EMA of `score`, logged when the task has a score

    @abstractmethod
    def optimizer(self) -> torch.optim.Optimizer:
        """The optimiser over `self.network`'s parameters."""

    @abstractmethod
    def learning_rate(self, iteration: int) -> float:
        """The learning rate of global `iteration`."""

    @abstractmethod
    def prepare(self, batch: PatchBatch, iteration: int, rank: int, device: torch.device) -> tuple[torch.Tensor, ...]:
        """The inputs of `loss` for one batch, on `device`, random only through (seed, iteration, rank)."""

    @abstractmethod
    def loss(self, model: torch.nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
        """The scalar training loss of `model` (the network, or its DDP wrapper) on prepared inputs."""

    @abstractmethod
    def validate(self, device: torch.device, autocast: contextlib.AbstractContextManager) -> dict[str, float]:
        """`metric_columns` on fixed validation batches (the same in every process)."""

    def score(self, metrics: dict[str, float]) -> float | None:
        """Higher is better; its EMA picks the `best` checkpoint. None: the task keeps no best checkpoint."""
        return None

    def after_validation(self, device: torch.device, folder: ModelFolder) -> None:  # noqa: B027 - optional hook
        """Optional figures in the run folder (main process only)."""

    def write_run_files(self, folder: ModelFolder) -> None:  # noqa: B027 - optional hook
        """Files that describe the run (config, splits), written by the main process before training."""


def seeded_network(seed: int, build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """`build()` with torch's random generator seeded by `seed`: the same initial weights in every process and
    every run, and the caller's generator state left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def batch_generator(seed: int, iteration: int, rank: int, device: torch.device) -> torch.Generator:
    """A generator seeded by (seed, iteration, rank): every random choice of a step can be replayed."""
    value = np.random.SeedSequence([seed, iteration, rank]).generate_state(1)[0]
    return torch.Generator(device=device).manual_seed(int(value))
