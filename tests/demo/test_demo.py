"""A miniature `transunet3d demo`: every stage runs and leaves its files, the score is the evaluation's, reruns
continue instead of starting over."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from transunet3d.cli.main import cli
from transunet3d.runs.layout import RunFolder

EXE = shutil.which("transunet3d", path=str(Path(sys.executable).parent)) or "transunet3d"
MINI = ["--train-cases", "4", "--test-cases", "2", "--shape", "72", "72", "64", "--epochs", "2", "--iterations", "2"]


def demo(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, "demo", str(out), *MINI, *extra], capture_output=True, text=True, timeout=600)


def test_miniature_demo_from_phantoms_to_report(tmp_path: Path):
    out = tmp_path / "demo"
    first = demo(out)
    assert first.returncode == 0, first.stderr[-3000:]
    for stage in ("[1/8] phantoms", "[4/8] training and out-of-fold validation",
                  "[5/8] post-processing tuned on the out-of-fold predictions", "[6/8] prediction",
                  "[7/8] evaluation", "[8/8] report"):
        assert stage in first.stdout
    assert "epoch 1" in first.stderr and "predict" in first.stderr  # progress bars
    predictions = sorted(p.name for p in (out / "predictions").iterdir())
    assert predictions == ["BraTS-MET-00005-000.nii.gz", "BraTS-MET-00006-000.nii.gz",  # held-out cases 5, 6
                           "ensemble.json"]
    assert sorted(p.name for p in (out / "raw" / "train").iterdir() if p.is_dir()) == [
        f"BraTS-MET-0000{i}-000" for i in range(1, 5)]
    summary = json.loads((out / "evaluation" / "summary.json").read_text())
    assert summary["cases_scored"] == 2
    score = float(re.search(r"mean lesion-wise Dice on the 2 test phantoms \(WT, TC, ET\): ([0-9.]+)",
                            first.stdout)[1])
    assert abs(score - summary["overall"]["mean_lesionwise_dice"]) < 5e-4
    assert "out-of-fold mean lesion-wise Dice on the 1 validation cases" in first.stdout
    rows = (out / "evaluation" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 3
    run = RunFolder(out / "run")
    tuned = json.loads(run.postprocessing.read_text())
    assert tuned["cases"] == 1  # fold 0's validation case: tuned without looking at the test phantoms
    assert json.loads((out / "predictions" / "ensemble.json").read_text())["postprocessing"] == tuned["settings"]
    page = (out / "report.html").read_text()
    assert "Evaluation: evaluation" in page and "Training run: run/fold_0" in page
    assert "Evaluation: run/cv" in page and "Post-processing tuned on cross-validation: run" in page
    assert page.count("data:image/png;base64,") == 2 + 1  # two case overlays, the training curves

    again = demo(out, "--workers", "1")  # finished stages are skipped (with any --workers): same result
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{score:.3f}" in again.stdout
    assert "phantom:" not in again.stderr  # no phantom was generated again

    other = CliRunner().invoke(cli, ["demo", str(out), *MINI, "--mae"])  # refused before any work: in this process
    assert other.exit_code == 2 and "holds a demo with other settings" in other.stderr


def test_a_folder_holding_anything_but_a_demo_is_refused_before_any_work(tmp_path: Path):
    """Phantoms of another series already in OUT/raw were trained and "held-out" tested on (a test case was a
    training case), exit 0."""
    (tmp_path / "raw" / "test").mkdir(parents=True)
    result = CliRunner().invoke(cli, ["demo", str(tmp_path), *MINI])
    assert result.exit_code == 2, result.output
    assert result.stderr == (f"error: {tmp_path}: not empty and holds no demo (demo.json); "
                             "choose an empty or new folder\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]
