"""`transunet3d evaluate --rules`: the rule set decides the labels allowed, the regions and the tables."""

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner

from transunet3d.cli.main import cli
from transunet3d.errors import EXIT_INCOMPLETE, EXIT_USER_ERROR
from transunet3d.evaluation.brats2025 import QUANTITIES
from transunet3d.evaluation.report import METRIC_COLUMNS


def labels_with_cavity() -> np.ndarray:
    labels = np.zeros((20, 20, 20), dtype=np.uint8)
    labels[3:8, 3:8, 3:8] = 2
    labels[4:7, 4:7, 4:7] = 3
    labels[5, 5, 5] = 1
    labels[12:17, 12:17, 12:17] = 4  # resection cavity
    return labels


def write_cases(root: Path, reference: np.ndarray, prediction: np.ndarray, cases=("00001-000", "00002-000")):
    for case in cases:
        for folder, labels, suffix in (("ref", reference, "-seg"), ("pred", prediction, "")):
            (root / folder).mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(labels, np.eye(4)), root / folder / f"BraTS-MET-{case}{suffix}.nii.gz")


def evaluate(root: Path, *options: str):
    return CliRunner().invoke(cli, ["evaluate", str(root / "pred"), str(root / "ref"), "--out",
                                    str(root / "m.csv"), *options])


def test_brats2025_scores_the_cavity_and_writes_the_official_quantities(tmp_path: Path):
    prediction = labels_with_cavity()
    prediction[12:17, 12:17, 12] = 0  # the cavity predicted a slice short
    write_cases(tmp_path, labels_with_cavity(), prediction)
    result = evaluate(tmp_path, "--rules", "brats2025", "--summary", str(tmp_path / "s.json"),
                      "--lesions", str(tmp_path / "l.csv"))
    assert result.exit_code == 0, result.output
    assert "2 cases scored (brats2025 rules)" in result.stdout
    assert (tmp_path / "m.csv").read_text().splitlines()[0] == ",".join(["case", "region", *QUANTITIES])
    rows = list(csv.DictReader((tmp_path / "m.csv").open()))
    assert [(r["case"], r["region"]) for r in rows][:4] == [("00001-000", "WT"), ("00001-000", "TC"),
                                                            ("00001-000", "ET"), ("00001-000", "RC")]
    cavity = rows[3]
    assert float(cavity["lesionwise_dsc_mean"]) == pytest.approx(2 * 100 / 225)
    assert (cavity["all_instance_tp"], cavity["small_instance_tp"]) == ("1", "nan")  # no small lesion: NaN
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["rules"] == "brats2025" and summary["cases_scored"] == 2
    assert summary["regions"]["RC"]["mean"]["small_instance_tp"] is None  # NaN in the CSV, null in JSON
    assert summary["regions"]["RC"]["median"]["lesionwise_dsc_mean"] == pytest.approx(2 * 100 / 225)
    lesions = list(csv.DictReader((tmp_path / "l.csv").open()))
    cavities = [r for r in lesions if r["case"] == "00001-000" and r["region"] == "RC"]
    assert [(r["source"], r["matched"], r["volume_mm3"]) for r in cavities] == [("ref", "True", "125.0"),
                                                                                 ("pred", "True", "100.0")]
    assert (cavities[0]["centroid_x"], cavities[0]["centroid_z"]) == ("14.0", "14.0")  # voxels 12..16
    assert float(cavities[1]["lesion_dice"]) == pytest.approx(2 * 100 / 225)
    enhancing = [r for r in lesions if r["case"] == "00001-000" and r["region"] == "ET" and r["source"] == "ref"]
    assert [(r["centroid_x"], r["volume_mm3"]) for r in enhancing] == [("5.0", "26.0")]  # the core is NETC


def test_label_4_is_an_error_under_the_default_rules(tmp_path: Path):
    write_cases(tmp_path, labels_with_cavity(), labels_with_cavity(), cases=("00001-000",))
    result = evaluate(tmp_path)
    assert result.exit_code == EXIT_INCOMPLETE
    assert "error: 00001-000: BraTS-MET-00001-000-seg.nii.gz: labels must be in {0,1,2,3}, found 4" in result.stderr


def test_a_label_outside_the_2025_scheme_fails_its_case_and_the_others_are_scored(tmp_path: Path):
    write_cases(tmp_path, labels_with_cavity(), labels_with_cavity())
    strayed = labels_with_cavity()
    strayed[0, 0, 0] = 5
    bad = tmp_path / "pred" / "BraTS-MET-00001-000.nii.gz"
    nib.save(nib.Nifti1Image(strayed, np.eye(4)), bad)
    result = evaluate(tmp_path, "--rules", "brats2025")
    assert result.exit_code == EXIT_INCOMPLETE
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: 00001-000: {bad.name}: labels must be in {{0,1,2,3,4}}, found 5"]
    assert {row["case"] for row in csv.DictReader((tmp_path / "m.csv").open())} == {"00002-000"}


def test_an_unknown_rule_set_is_one_error_line_and_nothing_is_written(tmp_path: Path):
    write_cases(tmp_path, labels_with_cavity(), labels_with_cavity())
    result = evaluate(tmp_path, "--rules", "brats2024", "--summary", str(tmp_path / "s.json"))
    assert result.exit_code == EXIT_USER_ERROR
    assert result.stderr.splitlines() == [
        "error: --rules: unknown rule set 'brats2024'; known: brats2023, brats2023-rc, brats2025"]
    assert not (tmp_path / "m.csv").exists() and not (tmp_path / "s.json").exists()


def test_the_default_rules_are_brats2023(tmp_path: Path):
    labels = labels_with_cavity()
    labels[labels == 4] = 0
    write_cases(tmp_path, labels, labels)
    result = evaluate(tmp_path, "--summary", str(tmp_path / "s.json"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m.csv").read_text().splitlines()[0] == ",".join(METRIC_COLUMNS)
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["rules"] == "brats2023" and list(summary["regions"]) == ["WT", "TC", "ET"]
    assert summary["overall"]["mean_lesionwise_dice"] == 1.0
