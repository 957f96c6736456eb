"""Fault injection: `predict`, `preprocess` and `evaluate` killed (SIGKILL) at random moments, then run again
(`--continue`, plain, plain), give exactly the outputs of an uninterrupted run and leave no temporary behind.
(`train` killed after a checkpoint and run again with `--resume`: tests/training/test_trainer.py.)"""

import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner

from tests.factories import dead_pid, temporary, write_run
from transunet3d.cli.main import cli
from transunet3d.data.phantom import PhantomSpec, write_phantoms
from transunet3d.files import is_temporary

EXE = shutil.which("transunet3d", path=str(Path(sys.executable).parent)) or "transunet3d"
SEEDS = (1, 2)


def predict_args(raw: Path, model: Path) -> list[str]:
    return ["predict", str(raw), "--model", str(model), "--tta", "none", "--save-probabilities", "--device", "cpu"]


def invoke(*args: object) -> None:
    """Run a command in this process (the uninterrupted reference)."""
    result = CliRunner().invoke(cli, list(map(str, args)))
    assert result.exit_code == 0, (result.output, result.exception)


def killed_then_rerun(args: list[str], seed: int, rerun: list[str], latest_kill_s: float) -> None:
    """Start `transunet3d args`, SIGKILL it (and its children) after a random delay, then run `args + rerun` to
    the end."""
    started = time.monotonic()
    process = subprocess.Popen([EXE, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    delay = random.Random(seed).uniform(0, latest_kill_s)
    try:
        process.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode in (0, -signal.SIGKILL), process.stderr.read()
    process.stderr.close()
    again = subprocess.run([EXE, *args, *rerun], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert time.monotonic() - started < 60


def temporaries(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if is_temporary(path)]


@pytest.fixture(scope="module")
def startup_s() -> float:
    """Seconds the command takes to start (imports) before it works: kills are drawn from then on as well."""
    started = time.monotonic()
    subprocess.run([EXE, "--version"], check=True, capture_output=True)
    return time.monotonic() - started


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Raw phantoms, their uninterrupted preprocessing (with splits), predictions and evaluation."""
    root = tmp_path_factory.mktemp("faults")
    write_phantoms(root / "raw", cases=3, seed=8, spec=PhantomSpec(shape=(64, 64, 48), lesions=(1, 2)),
                   progress=False)
    invoke("preprocess", root / "raw", root / "pre")
    write_run(root / "model", seed=2)
    invoke(*predict_args(root / "raw", root / "model"), root / "pred")
    invoke("evaluate", root / "pred", root / "raw", "--out", root / "eval" / "metrics.csv",
           "--summary", root / "eval" / "summary.json")
    return root


def assert_same_nifti(a: Path, b: Path) -> None:
    first, second = nib.load(a), nib.load(b)
    assert first.header.binaryblock == second.header.binaryblock
    assert np.asanyarray(first.dataobj).tobytes() == np.asanyarray(second.dataobj).tobytes()


def assert_same_predictions(reference: Path, out: Path) -> None:
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in reference.iterdir())
    for path in reference.iterdir():
        if path.name.endswith(".nii.gz"):
            assert_same_nifti(path, out / path.name)
        elif path.suffix == ".npz":
            first, second = np.load(path), np.load(out / path.name)
            assert all(first[key].tobytes() == second[key].tobytes() for key in ("probabilities", "regions"))
        else:
            assert path.read_bytes() == (out / path.name).read_bytes()


@pytest.mark.parametrize("seed", SEEDS)
def test_predict_killed_then_continued(data: Path, startup_s: float, tmp_path: Path, seed: int):
    out = tmp_path / "pred"
    killed_then_rerun([*predict_args(data / "raw", data / "model"), str(out)], seed, ["--continue"], startup_s + 4)
    assert_same_predictions(data / "pred", out)
    assert temporaries(out) == []


def test_continued_predict_removes_dead_writers_temporaries_only(data: Path, tmp_path: Path):
    out = tmp_path / "pred"
    shutil.copytree(data / "pred", out)
    stale = temporary(out, "BraTS-MET-00001-000.nii.gz", dead_pid())
    running = temporary(out, "BraTS-MET-00002-000.nii.gz", os.getpid())  # a live writer's: left alone
    invoke(*predict_args(data / "raw", data / "model"), out, "--continue")
    assert not stale.exists() and running.exists()


@pytest.mark.parametrize("seed", SEEDS)
def test_preprocess_killed_then_rerun(data: Path, startup_s: float, tmp_path: Path, seed: int):
    out = tmp_path / "pre"
    killed_then_rerun(["preprocess", str(data / "raw"), str(out)], seed, [], startup_s + 2)
    reference = sorted(p.name for p in (data / "pre").iterdir() if p.name != "splits.json")
    assert sorted(p.name for p in out.iterdir()) == reference
    for name in reference:
        if name.endswith(".json"):
            assert json.loads((out / name).read_text()) == json.loads((data / "pre" / name).read_text())
        else:
            assert (out / name).read_bytes() == (data / "pre" / name).read_bytes()
    assert temporaries(out) == []


@pytest.mark.parametrize("seed", SEEDS)
def test_evaluate_killed_then_rerun(data: Path, startup_s: float, tmp_path: Path, seed: int):
    out = tmp_path / "eval"
    killed_then_rerun(["evaluate", str(data / "pred"), str(data / "raw"), "--out", str(out / "metrics.csv"),
                       "--summary", str(out / "summary.json")],
                      seed, [], startup_s + 2)
    with (out / "metrics.csv").open() as rerun, (data / "eval" / "metrics.csv").open() as reference:
        assert list(csv.reader(rerun)) == list(csv.reader(reference))
    expected = json.loads((data / "eval" / "summary.json").read_text())
    expected["folders"]["summary"] = str(out.resolve())  # the one thing that differs: where the summary lies
    assert json.loads((out / "summary.json").read_text()) == expected
    assert temporaries(out) == []
