"""The run's epoch log: log.csv, TensorBoard events (tensorboard/) and the progress plot (progress.png)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from transunet3d.config.schema import REGIONS
from transunet3d.files import atomic_path

COLUMNS = ["epoch", "train_loss", *(f"dice_{r}" for r in REGIONS), "ema_dice", "lr", "seconds", "skipped_steps"]


class RunLog:
    """Rows of per-epoch numbers: the CSV is rewritten atomically after every epoch, events are appended."""

    def __init__(self, path: Path, events: Path | None = None):
        self.path, self.events = path, events
        self._writer = None
        self.rows: list[dict[str, Any]] = []
        if path.exists():
            self.rows = [{k: float(v) if v not in ("", "nan") else float("nan") for k, v in row.items()}
                         for row in csv.DictReader(path.open())]

    def truncate(self, epochs: int) -> None:
        """Forget epochs >= `epochs` (written after the checkpoint a resumed run starts from)."""
        self.rows = [row for row in self.rows if int(row["epoch"]) < epochs]

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self._write_events(row)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        with atomic_path(self.path) as tmp:
            tmp.write_text(buffer.getvalue())

    def _write_events(self, row: dict[str, Any]) -> None:
        if self.events is None:
            return
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter  # imported on first use: it is slow to load

            self._writer = SummaryWriter(str(self.events))
        for name, value in row.items():
            if name != "epoch":
                self._writer.add_scalar(name, value, int(row["epoch"]))
        self._writer.flush()

    def plot(self, path: Path) -> None:
        """Training loss, pseudo-Dice per region with its EMA, and the learning rate against the epoch."""
        epochs = [row["epoch"] for row in self.rows]
        figure = Figure(figsize=(8, 9))
        loss_axis, dice_axis, lr_axis = figure.subplots(3, 1, sharex=True)
        loss_axis.plot(epochs, [row["train_loss"] for row in self.rows], label="train loss")
        for region in REGIONS:
            dice_axis.plot(epochs, [row[f"dice_{region}"] for row in self.rows], label=f"pseudo-Dice {region}")
        dice_axis.plot(epochs, [row["ema_dice"] for row in self.rows], "k--", label="EMA of mean")
        lr_axis.plot(epochs, [row["lr"] for row in self.rows], label="learning rate")
        for axis in (loss_axis, dice_axis, lr_axis):
            axis.legend(loc="best")
            axis.grid(alpha=0.3)
        lr_axis.set_xlabel("epoch")
        figure.tight_layout()
        with atomic_path(path) as tmp:
            figure.savefig(tmp, dpi=80, format="png")
