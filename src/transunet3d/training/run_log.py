"""The run's epoch log: log.csv, TensorBoard events (tensorboard/) and the progress plot (progress.png)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from transunet3d.errors import UserError
from transunet3d.files import atomic_path

_WHOLE_NUMBERS = ("epoch", "skipped_steps")  # counts: written back as 3, not 3.0, after a resume


def _cell(column: str, text: str) -> float | int:
    """A number of log.csv as it was logged: an int in the counting columns, a float (or NaN) in the others."""
    if text in ("", "nan"):
        return float("nan")
    return int(float(text)) if column in _WHOLE_NUMBERS else float(text)


def read_log_rows(path: Path) -> list[dict[str, Any]]:
    """The numbers of an existing log.csv (a resumed run appends to them, the report shows them); a damaged one is
    a UserError."""
    try:
        with path.open(newline="") as file:
            reader = csv.DictReader(file)
            rows, header = list(reader), reader.fieldnames or []
    except (UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"{path}: damaged, not a readable CSV table ({error}); restore it or delete it (the curves "
                        "start again)") from None
    if "epoch" not in header:  # the first column of every log.csv a run writes (`Trainer`)
        _damaged(path, 1, "no column 'epoch'")
    numbers = []
    for line, row in enumerate(rows, start=2):
        if None in row or None in row.values():
            _damaged(path, line, f"{'more' if None in row else 'fewer'} cells than the header")
        try:
            numbers.append({column: _cell(column, text) for column, text in row.items()})
        except ValueError:
            _damaged(path, line, "a cell that is not a number")
    return numbers


def _damaged(path: Path, line: int, problem: str) -> None:
    raise UserError(f"{path}: damaged, line {line} has {problem}, not the numbers the run logged; restore it or "
                    "delete it (the curves start again)")


class RunLog:
    """Rows of per-epoch numbers: the CSV is rewritten atomically after every epoch, events are appended."""

    def __init__(self, path: Path, events: Path | None, columns: list[str]):
        self.path, self.events, self.columns = path, events, columns
        self._writer = None
        self.rows: list[dict[str, Any]] = []
        if path.exists():
            self.rows = read_log_rows(path)

    def truncate(self, epochs: int) -> None:
        """Forget epochs >= `epochs` (written after the checkpoint a resumed run starts from)."""
        self.rows = [row for row in self.rows if int(row["epoch"]) < epochs]

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self._write_events(row)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, lineterminator="\n")
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
        """Losses, the other validation numbers (if any) and the learning rate against the epoch."""
        epochs = [row["epoch"] for row in self.rows]
        measured = [c for c in self.columns if c not in ("epoch", "lr", "seconds", "skipped_steps")]
        panels = [[c for c in measured if c.endswith("loss")], [c for c in measured if not c.endswith("loss")],
                  ["lr"]]
        panels = [panel for panel in panels if panel]
        figure = Figure(figsize=(8, 3 * len(panels)))
        axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
        for axis, panel in zip(axes, panels):
            for column in panel:
                style = "k--" if column.startswith("ema") else "-"
                axis.plot(epochs, [row[column] for row in self.rows], style, label=column.replace("_", " "))
            axis.legend(loc="best")
            axis.grid(alpha=0.3)
        axes[-1].set_xlabel("epoch")
        figure.tight_layout()
        with atomic_path(path) as tmp:
            figure.savefig(tmp, dpi=80, format="png")
