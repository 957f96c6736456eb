"""`evaluate` on a prediction folder without any prediction: a user mistake unless `--allow-empty` says otherwise."""

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
from click.testing import CliRunner

from transunet3d.cli.main import cli
from transunet3d.errors import EXIT_USER_ERROR


def _references(root: Path) -> Path:
    labels = np.zeros((12, 12, 12), dtype=np.uint8)
    labels[3:7, 3:7, 3:7] = 2
    for case in ("00001-000", "00002-000"):
        nib.save(nib.Nifti1Image(labels, np.eye(4)), root / f"BraTS-MET-{case}-seg.nii.gz")
    return root


def test_an_empty_prediction_folder_is_a_user_error(tmp_path: Path):
    (tmp_path / "pred").mkdir()
    (tmp_path / "ref").mkdir()
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "pred"), str(_references(tmp_path / "ref")),
                                      "--out", str(tmp_path / "m.csv")])
    assert result.exit_code == EXIT_USER_ERROR, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "pred" in errors[0] and "nothing was predicted" in errors[0], result.stderr
    assert "--allow-empty" in errors[0]
    assert not (tmp_path / "m.csv").exists()


def test_allow_empty_scores_every_case_as_an_empty_prediction(tmp_path: Path):
    (tmp_path / "pred").mkdir()
    (tmp_path / "ref").mkdir()
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "pred"), str(_references(tmp_path / "ref")),
                                      "--out", str(tmp_path / "m.csv"), "--allow-empty"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "m.csv").open()))
    assert len(rows) == 6 and {row["num_tp"] for row in rows} == {"0"}
