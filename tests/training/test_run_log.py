"""log.csv keeps whole-number columns whole across a resume (the log is read back from disk)."""

import csv
from pathlib import Path

from transunet3d.training.run_log import RunLog

COLUMNS = ["epoch", "train_loss", "skipped_steps"]


def test_epochs_stay_integers_after_the_log_is_read_back(tmp_path: Path):
    path = tmp_path / "log.csv"
    RunLog(path, None, COLUMNS).append({"epoch": 0, "train_loss": 0.5, "skipped_steps": 0})
    resumed = RunLog(path, None, COLUMNS)
    resumed.truncate(1)
    resumed.append({"epoch": 1, "train_loss": 0.25, "skipped_steps": 2})
    rows = list(csv.DictReader(path.open()))
    assert [(row["epoch"], row["skipped_steps"]) for row in rows] == [("0", "0"), ("1", "2")]
    assert rows[0]["train_loss"] == "0.5"
