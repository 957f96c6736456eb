"""The training loop for every task (segmentation, MAE pre-training): mixed precision, DDP, exact resume.

Everything random is a function of (seed, global iteration, rank): patches, augmentation or masks and, through
the saved torch RNG state, dropout. A run resumed from its last checkpoint on the CPU therefore ends with the same
weights, bit for bit, as a run that was never interrupted.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm import tqdm

from transunet3d.devices import parse_device
from transunet3d.errors import UserError, warn_input
from transunet3d.files import write_json
from transunet3d.models.precision import autocast, resolve_precision
from transunet3d.runs.layout import ModelFolder
from transunet3d.training.checkpoint import STATE, load_checkpoint, save_checkpoint
from transunet3d.training.distributed import SINGLE_PROCESS, Distributed
from transunet3d.training.run_log import RunLog
from transunet3d.training.sampling import patch_loader
from transunet3d.training.task import Task

EMA_MOMENTUM = 0.9  # nnU-Net's smoothing of the validation pseudo-Dice


@dataclass
class TrainerState:
    """Counters saved with every checkpoint."""

    epoch: int = 0  # next epoch to run
    ema_score: float = float("nan")
    best_score: float = -math.inf
    skipped_steps: int = 0
    nonfinite_in_row: int = 0
    processes: int | None = None  # that trained it (each draws its own batch); None in checkpoints before it


class Trainer:
    """Runs `task` into a model folder: the task's run files, the log, the progress plot and the checkpoints."""

    def __init__(self, task: Task, folder: ModelFolder, device: str | torch.device | None = None,
                 processes: Distributed = SINGLE_PROCESS):
        """`device`: as `--device` reads it (`devices.parse_device`; None: this process's GPU, else the CPU)."""
        self.task, self.loop = task, task.loop
        self.folder, self.processes = folder, processes
        self.device = parse_device(device)
        if processes.is_main:
            task.write_run_files(folder)
        # channels-last: 1.4x faster training steps of the tiny models on the CPU (docs/benchmarks.md)
        self.network = task.network.to(self.device, memory_format=torch.channels_last_3d)
        self.model = self._parallel(self.network)
        self.optimizer = task.optimizer()
        # fp16 needs loss scaling against underflow; for bf16 and fp32 the scaler passes everything through.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self._precision() == "fp16")
        columns = ["epoch", "train_loss", *task.metric_columns, *([task.score_column] if task.score_column else []),
                   "lr", "seconds", "skipped_steps"]
        self.log = RunLog(folder.log, folder.events, columns)
        self.state = TrainerState(processes=processes.world)

    def _parallel(self, network: torch.nn.Module) -> torch.nn.Module:
        """DDP wrapper when there are several processes (the unwrapped network is saved and validated)."""
        if self.processes.world == 1:
            return network
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        for parameter in network.parameters():
            if parameter.dim() == 5 and parameter.shape[2:] == (1, 1, 1):
                # A 1x1x1 kernel made channels-last keeps strides its gradients do not have (on its size-1 axes,
                # the same memory): DDP's buckets take the parameter's, and torch warned of the mismatch.
                parameter.data = parameter.data.clone(memory_format=torch.contiguous_format)
        return torch.nn.parallel.DistributedDataParallel(
            network, device_ids=device_ids, find_unused_parameters=getattr(self.task, "find_unused_parameters", False))

    def _precision(self) -> str:
        return resolve_precision(self.loop.precision, self.device)

    def _autocast(self):
        return autocast(self._precision(), self.device)

    def resume(self) -> bool:
        """Continue from the latest checkpoint, if there is one; returns whether there was."""
        folder = self.folder.latest_checkpoint()
        if folder is None:
            return False
        saved = load_checkpoint(folder, self.network)
        try:
            self.optimizer.load_state_dict(saved["optimizer"])
            self.scaler.load_state_dict(saved["scaler"])
            torch.set_rng_state(saved["torch_rng"])
            self.state = TrainerState(**saved["trainer"])
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise UserError(f"{folder / STATE}: does not fit this run's model and optimizer ("
                            f"{str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__})"
                            ) from None
        self._warn_other_processes()
        return True

    def _warn_other_processes(self) -> None:
        """Say when a training resumes with another number of processes than trained it: each process draws its
        own batch, so the global batch, and with it the rest of the training, differs from an uninterrupted run."""
        before, now = self.state.processes, self.processes.world
        if before is not None and before != now and self.processes.is_main:
            batch = self.loop.batch_size
            warn_input(None, None, f"{self.folder.path}: trained with {before} process(es) (a global batch of "
                                   f"{before * batch}), resumed with {now} ({now * batch}); the rest of its training "
                                   f"differs from an uninterrupted run (resume with {before} to continue it exactly)")
        self.state.processes = now

    def fit(self) -> TrainerState:
        """Train until `loop.epochs`. A fresh run first seeds torch's generator (dropout) with `loop.seed`, so that
        it repeats exactly; a resumed one has restored the generator from its checkpoint."""
        loop = self.loop
        if self.state.epoch == 0:
            torch.manual_seed(loop.seed)
        # Rows logged after the checkpoint this run starts from (all of them for a fresh start): a process killed
        # between writing an epoch's row and its checkpoint would otherwise leave that epoch logged twice.
        self.log.truncate(self.state.epoch)
        while self.state.epoch < loop.epochs:
            started = time.perf_counter()
            loss = self.train_epoch(self.state.epoch)
            last = self.state.epoch + 1 == loop.epochs
            if (self.state.epoch + 1) % loop.val_every == 0 or last:
                metrics = self._validate()
            else:
                metrics = dict.fromkeys(self.task.metric_columns, float("nan"))
            self.state.epoch += 1  # before recording: a best checkpoint counts the epoch it holds
            self._record(loss, metrics, time.perf_counter() - started)
            if self.state.epoch % loop.checkpoint_every == 0 or self.state.epoch == loop.epochs:
                self._save()
        return self.state

    def train_epoch(self, epoch: int) -> float:
        """The training steps of `epoch` (its patches read ahead by `loop.num_workers` processes); returns the mean
        loss over every process."""
        iterations = self.task.iterations_per_epoch
        self.model.train()
        losses = []
        first = epoch * iterations
        loader = patch_loader(self.task.batches, first, iterations, self.loop.num_workers,
                              pin_memory=self.device.type == "cuda")
        progress = tqdm(loader, desc=f"epoch {epoch}", unit="it", disable=not self.processes.is_main,
                        leave=False)
        for step, batch in enumerate(progress):
            iteration = first + step
            for group in self.optimizer.param_groups:
                group["lr"] = self.task.learning_rate(iteration)
            loss = self.train_step(*self.task.prepare(batch, iteration, self.processes.rank, self.device))
            if loss is None:
                self._skip_step(iteration)
                continue
            self.state.nonfinite_in_row = 0
            losses.append(loss)
        return self.processes.mean(float(np.mean(losses)) if losses else float("nan"))

    def train_step(self, *inputs: torch.Tensor) -> float | None:
        """One optimisation step; None (and no update) when the loss or the gradients are not finite in some
        process."""
        inputs = tuple(t.contiguous(memory_format=torch.channels_last_3d) if t.dim() == 5 else t for t in inputs)
        with self._autocast():
            loss = self.task.loss(self.model, *inputs)
        self.optimizer.zero_grad(set_to_none=True)
        if not self.processes.all_true(bool(torch.isfinite(loss))):
            return None
        self.scaler.scale(loss).backward()
        if self.task.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            norm = torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.task.grad_clip)
            # A finite loss can still give NaN gradients (NaN weights among those the loss does not reach):
            # skipped like a NaN loss. Under fp16 the scaler skips its own overflowing steps.
            if not self.scaler.is_enabled() and not self.processes.all_true(bool(torch.isfinite(norm))):
                return None
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.item()

    def batch(self, iteration: int) -> tuple[torch.Tensor, ...]:
        """The prepared (augmented or masked) training inputs of global `iteration`, on the training device."""
        batch = self.task.batches.batch(iteration).tensors()
        return self.task.prepare(batch, iteration, self.processes.rank, self.device)

    def _skip_step(self, iteration: int) -> None:
        self.state.skipped_steps += 1
        self.state.nonfinite_in_row += 1
        if self.state.nonfinite_in_row >= self.loop.max_nonfinite_steps:
            raise UserError(f"training stopped: the loss was not finite in {self.state.nonfinite_in_row} "
                            f"iterations in a row (last at iteration {iteration}); lower the learning rate or "
                            "use fp32")

    @torch.no_grad()
    def _validate(self) -> dict[str, float]:
        """The task's validation numbers (every process computes the same), and its figures on the main one."""
        self.network.eval()
        metrics = self.task.validate(self.device, self._autocast())
        if self.processes.is_main:
            self.task.after_validation(self.device, self.folder)
        return metrics

    def _record(self, loss: float, metrics: dict[str, float], seconds: float) -> None:
        """Log the epoch just finished (`state.epoch` already counts it) and keep the best checkpoint."""
        score = self.task.score(metrics)
        if score is not None:
            ema = self.state.ema_score
            self.state.ema_score = score if math.isnan(ema) else EMA_MOMENTUM * ema + (1 - EMA_MOMENTUM) * score
            if self.state.ema_score > self.state.best_score:
                self.state.best_score = self.state.ema_score
                self._save(best=True)
        if not self.processes.is_main:
            return
        row = {"epoch": self.state.epoch - 1, "train_loss": loss, **metrics}
        if self.task.score_column:
            row[self.task.score_column] = self.state.ema_score
        self.log.append({**row, "lr": self.optimizer.param_groups[0]["lr"], "seconds": round(seconds, 3),
                         "skipped_steps": self.state.skipped_steps})
        self.log.plot(self.folder.progress)

    def _save(self, best: bool = False) -> None:
        """Checkpoint into a fresh folder, then move the `latest` pointer to it (a crash keeps the old one); or
        overwrite the `best` checkpoint."""
        if not self.processes.is_main:
            self.processes.barrier()
            return
        folder = self.folder.best_checkpoint if best else self.folder.epoch_checkpoint(self.state.epoch)
        state = {"optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                 "torch_rng": torch.get_rng_state(),
                 "trainer": asdict(self.state)}
        save_checkpoint(folder, self.network, state)
        if not best:
            write_json(self.folder.latest_pointer, {"folder": folder.name, "epoch": self.state.epoch})
            # The previous checkpoint, and any that a run killed while deleting one left behind.
            for stale in self.folder.epoch_checkpoints():
                if stale != folder:
                    shutil.rmtree(stale)
        self.processes.barrier()
