"""Supervised training of one fold: sampling, augmentation, mixed precision, validation, exact resume.

Everything random is a function of (seed, global iteration, rank): patches, augmentation and, through the saved
torch RNG state, dropout. A run resumed from its last checkpoint on the CPU therefore ends with the same weights,
bit for bit, as a run that was never interrupted.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from transunet3d.config.io import save_config
from transunet3d.config.schema import REGIONS, ExperimentConfig
from transunet3d.data.cache import SPLITS_FILE, cached_case_ids
from transunet3d.data.splits import make_splits
from transunet3d.errors import UserError
from transunet3d.files import write_json
from transunet3d.models import model_from_config
from transunet3d.models.precision import autocast, resolve_precision
from transunet3d.training.augment import augment_batch
from transunet3d.training.checkpoint import is_complete, load_checkpoint, save_checkpoint
from transunet3d.training.distributed import Distributed
from transunet3d.training.objective import training_loss
from transunet3d.training.pseudo_dice import PseudoDice
from transunet3d.training.run_log import RunLog
from transunet3d.training.sampling import PatchBatches, patch_loader
from transunet3d.training.schedule import poly_lr

SINGLE_PROCESS = Distributed()
EMA_MOMENTUM = 0.9  # nnU-Net's smoothing of the validation pseudo-Dice


@dataclass
class TrainerState:
    """Counters saved with every checkpoint."""

    epoch: int = 0  # next epoch to run
    ema_dice: float = float("nan")
    best_ema_dice: float = -1.0
    skipped_steps: int = 0
    nonfinite_in_row: int = 0


def _device(name: str | None, processes: Distributed) -> torch.device:
    if name is None:
        name = f"cuda:{processes.local_rank}" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def fold_cases(preprocessed: Path, fold: int, config: ExperimentConfig, run_dir: Path,
               write: bool = True) -> tuple[list, list]:
    """Train and validation case ids of `fold`, from PREPROCESSED/splits.json or made from the config's seed."""
    splits_path = preprocessed / SPLITS_FILE
    if splits_path.exists():
        splits = json.loads(splits_path.read_text())
    else:
        splits = make_splits(cached_case_ids(preprocessed), config.data.num_folds, config.data.split_seed)
    if not 0 <= fold < len(splits):
        raise UserError(f"fold {fold} does not exist: the splits have folds 0..{len(splits) - 1}")
    if write:
        write_json(run_dir / SPLITS_FILE, splits)
    return splits[fold]["train"], splits[fold]["val"]


class Trainer:
    """Trains one fold of one experiment into `run_dir` (config.yaml, splits.json, log.csv, progress.png,
    checkpoints/)."""

    def __init__(self, config: ExperimentConfig, preprocessed: Path, fold: int, run_dir: Path,
                 device: str | None = None, processes: Distributed = SINGLE_PROCESS):
        self.config, self.run_dir, self.processes = config, Path(run_dir), processes
        self.device = _device(device, processes)
        train_ids, val_ids = fold_cases(Path(preprocessed), fold, config, self.run_dir, processes.is_main)
        if processes.is_main:
            save_config(config, self.run_dir / "config.yaml")
        train = config.train
        # Each process draws its own patches: the batch seeds include the rank.
        self.batches = PatchBatches(Path(preprocessed), train_ids, train.patch_size, train.batch_size,
                                    train.foreground_fraction, seed=train.seed, rank=processes.rank)
        self.validation = PatchBatches(Path(preprocessed), val_ids or train_ids, train.patch_size,
                                       train.batch_size, train.foreground_fraction, seed=train.seed + 1)
        torch.manual_seed(train.seed)  # the same initial weights in every process
        self.network = model_from_config(config.model, train.patch_size).to(self.device)
        self.model = self._parallel(self.network)
        self.optimizer = self._optimizer()
        # fp16 needs loss scaling against underflow; for bf16 and fp32 the scaler passes everything through.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self._precision() == "fp16")
        self.log = RunLog(self.run_dir / "log.csv", self.run_dir / "tensorboard")
        self.state = TrainerState()

    def _parallel(self, network: torch.nn.Module) -> torch.nn.Module:
        """DDP wrapper when there are several processes (the unwrapped network is saved and validated)."""
        if self.processes.world == 1:
            return network
        # The CNN heads of a decoder-only model take no part in its loss.
        unused = network.spec.use_query_decoder and not self.config.train.cnn_deep_supervision
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(network, device_ids=device_ids,
                                                         find_unused_parameters=unused)

    def _optimizer(self) -> torch.optim.Optimizer:
        train = self.config.train
        if train.optimizer == "sgd":
            return torch.optim.SGD(self.network.parameters(), lr=train.lr, momentum=train.momentum, nesterov=True,
                                   weight_decay=train.weight_decay)
        return torch.optim.AdamW(self.network.parameters(), lr=train.lr, weight_decay=train.weight_decay)

    def _precision(self) -> str:
        return resolve_precision(self.config.train.precision, self.device)

    def _autocast(self):
        return autocast(self._precision(), self.device)

    @property
    def checkpoints(self) -> Path:
        return self.run_dir / "checkpoints"

    def resume(self) -> bool:
        """Continue from the latest checkpoint, if there is one; returns whether there was."""
        pointer = self.checkpoints / "latest.json"
        if not pointer.exists():
            return False
        folder = self.checkpoints / json.loads(pointer.read_text())["folder"]
        saved = load_checkpoint(folder, self.network)
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scaler.load_state_dict(saved["scaler"])
        torch.set_rng_state(saved["torch_rng"])
        self.state = TrainerState(**saved["trainer"])
        self.log.truncate(self.state.epoch)
        return True

    def fit(self) -> TrainerState:
        train = self.config.train
        while self.state.epoch < train.epochs:
            started = time.perf_counter()
            loss = self._train_epoch(self.state.epoch)
            if (self.state.epoch + 1) % train.val_every == 0 or self.state.epoch + 1 == train.epochs:
                dice = self._validate()
            else:
                dice = [float("nan")] * len(REGIONS)
            self._record(loss, dice, time.perf_counter() - started)
            self.state.epoch += 1
            if self.state.epoch % train.checkpoint_every == 0 or self.state.epoch == train.epochs:
                self._save("latest")
        return self.state

    def _train_epoch(self, epoch: int) -> float:
        train = self.config.train
        total_iterations = train.epochs * train.iterations_per_epoch
        self.model.train()
        losses = []
        first = epoch * train.iterations_per_epoch
        loader = patch_loader(self.batches, first, train.iterations_per_epoch, train.num_workers,
                              pin_memory=self.device.type == "cuda")
        progress = tqdm(loader, desc=f"epoch {epoch}", unit="it", disable=not self.processes.is_main,
                        leave=False)
        for step, (images, targets) in enumerate(progress):
            iteration = first + step
            for group in self.optimizer.param_groups:
                group["lr"] = poly_lr(train.lr, iteration, total_iterations, train.poly_power,
                                      train.warmup_iterations)
            loss = self.train_step(*self._augmented(images, targets, iteration))
            if loss is None:
                self._skip_step(iteration)
                continue
            self.state.nonfinite_in_row = 0
            losses.append(loss)
        return self.processes.mean(float(np.mean(losses)) if losses else float("nan"))

    def train_step(self, images: torch.Tensor, targets: torch.Tensor) -> float | None:
        """One optimisation step; None (and no update) when the loss is not finite in some process."""
        with self._autocast():
            loss = training_loss(self.model(images), targets, self.config.train)
        self.optimizer.zero_grad(set_to_none=True)
        if not self.processes.all_true(bool(torch.isfinite(loss))):
            return None
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.config.train.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.item()

    def batch(self, iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The augmented training batch of global `iteration`, on the training device."""
        images, targets = self.batches.batch(iteration)
        return self._augmented(torch.from_numpy(images), torch.from_numpy(targets), iteration)

    def _augmented(self, images: torch.Tensor, targets: torch.Tensor, iteration: int):
        """Move a batch to the device and augment it there, seeded by (seed, iteration, rank)."""
        images = images.to(self.device, non_blocking=True)
        targets = targets.to(self.device, non_blocking=True)
        seed = np.random.SeedSequence([self.config.train.seed, iteration, self.processes.rank]).generate_state(1)[0]
        generator = torch.Generator(device=self.device).manual_seed(int(seed))
        return augment_batch(images, targets, self.config.augment, generator)

    def _skip_step(self, iteration: int) -> None:
        self.state.skipped_steps += 1
        self.state.nonfinite_in_row += 1
        if self.state.nonfinite_in_row >= self.config.train.max_nonfinite_steps:
            raise UserError(f"training stopped: the loss was not finite in {self.state.nonfinite_in_row} "
                            f"iterations in a row (last at iteration {iteration}); lower train.lr or use fp32")

    @torch.no_grad()
    def _validate(self) -> list[float]:
        """Pseudo-Dice on the fixed validation batches (every process computes the same numbers)."""
        self.network.eval()
        dice = PseudoDice(len(REGIONS))
        for index in range(self.config.train.val_batches):
            images, targets = self.validation.batch(index)
            with self._autocast():
                logits = self.network(torch.from_numpy(images).to(self.device)).logits
            dice.update(logits.float(), torch.from_numpy(targets).to(self.device))
        return dice.values()

    def _record(self, loss: float, dice: list[float], seconds: float) -> None:
        finite = [d for d in dice if not math.isnan(d)]
        if finite:
            mean = float(np.mean(finite))
            ema = self.state.ema_dice
            self.state.ema_dice = mean if math.isnan(ema) else EMA_MOMENTUM * ema + (1 - EMA_MOMENTUM) * mean
            if self.state.ema_dice > self.state.best_ema_dice:
                self.state.best_ema_dice = self.state.ema_dice
                self._save("best", pointer=False)
        if not self.processes.is_main:
            return
        self.log.append({"epoch": self.state.epoch, "train_loss": loss,
                         **{f"dice_{r}": d for r, d in zip(REGIONS, dice)},
                         "ema_dice": self.state.ema_dice, "lr": self.optimizer.param_groups[0]["lr"],
                         "seconds": round(seconds, 3), "skipped_steps": self.state.skipped_steps})
        self.log.plot(self.run_dir / "progress.png")

    def _save(self, name: str, pointer: bool = True) -> None:
        """Checkpoint into a fresh folder, then move the `latest` pointer to it (a crash keeps the old one)."""
        if not self.processes.is_main:
            self.processes.barrier()
            return
        folder = f"epoch_{self.state.epoch:04d}" if pointer else name
        state = {"optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                 "torch_rng": torch.get_rng_state(),
                 "trainer": asdict(self.state)}
        save_checkpoint(self.checkpoints / folder, self.network, state)
        if pointer:
            previous = self.checkpoints / "latest.json"
            old = json.loads(previous.read_text())["folder"] if previous.exists() else None
            write_json(previous, {"folder": folder, "epoch": self.state.epoch})
            if old and old != folder and is_complete(self.checkpoints / old):
                for file in (self.checkpoints / old).iterdir():
                    file.unlink()
                (self.checkpoints / old).rmdir()
        self.processes.barrier()
