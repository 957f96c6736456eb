"""MAE pre-training through the one Trainer, and its transfer into `train --init-encoder`."""

import contextlib
import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from transunet3d.cli.main import cli
from transunet3d.config import build_config
from transunet3d.runs.layout import ModelFolder, RunFolder
from transunet3d.training.distributed import Distributed
from transunet3d.training.pretraining import PretrainTask
from transunet3d.training.trainer import Trainer


def test_125_cpu_steps_lower_the_masked_loss_markedly(cache: Path, tmp_path: Path):
    # Validation loss per epoch on the reference machine: 1.34 before, then 1.03, 0.97, 0.96, 0.96, 0.93.
    config = build_config("mae-tiny", ["loop.epochs=5", "loop.iterations_per_epoch=25",
                                       "loop.val_batches=2"])
    task = PretrainTask(config, cache)
    task.network.eval()
    with torch.no_grad():
        before = task.validate(torch.device("cpu"), contextlib.nullcontext())["val_loss"]
    trainer = Trainer(task, ModelFolder(tmp_path / "mae"), device="cpu")
    state = trainer.fit()
    after = trainer.log.rows[-1]["val_loss"]
    assert state.epoch == 5 and state.skipped_steps == 0
    assert after < 0.8 * before and after < 0.97  # predicting each token's mean scores 1.0
    for name in ("config.yaml", "log.csv", "progress.png", "reconstruction.png", "checkpoints/latest.json"):
        assert (tmp_path / "mae" / name).exists(), name


def test_table2_chain_pretrain_then_fine_tune_from_the_mae_weights(cache: Path, tmp_path: Path):
    """The command chain of docs/training.md for the paper's Table 2 (mae-paper, then paper-encoder with
    --init-encoder for 300 epochs), at tiny size: mae-tiny, then tiny with --init-encoder."""
    runner = CliRunner()
    pretrained = runner.invoke(cli, ["pretrain", str(cache), "--out", str(tmp_path / "mae"), "--device", "cpu",
                                     "--set", "loop.epochs=2", "--set", "loop.iterations_per_epoch=3",
                                     "--set", "loop.val_batches=1"])
    assert pretrained.exit_code == 0, pretrained.output
    assert "pretrained 2 epochs" in pretrained.output
    trained = runner.invoke(cli, ["train", str(cache), "--preset", "tiny", "--out", str(tmp_path / "seg"),
                                  "--device", "cpu", "--init-encoder", str(tmp_path / "mae"), "--no-validate",
                                  "--set", "loop.epochs=2", "--set", "loop.iterations_per_epoch=1",
                                  "--set", "loop.val_batches=1"])
    assert trained.exit_code == 0, trained.output
    assert "fold 0: 2 epochs" in trained.output
    seg = RunFolder(tmp_path / "seg").fold(0)
    loaded = json.loads(seg.init_encoder.read_text())
    assert f"initialised {len(loaded['tensors'])} ViT tensors" in trained.output
    assert (loaded["epoch"], loaded["epochs"]) == (2, 2) and "warning:" not in trained.stderr
    assert "vit.blocks.0.attn.qkv.weight" in loaded["tensors"] and "vit.norm.weight" in loaded["tensors"]
    assert not any(name.startswith(("vit.embed", "vit.position")) for name in loaded["tensors"])
    assert f"init_encoder: {tmp_path / 'mae'}" in seg.config.read_text()
    mae_weights = load_file(str(next((tmp_path / "mae" / "checkpoints").glob("epoch_*")) / "weights.safetensors"))
    assert mae_weights["blocks.0.attn.qkv.weight"].shape == (3 * 48, 48)
    mae_config = tmp_path / "mae" / "config.yaml"  # as if it had been stopped after 2 of 5 epochs
    mae_config.write_text(mae_config.read_text().replace("epochs: 2", "epochs: 5", 1))
    unfinished = runner.invoke(cli, ["train", str(cache), "--preset", "tiny", "--out", str(tmp_path / "seg2"),
                                     "--device", "cpu", "--init-encoder", str(tmp_path / "mae"), "--no-validate",
                                     "--set", "loop.epochs=1", "--set", "loop.iterations_per_epoch=1"])
    assert unfinished.exit_code == 0 and f"warning: {tmp_path / 'mae'}: pre-trained for 2 of 5 epochs; its encoder " \
        "is transferred as it is" in unfinished.stderr
    shutil.rmtree(tmp_path / "mae")  # a resumed run takes its weights from its own checkpoint
    resumed = runner.invoke(cli, ["train", str(cache), "--preset", "tiny", "--out", str(tmp_path / "seg"),
                                  "--device", "cpu", "--resume", "--no-validate"])
    assert resumed.exit_code == 0, resumed.output


def test_init_encoder_refuses_a_model_without_a_vit(cache: Path, tmp_path: Path):
    runner = CliRunner()
    assert runner.invoke(cli, ["pretrain", str(cache), "--out", str(tmp_path / "mae"), "--device", "cpu",
                               "--set", "loop.epochs=1", "--set", "loop.iterations_per_epoch=1",
                               "--set", "loop.val_batches=1"]).exit_code == 0
    result = runner.invoke(cli, ["train", str(cache), "--preset", "tiny-unet", "--out", str(tmp_path / "seg"),
                                 "--device", "cpu", "--init-encoder", str(tmp_path / "mae")])
    assert result.exit_code == 2
    assert "error:" in result.output and "no ViT encoder" in result.output
    # An MAE whose weights hold a NaN was transferred unchecked: training ended with every weight NaN, exit 0.
    weights = next((tmp_path / "mae" / "checkpoints").glob("epoch_*")) / "weights.safetensors"
    tensors = load_file(str(weights))
    tensors["blocks.0.attn.qkv.weight"][0, 0] = float("nan")
    save_file(tensors, str(weights))
    result = runner.invoke(cli, ["train", str(cache), "--preset", "tiny", "--out", str(tmp_path / "nan"),
                                 "--device", "cpu", "--init-encoder", str(tmp_path / "mae")])
    assert result.exit_code == 2 and result.stderr.splitlines()[-1] == (
        f"error: {weights}: 1 of {len(tensors)} tensors hold NaN or infinite values (the training diverged)")
    assert not (tmp_path / "nan").exists()


def test_pretraining_runs_under_torchrun_with_two_processes(cache: Path, tmp_path: Path):
    torchrun = Path(sys.executable).parent / "torchrun"
    out = tmp_path / "ddp"
    result = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "transunet3d", "pretrain", str(cache),
         "--out", str(out), "--device", "cpu", "--set", "loop.epochs=2", "--set", "loop.val_batches=1",
         "--set", "loop.iterations_per_epoch=0"],  # 0: one pass over the 4 cases = 1 iteration of 2 x 4
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("pretrained 2 epochs") == 1  # only rank 0 reports
    rows = (out / "log.csv").read_text().splitlines()
    assert len(rows) == 3  # header + 2 epochs
    assert (out / "checkpoints" / "epoch_0002" / "weights.safetensors").exists()


def test_resumed_pretraining_ends_with_the_same_weights_bitwise(cache: Path, tmp_path: Path):
    config = build_config("mae-tiny", ["loop.epochs=3", "loop.iterations_per_epoch=2",
                                       "loop.val_batches=1"])
    straight = Trainer(PretrainTask(config, cache), ModelFolder(tmp_path / "straight"), device="cpu")
    straight.fit()
    interrupted = Trainer(PretrainTask(config, cache), ModelFolder(tmp_path / "resumed"), device="cpu")
    interrupted.loop = replace(interrupted.loop, epochs=2)  # the process dies after epoch 2
    interrupted.fit()
    resumed = Trainer(PretrainTask(config, cache), ModelFolder(tmp_path / "resumed"), device="cpu")
    assert resumed.resume() and resumed.state.epoch == 2
    resumed.fit()
    expected, actual = straight.network.state_dict(), resumed.network.state_dict()
    assert all(torch.equal(expected[name], actual[name]) for name in expected)
    assert [row["epoch"] for row in resumed.log.rows] == [0, 1, 2]


def test_a_rerun_after_a_kill_before_the_first_checkpoint_logs_each_epoch_once(cache: Path, tmp_path: Path):
    """Killed after epoch 0's log row but before its checkpoint: the rerun starts afresh and forgets that row."""
    config = build_config("mae-tiny", ["loop.epochs=2", "loop.iterations_per_epoch=1", "loop.val_batches=1"])
    folder = ModelFolder(tmp_path / "run")
    folder.path.mkdir(parents=True)
    folder.log.write_text("epoch,train_loss,val_loss,lr,seconds,skipped_steps\n0,1.0,1.0,0.001,1.0,0\n")
    rerun = Trainer(PretrainTask(config, cache), folder, device="cpu")
    assert not rerun.resume()
    rerun.fit()
    assert [row["epoch"] for row in rerun.log.rows] == [0, 1]
    assert folder.log.read_text().count("\n") == 3


@pytest.mark.parametrize(("scaling", "peak"), [("linear", 1.5e-4 * 16 / 256), ("none", 1.5e-4)])
def test_both_readings_of_the_papers_mae_learning_rate(cache: Path, scaling: str, peak: float):
    """8 processes x batch 2 with base lr 1.5e-4: MAE's rule gives 9.4e-6, the literal reading 1.5e-4."""
    config = build_config("mae-tiny", ["pretrain.base_lr=1.5e-4", "loop.batch_size=2",
                                       f"pretrain.lr_scaling={scaling}"])
    task = PretrainTask(config, cache, Distributed(rank=3, world=8))
    assert task.peak_lr == pytest.approx(peak)
    warmup = config.pretrain.warmup_epochs * task.iterations_per_epoch
    assert task.learning_rate(warmup) == pytest.approx(peak)
    assert task.optimizer().param_groups[0]["lr"] == pytest.approx(peak)


def test_the_paper_preset_scales_the_mae_learning_rate():
    pretrain = build_config("mae-paper").pretrain
    assert (pretrain.base_lr, pretrain.lr_scaling) == (1.5e-4, "linear")


def test_pretraining_builds_the_vit_the_model_config_asks_for(cache: Path):
    config = build_config("mae-tiny", ["model.vit_depth=1"])
    assert len(PretrainTask(config, cache).network.blocks) == 1


def test_resumed_pretraining_names_the_given_settings_it_does_not_apply(cache: Path, tmp_path: Path):
    """`pretrain --resume --set loop.epochs=4` ran the saved 1 epoch with exit 0 and no word (train warned)."""
    short = ["--device", "cpu", "--set", "loop.iterations_per_epoch=1", "--set", "loop.val_batches=1", "--set",
             "pretrain.warmup_epochs=0"]
    out = tmp_path / "mae"
    assert CliRunner().invoke(cli, ["pretrain", str(cache), "--out", str(out), "--set", "loop.epochs=1",
                                    *short]).exit_code == 0
    resumed = CliRunner().invoke(cli, ["pretrain", str(cache), "--out", str(out), "--resume", "--set",
                                       "loop.epochs=4", *short])
    assert resumed.exit_code == 0 and "pretrained 1 epochs" in resumed.output
    assert [line for line in resumed.stderr.splitlines() if line.startswith("warning:")] == [
        f"warning: {out}: --resume continues with the run's saved config.yaml; the given loop.epochs are not "
        "applied (train into another --out to change them)"]
