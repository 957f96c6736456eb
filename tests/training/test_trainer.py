"""Training end to end on tiny phantoms: run folder contents, learning signal, bitwise-exact resume after SIGKILL."""

import csv
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from safetensors.torch import load_file

from tests.factories import SMALL_PATCHES
from transunet3d.cli.main import cli
from transunet3d.files import is_temporary
from transunet3d.runs.layout import ModelFolder, RunFolder
from transunet3d.training.checkpoint import read_state

EXE = shutil.which("transunet3d", path=str(Path(sys.executable).parent)) or "transunet3d"
SHORT = ["--set", "loop.epochs=3", "--set", "loop.iterations_per_epoch=3", "--set", "loop.val_batches=1",
         "--set", "loop.checkpoint_every=1", *SMALL_PATCHES]


TRAIN = ["train", "--preset", "tiny-unet", "--fold", "0", "--device", "cpu", "--no-validate", *SHORT]


def train(cache: Path, out: Path, *extra: str) -> subprocess.Popen:
    """Fold 0 of a short run into `out`/fold_0 (without out-of-fold validation, tested in tests/runs)."""
    return subprocess.Popen([EXE, *TRAIN, str(cache), "--out", str(out), *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def final_weights(model: ModelFolder) -> dict:
    return load_file(str(model.latest_checkpoint() / "weights.safetensors"))


def train_here(cache: Path, out: Path, *extra: str) -> Result:
    """The same command in this process."""
    return CliRunner().invoke(cli, [*TRAIN, str(cache), "--out", str(out), *extra])


def test_run_folder_and_bitwise_exact_resume_after_sigkill(cache: Path, tmp_path: Path):
    straight = train_here(cache, tmp_path / "straight")  # uninterrupted, in this process
    assert straight.exit_code == 0, straight.output
    run = RunFolder(tmp_path / "straight").fold(0)
    assert {p.name for p in run.path.iterdir()} >= {"config.yaml", "splits.json", "log.csv", "progress.png",
                                                    "checkpoints"}
    assert len(run.log.read_text().splitlines()) == 4  # header + 3 epochs
    with run.log.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["epoch"] for row in rows] == ["0", "1", "2"]
    # The best checkpoint counts the epochs its weights had (it said one fewer: "trained for 0 of 1 epochs").
    best = max(rows, key=lambda row: float(row["ema_dice"]))  # the first of equals, as a strict improvement
    assert read_state(run.best_checkpoint)["trainer"]["epoch"] == int(best["epoch"]) + 1

    killed = train(cache, tmp_path / "killed")
    killed_run = RunFolder(tmp_path / "killed").fold(0)
    pointer = killed_run.latest_pointer
    deadline = time.time() + 600
    while not (pointer.exists() and json.loads(pointer.read_text())["epoch"] >= 1):
        assert time.time() < deadline and killed.poll() is None
        time.sleep(0.05)
    time.sleep(0.5)  # into the next epoch
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    # An older checkpoint that a kill while deleting it had left half there (it stayed for good).
    half_deleted = killed_run.checkpoints / "epoch_0000"
    half_deleted.mkdir(exist_ok=True)
    (half_deleted / "weights.safetensors").write_bytes(b"\0" * 64)
    resumed = train(cache, tmp_path / "killed", "--resume")
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()
    a, b = final_weights(run), final_weights(killed_run)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].equal(b[name]), name
    assert killed_run.log.read_text().count("\n") == 4
    assert killed_run.epoch_checkpoints() == [killed_run.epoch_checkpoint(3)]
    assert run.epoch_checkpoints() == [run.epoch_checkpoint(3)]
    assert [path for path in killed_run.path.rglob("*") if is_temporary(path)] == []


def test_refuses_to_overwrite_a_run_without_resume(cache: Path, tmp_path: Path):
    model = RunFolder(tmp_path / "run").fold(0)
    model.checkpoints.mkdir(parents=True)
    model.latest_pointer.write_text('{"folder": "epoch_0001", "epoch": 1}')
    result = train_here(cache, tmp_path / "run")
    assert result.exit_code == 2 and "already holds a training run" in result.stderr
    assert not model.config.exists()


def test_two_process_ddp_on_cpu_learns_into_one_run_folder(cache: Path, tmp_path: Path):
    torchrun = Path(sys.executable).parent / "torchrun"
    out = tmp_path / "ddp"
    result = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "transunet3d", "train", str(cache),
         "--preset", "tiny-unet", "--fold", "0", "--out", str(out), "--device", "cpu", "--no-validate", *SHORT],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("fold 0: 3 epochs") == 1  # only rank 0 reports
    assert "UserWarning" not in result.stderr  # torch's 'Grad strides do not match bucket view strides' (1x1x1 convs)
    model = RunFolder(out).fold(0)
    files = sorted(str(p.relative_to(model.path)) for p in out.rglob("*")
                   if p.is_file() and "tensorboard" not in p.parts)
    assert files == ["cache.json", "checkpoints/best/state.pt", "checkpoints/best/weights.safetensors",
                     "checkpoints/epoch_0003/state.pt", "checkpoints/epoch_0003/weights.safetensors",
                     "checkpoints/latest.json", "config.yaml", "log.csv", "progress.png", "splits.json"]
    assert len(list(model.events.glob("events.out.tfevents.*"))) == 1
    rows = model.log.read_text().splitlines()[1:]
    losses = [float(row.split(",")[1]) for row in rows]
    assert len(losses) == 3 and losses[-1] < losses[0]
    # Resumed by one process, it draws half the global batch: said, since it no longer repeats the 2-process run.
    model.config.write_text(model.config.read_text().replace("  epochs: 3\n", "  epochs: 4\n"))
    resumed = train_here(cache, out, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert [line for line in resumed.stderr.splitlines() if "process(es)" in line] == [
        f"warning: {model.path}: trained with 2 process(es) (a global batch of 4), resumed with 1 (2); the rest of "
        "its training differs from an uninterrupted run (resume with 2 to continue it exactly)"]
    assert read_state(model.latest_checkpoint())["trainer"]["processes"] == 1


@pytest.mark.parametrize("preset", ["tiny-unet", "tiny", "tiny-decoder", "tiny-both"])
def test_every_variant_trains_at_tiny_size(cache: Path, tmp_path: Path, preset: str):
    from transunet3d.config import build_config
    from transunet3d.training.segmentation import SegmentationTask
    from transunet3d.training.trainer import Trainer

    config = build_config(preset, ["loop.epochs=1", "loop.iterations_per_epoch=2", "loop.val_batches=1",
                                   SMALL_PATCHES[1]])
    trainer = Trainer(SegmentationTask(config, cache, 0), ModelFolder(tmp_path / preset), device="cpu")
    state = trainer.fit()
    assert state.epoch == 1 and state.skipped_steps == 0
    row = trainer.log.rows[-1]
    assert row["train_loss"] > 0 and 0 <= row["dice_WT"] <= 1
    assert (tmp_path / preset / "checkpoints" / "epoch_0001" / "weights.safetensors").exists()


def test_training_reads_enlarged_patches_and_validation_the_final_ones(cache: Path):
    import torch

    from transunet3d.config import build_config
    from transunet3d.training.augment import read_size
    from transunet3d.training.segmentation import SegmentationTask

    config = build_config("tiny-unet", ["augment.rotation_p=1.0"])
    patch = tuple(config.train.patch_size)
    task = SegmentationTask(config, cache, 0)
    batch = task.batches.batch(0)
    assert batch.images.shape[2:] == read_size(patch, batch.spatial) != patch
    prepared = task.prepare(batch.tensors(), 0, 0, torch.device("cpu"))
    assert [tuple(tensor.shape[2:]) for tensor in prepared] == [patch, patch]
    assert task.validation.batch(0).images.shape[2:] == patch
