"""benchmarks/gpu_check.py: run once on a rare GPU, so its CPU dry run is tested here to keep it working."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def gpu_check(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # it imports its sibling bench_train as a script does
    import gpu_check

    return gpu_check


def test_learning_verdict_needs_a_falling_loss_and_every_region_rising(gpu_check):
    rising = {"dice_WT": [0.2, 0.5, 0.7], "dice_TC": [0.1, 0.3, 0.4]}
    assert gpu_check.learning_verdict([1.5, 1.0, 0.8], rising, 0)["passed"]
    flat = {**rising, "dice_TC": [0.1, 0.12, 0.13]}  # +0.03: below the 0.05 asked
    verdict = gpu_check.learning_verdict([1.5, 1.0, 0.8], flat, 0)
    assert not verdict["passed"] and verdict["dice_rose"] == {"dice_WT": True, "dice_TC": False}
    assert not gpu_check.learning_verdict([1.5, 1.45, 1.4], rising, 0)["passed"]  # 7% lower: not 10%
    assert not gpu_check.learning_verdict([1.5, math.nan, 0.8], rising, 0)["passed"]  # a diverged epoch
    assert not gpu_check.learning_verdict([1.5, 1.0, 0.8], rising, 3)["passed"]  # non-finite steps skipped


def test_workers_to_feed_is_the_fewest_that_keep_up(gpu_check):
    rates = {0: 4.0, 2: 9.0, 4: 15.0, 8: 21.0}
    assert gpu_check.workers_to_feed(rates, 3.0) == 0
    assert gpu_check.workers_to_feed(rates, 10.0) == 4
    assert gpu_check.workers_to_feed(rates, 30.0) is None


def test_cpu_dry_run_writes_every_number_the_gpu_run_reports(tmp_path):
    out = tmp_path / "out"
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BENCHMARKS.parent / "src"),
                                                                 os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, str(BENCHMARKS / "gpu_check.py"), str(out), "--cpu",
                    "--presets", "paper-encoder", "--predict", "encoder"], check=True, env=environment,
                   capture_output=True, text=True)
    result = json.loads((out / "gpu_check.json").read_text())
    assert result["device"]["name"].startswith("CPU") and result["device"]["peak_bf16_tflops"] is None
    train = result["train"]["paper-encoder"]
    assert train["it_per_s"] > 0 and train["model_only"]["it_per_s"] > 0 and train["samples_per_s"] > 0
    assert train["mfu"] is None and train["peak_gib"] is None  # no peak, no CUDA memory on the CPU
    assert set(result["loader"]["batches_per_s"]) == {"0", "2"}
    predict = result["predict"]["encoder"]
    # 80x80x72 with 64^3 windows at half overlap: 2 windows per axis, 8 per view; 1, 8 and 16 views.
    assert predict["windows_per_view"] == 8
    assert [predict[mode]["windows"] for mode in ("none", "flip", "flip+rot")] == [8, 64, 128]
    assert all(predict[f"{mode}_s"] > 0 for mode in ("none", "flip", "flip+rot"))
    check = result["learning_check"]
    assert isinstance(check["passed"], bool) and len(check["train_loss"]) == 6
    assert set(check["pseudo_dice"]) == {"dice_WT", "dice_TC", "dice_ET"}
    assert (out / "learning_check_log.csv").is_file() and "learning check" in (out / "gpu_check.log").read_text()
    written = sorted(path.name for path in out.iterdir())  # and no temporaries
    assert written == ["gpu_check.json", "gpu_check.log", "gpu_check.stderr", "learning_check_log.csv"]
