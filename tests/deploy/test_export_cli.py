"""`transunet3d export` and `predict --backend onnxruntime` from the command line: the exported folder predicts
like the run, and mistakes are one error line with the policy's exit code."""

import json
import shutil
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from tests.deploy.conftest import CASES, TUNED, error_lines, invoke
from transunet3d.cli import deploy_cmds
from transunet3d.errors import EXIT_ENVIRONMENT, EXIT_USER_ERROR


def test_the_export_holds_a_network_and_config_per_fold_and_what_prediction_needs(exported: Path, cv_run: Path):
    assert sorted(path.name for path in exported.iterdir()) == [
        "export.json", "fold_0.onnx", "fold_0.yaml", "fold_1.onnx", "fold_1.yaml", "postprocessing.json"]
    assert (exported / "fold_1.yaml").read_text() == (cv_run / "fold_1" / "config.yaml").read_text()
    assert json.loads((exported / "postprocessing.json").read_text()) == TUNED
    record = json.loads((exported / "export.json").read_text())
    assert record["onnx"]["opset"] == 20
    assert record["onnx"]["input_shape"] == ["batch", 4, 64, 64, 64]
    assert record["label_scheme"]["name"] == "brats-mets-2023"
    assert record["label_scheme"]["regions"] == ["WT", "TC", "ET"]
    assert record["preprocessing"]["target_spacing"] == [2.5, 2.5, 2.5]
    assert record["preprocessing"]["axis_order"] == "RAS"
    assert record["inference"]["tta"] == "flip" and record["inference"]["tta_views"] == 8
    assert record["postprocessing"]["settings"]["thresholds"] == TUNED["settings"]["thresholds"]
    assert [(m["fold"], m["onnx"], m["variant"], m["checkpoint"]) for m in record["models"]] == [
        (0, "fold_0.onnx", "unet", "epoch_0020"), (1, "fold_1.onnx", "unet", "epoch_0020")]
    assert all(model["max_difference_to_torch"] < 1e-4 for model in record["models"])


def test_predict_with_onnx_runtime_writes_what_torch_writes(exported: Path, cv_run: Path, phantoms: Path,
                                                            tmp_path: Path):
    common = ("--tta", "none", "--save-probabilities", "--device", "cpu")
    by_torch = invoke("predict", phantoms, tmp_path / "torch", "--model", cv_run, *common)
    by_onnx = invoke("predict", phantoms, tmp_path / "onnx", "--model", exported, "--backend", "onnxruntime",
                     *common)
    assert by_torch.exit_code == 0 and by_onnx.exit_code == 0, by_onnx.output
    assert "post-processing: tuned on cross-validation" in by_onnx.output  # the run's, carried in the export
    assert "with 2 model(s)" in by_onnx.output
    for case in CASES:
        expected = nib.load(tmp_path / "torch" / f"{case}.nii.gz")
        found = nib.load(tmp_path / "onnx" / f"{case}.nii.gz")
        np.testing.assert_array_equal(found.affine, expected.affine)
        np.testing.assert_array_equal(np.asanyarray(found.dataobj), np.asanyarray(expected.dataobj))
        probabilities = [np.load(tmp_path / kind / f"{case}_probabilities.npz")["probabilities"].astype(np.float32)
                         for kind in ("torch", "onnx")]
        assert np.abs(probabilities[0] - probabilities[1]).max() <= 2**-11  # float16 files: one step at most
    record = json.loads((tmp_path / "onnx" / "ensemble.json").read_text())
    assert [(m["fold"], m["backend"], m["network"]) for m in record["models"]] == [
        (0, "onnxruntime", "fold_0.onnx"), (1, "onnxruntime", "fold_1.onnx")]


def test_folds_and_checkpoints_of_an_export(exported: Path, phantoms: Path, tmp_path: Path):
    one = invoke("predict", phantoms / CASES[0], tmp_path / "one", "--model", exported, "--backend", "onnxruntime",
                 "--fold", "1", "--tta", "none")
    assert one.exit_code == 0, one.output
    assert f"models: {exported / 'fold_1.onnx'}" in one.output
    missing = invoke("predict", phantoms, tmp_path / "x", "--model", exported, "--backend", "onnxruntime",
                     "--fold", "3")
    best = invoke("predict", phantoms, tmp_path / "y", "--model", exported, "--backend", "onnxruntime",
                  "--checkpoint", "best")
    for result, message in ((missing, "no fold '3'; it has folds 0, 1"),
                            (best, "exported from the latest checkpoints, not the best ones")):
        assert result.exit_code == EXIT_USER_ERROR
        assert error_lines(result) == [result.stderr.splitlines()[-1]]
        assert result.stderr.splitlines()[-1].startswith(f"error: {exported}: {message}")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_backend_and_model_folder_must_agree(exported: Path, cv_run: Path, phantoms: Path, tmp_path: Path):
    run_as_export = invoke("predict", phantoms, tmp_path / "a", "--model", cv_run, "--backend", "onnxruntime")
    export_as_run = invoke("predict", phantoms, tmp_path / "b", "--model", exported)
    assert run_as_export.exit_code == export_as_run.exit_code == EXIT_USER_ERROR
    assert error_lines(run_as_export)[0].startswith(f"error: {cv_run}: a training run, not an exported folder")
    assert error_lines(export_as_run)[0].startswith(f"error: {exported}: not a training run")


def test_a_network_file_other_than_the_one_exported_is_refused(exported: Path, phantoms: Path, tmp_path: Path):
    """fold_1's network in fold_0's place predicted with the wrong model, exit 0: export.json's SHA-256 is checked."""
    copy = tmp_path / "exported"
    shutil.copytree(exported, copy)
    shutil.copy(copy / "fold_1.onnx", copy / "fold_0.onnx")
    result = invoke("predict", phantoms, tmp_path / "out", "--model", copy, "--backend", "onnxruntime", "--fold", "0")
    assert result.exit_code == EXIT_USER_ERROR and not (tmp_path / "out").exists()
    assert error_lines(result) == [f"error: {copy / 'fold_0.onnx'}: not the network export.json records (its SHA-256 "
                                   "differs: replaced or damaged); export the run again"]


def test_export_refuses_what_is_not_a_run_and_a_folder_in_use(cv_run: Path, phantoms: Path, tmp_path: Path):
    not_a_run = invoke("export", phantoms, tmp_path / "a")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    in_use = invoke("export", cv_run, tmp_path / "used")
    no_fold = invoke("export", cv_run, tmp_path / "b", "--fold", "7")
    for result in (not_a_run, in_use, no_fold):
        assert result.exit_code == EXIT_USER_ERROR and len(error_lines(result)) == 1
    assert not_a_run.stderr.startswith(f"error: {phantoms}: not a training run")
    assert in_use.stderr.startswith(f"error: {tmp_path / 'used'}: exists and is not an empty folder")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []  # no temporary left


def test_a_missing_onnx_package_is_the_environments_error(exported: Path, cv_run: Path, phantoms: Path,
                                                           tmp_path: Path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime raises ImportError
    predicting = invoke("predict", phantoms, tmp_path / "a", "--model", exported, "--backend", "onnxruntime")
    exporting = invoke("export", cv_run, tmp_path / "b")
    for result in (predicting, exporting):
        assert result.exit_code == EXIT_ENVIRONMENT and len(error_lines(result)) == 1
        assert result.stderr.splitlines()[-1].startswith("error: onnxruntime (or onnxruntime-gpu for CUDA) is not "
                                                         "installed; ")
        assert "pip install 'transunet3d[onnx]'" in result.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_exporting_a_run_whose_training_had_not_finished_warns(monkeypatch, tmp_path: Path):
    """From the epochs that export.json records of each network (exporting itself is tested above)."""
    record = {"onnx": {"opset": 20}, "models": [
        {"onnx": "fold_0.onnx", "checkpoint": "epoch_0003", "epoch": 3, "epochs": 20, "max_difference_to_torch": 0.0},
        {"onnx": "fold_1.onnx", "checkpoint": "epoch_0020", "epoch": 20, "epochs": 20, "max_difference_to_torch": 0.0}]}
    monkeypatch.setattr(deploy_cmds, "export_run", lambda *args, **kwargs: record)
    result = invoke("export", tmp_path / "run", tmp_path / "exported")
    assert result.exit_code == 0, result.output
    assert [line for line in result.stderr.splitlines() if line.startswith("warning:")] == [
        f"warning: {tmp_path / 'exported' / 'fold_0.onnx'} (epoch_0003): trained for 3 of 20 epochs"]
