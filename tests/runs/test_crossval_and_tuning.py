"""Out-of-fold validation after training, the pooled cross-validation, tuning, and predict applying the tuning."""

import csv
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner, Result

from transunet3d.cli import tune_cmd
from transunet3d.cli.main import cli
from transunet3d.config import load_config
from transunet3d.crossval import pool_folds
from transunet3d.errors import UserError
from transunet3d.evaluation.pairing import CASE_ID
from transunet3d.inference.cases import probabilities_path, submission_path
from transunet3d.postprocessing.rules import PostprocessSettings
from transunet3d.postprocessing.tune import TuningResult
from transunet3d.runs.layout import RunFolder


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_train_all_validates_every_fold_and_pools_them(trained_run: Path, raw_and_cache):
    _, cache = raw_and_cache
    run = RunFolder(trained_run)
    splits = json.loads((cache / "splits.json").read_text())
    pooled = []
    for fold in (0, 1):
        validation = run.fold(fold).validation
        rows = _rows(validation.evaluation.metrics)
        assert sorted({row["case"] for row in rows}) == sorted(CASE_ID.search(c)[0] for c in splits[fold]["val"])
        assert {row["region"] for row in rows} == {"WT", "TC", "ET"}
        for case in splits[fold]["val"]:
            assert submission_path(validation.predictions, case).is_file()
            assert probabilities_path(validation.predictions, case).is_file()
            assert validation.reference(case).is_file()
        pooled += rows
    summary = json.loads(run.cv.summary.read_text())
    cv_rows = _rows(run.cv.metrics)
    assert summary["cases_scored"] == 4 and summary["folds"] == {"0": sorted(splits[0]["val"]),
                                                                  "1": sorted(splits[1]["val"])}
    assert len(cv_rows) == len(pooled) == 12
    assert summary["overall"]["mean_lesionwise_dice"] == pytest.approx(
        np.mean([float(row["lesionwise_dice"]) for row in pooled]))
    assert run.cv.lesions.is_file()


def test_the_runs_config_records_the_caches_grid(trained_run: Path, raw_and_cache):
    _, cache = raw_and_cache
    dataset = json.loads((cache / "dataset.json").read_text())
    for fold in (0, 1):
        data = load_config(RunFolder(trained_run).fold(fold).config).data
        assert list(data.target_spacing) == dataset["target_spacing"] and data.axis_order == "RAS"


def test_references_are_the_raw_label_maps_and_predictions_those_of_predict(trained_run: Path, raw_and_cache,
                                                                            tmp_path: Path):
    """Validation runs the real predictor on the cached case with the run's `infer.validation_tta` (none here):
    the same labels as `predict` with that TTA on the raw files."""
    raw, _ = raw_and_cache
    validation = RunFolder(trained_run).fold(0).validation
    case = sorted(json.loads(RunFolder(trained_run).cv.summary.read_text())["folds"]["0"])[0]
    original = nib.load(raw / case / f"{case}-seg.nii.gz")
    reference = nib.load(validation.reference(case))
    assert np.array_equal(np.asarray(reference.dataobj), np.asarray(original.dataobj))
    assert np.allclose(reference.affine, original.affine)
    (tmp_path / "cases.txt").write_text(case)
    result = CliRunner().invoke(cli, ["predict", str(raw), str(tmp_path / "out"), "--model", str(trained_run),
                                      "--fold", "0", "--tta", "none", "--postprocessing", "none", "--case-list",
                                      str(tmp_path / "cases.txt"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    expected = np.asarray(nib.load(submission_path(tmp_path / "out", case)).dataobj)
    assert np.array_equal(np.asarray(nib.load(submission_path(validation.predictions, case)).dataobj), expected)


def test_an_interrupted_validation_continues_with_the_missing_cases(trained_run: Path):
    run = RunFolder(trained_run)
    validation = run.fold(1).validation
    cases = json.loads(run.cv.summary.read_text())["folds"]["1"]
    kept, lost = submission_path(validation.predictions, cases[0]), cases[1]
    before = kept.stat().st_mtime_ns
    for path in (submission_path(validation.predictions, lost), validation.evaluation.metrics):
        path.unlink()
    result = CliRunner().invoke(cli, ["crossval", str(trained_run), "--fold", "1", "--device", "cpu",
                                      "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert kept.stat().st_mtime_ns == before  # not predicted again
    assert submission_path(validation.predictions, lost).is_file()
    assert sorted({row["case"] for row in _rows(validation.evaluation.metrics)}) == [CASE_ID.search(c)[0]
                                                                                    for c in cases]
    assert "cross-validation (2 fold(s), 4 cases)" in result.output


def test_an_empty_fold_choice_is_refused_as_train_refuses_it(trained_run: Path):
    """`crossval --fold "$FOLD"` with FOLD unset validated every fold."""
    result = CliRunner().invoke(cli, ["crossval", str(trained_run), "--fold", ""])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == ["error: --fold '': '' is neither a fold number nor 'all-data'"]


def test_crossval_under_torchrun_is_refused(trained_run: Path, monkeypatch):
    """Every process validated every fold into the same files, each printing the summary."""
    for name, value in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(name, value)
    before = sorted(trained_run.rglob("*"))
    result = CliRunner().invoke(cli, ["crossval", str(trained_run)])
    assert result.exit_code == 2 and result.stderr.splitlines() == [
        "error: crossval runs in one process (WORLD_SIZE=2): start it without torchrun; it predicts on one device"]
    assert sorted(trained_run.rglob("*")) == before


def test_folds_that_validated_the_same_case_are_not_pooled(trained_run: Path, tmp_path: Path):
    """Folds trained on two partitions (the cache re-split between them) scored a case twice in RUN/cv."""
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    splits_file = RunFolder(copy).fold(1).splits
    splits = json.loads(splits_file.read_text())
    repeated = splits[0]["val"][0]
    others = [case for split in splits for case in split["val"] if case != repeated]
    splits_file.write_text(json.dumps([{"train": [repeated], "val": others}, {"train": others, "val": [repeated]}]))
    with pytest.raises(UserError) as raised:
        pool_folds(RunFolder(copy))
    assert str(raised.value) == (f"{copy}: folds 0 and 1 both validated {repeated}: they were trained on different "
                                 "splits, and pooling them would count it twice; retrain one of them on the other's "
                                 "splits")


@pytest.fixture(scope="module")
def tuned(trained_run: Path) -> Result:
    """`transunet3d tune` of the run, once for the tests that read its output, its file or its report."""
    return CliRunner().invoke(cli, ["tune", str(trained_run), "--workers", "2"])


def test_tune_writes_postprocessing_json_and_predict_applies_it(trained_run: Path, tuned: Result, raw_and_cache,
                                                                tmp_path: Path):
    raw, _ = raw_and_cache
    run = RunFolder(trained_run)
    assert tuned.exit_code == 0, tuned.output
    written = json.loads(run.postprocessing.read_text())
    assert written["cases"] == 4 and written["score_after"] >= written["score_before"]
    assert set(written["regions"]) == {"WT", "TC", "ET"} and written["tried"]
    assert 0 <= written["score_held_out"] <= 1 and f"held out (each case with the settings tuned on the others): " \
        f"{written['score_held_out']:.4f}" in tuned.output
    # The default settings re-scored from the stored float16 probabilities: the cross-validation score up to the
    # voxels whose probability rounds across 0.5.
    assert written["score_before"] == pytest.approx(
        json.loads(run.cv.summary.read_text())["overall"]["mean_lesionwise_dice"], abs=0.01)

    (tmp_path / "one.txt").write_text(sorted(p.name for p in raw.iterdir() if p.is_dir())[0])
    common = ["--model", str(trained_run), "--fold", "0", "--tta", "none", "--case-list", str(tmp_path / "one.txt"),
              "--device", "cpu"]
    applied = CliRunner().invoke(cli, ["predict", str(raw), str(tmp_path / "tuned"), *common])
    assert applied.exit_code == 0, applied.output
    assert f"post-processing: tuned on cross-validation ({run.postprocessing})" in applied.output
    record = json.loads((tmp_path / "tuned" / "ensemble.json").read_text())
    assert record["postprocessing"] == written["settings"]
    skipped = CliRunner().invoke(cli, ["predict", str(raw), str(tmp_path / "plain"), "--postprocessing", "none",
                                       *common])
    assert skipped.exit_code == 0 and "post-processing: the config's" in skipped.output
    plain = json.loads((tmp_path / "plain" / "ensemble.json").read_text())["postprocessing"]
    assert plain == {"thresholds": {"WT": 0.5, "TC": 0.5, "ET": 0.5},
                     "min_lesion_mm3": {"WT": 0.0, "TC": 0.0, "ET": 0.0}, "require_core": False}


def test_predict_warns_when_the_tuning_saw_other_views_or_other_weights(trained_run: Path, tuned: Result,
                                                                        raw_and_cache, tmp_path: Path):
    """The tuned thresholds suit the probabilities they were chosen on: out-of-fold predictions of 8 flip views
    tuned settings that predict applied to 16 flip+rot views, and to folds retrained since, without a word."""
    from safetensors.torch import load_file, save_file

    raw, _ = raw_and_cache
    assert tuned.exit_code == 0, tuned.output
    run = Path(shutil.copytree(trained_run, tmp_path / "run"))
    source = json.loads(RunFolder(run).postprocessing.read_text())["tuned_on"]
    assert source["tta"] == ["none"] and sorted(model["fold"] for model in source["models"]) == [0, 1]
    (tmp_path / "one.txt").write_text(sorted(p.name for p in raw.iterdir() if p.is_dir())[0])

    def predict(out: str, *args: str) -> Result:
        return CliRunner().invoke(cli, ["predict", str(raw), str(tmp_path / out), "--model", str(run), "--case-list",
                                        str(tmp_path / "one.txt"), "--device", "cpu", *args])

    def warnings(result: Result) -> list[str]:
        assert result.exit_code == 0, result.output
        return [line for line in result.stderr.splitlines() if line.startswith("warning:")]

    assert warnings(predict("same", "--tta", "none")) == []
    assert warnings(predict("views", "--tta", "flip", "--fold", "0")) == [
        f"warning: {RunFolder(run).postprocessing}: tuned on out-of-fold predictions made with TTA none, and this "
        "prediction uses flip: its thresholds may not suit these probabilities"]
    for weights in (run / "fold_1").rglob("weights.safetensors"):  # fold 1 retrained after tuning
        tensors = load_file(weights)
        save_file({name: tensor + 1e-3 if tensor.is_floating_point() else tensor for name, tensor in tensors.items()},
                  weights)
    assert warnings(predict("retrained", "--tta", "none")) == [
        f"warning: {run / 'fold_1'}: other weights than the ones whose out-of-fold predictions tuned "
        f"{RunFolder(run).postprocessing} (retrained since?); run `transunet3d tune {run}` again"]


def test_tune_without_a_validated_fold_is_one_error_line(tmp_path: Path):
    result = CliRunner().invoke(cli, ["tune", str(tmp_path)])
    assert result.exit_code == 2 and result.output.startswith("error:") and "no validated fold" in result.output


def test_tune_names_what_its_path_is_and_a_folder_in_the_way_before_it_works(trained_run: Path, tmp_path: Path):
    """Every wrong path was 'no validated fold to tune on'; a folder at postprocessing.json was exit 1 after the
    whole tuning."""
    (tmp_path / "file").write_text("")
    blocked = tmp_path / "blocked"
    shutil.copytree(trained_run, blocked)
    RunFolder(blocked).postprocessing.unlink(missing_ok=True)
    RunFolder(blocked).postprocessing.mkdir()
    for path, message in ((tmp_path / "none", "training run does not exist"),
                          (tmp_path / "file", "not a folder (give the training run)"),
                          (trained_run / "fold_0", f"one fold of a run; tune the run itself ({trained_run}), on all "
                                                   "its validated folds"),
                          (blocked / "postprocessing.json", "is a folder; expected the path of a file to write")):
        result = CliRunner().invoke(cli, ["tune", str(blocked if path.name == "postprocessing.json" else path)])
        assert result.exit_code == 2 and result.stderr.strip() == f"error: {path}: {message}", result.output


def test_tune_says_which_folds_it_left_out_and_when_it_has_no_held_out_score(trained_run: Path, tmp_path: Path,
                                                                             monkeypatch):
    """Tuned on 2 of 4 cases, or on one case without a held-out score, it said neither (the tuning itself is
    tested above: here it is stood in for)."""
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    shutil.rmtree(run / "fold_0" / "validation")
    settings = PostprocessSettings.uniform()
    scores = {"WT": 0.5, "TC": 0.5, "ET": 0.5}
    result = TuningResult(settings, 1, 0.5, 0.5, None, scores, scores, [], 1.0)
    monkeypatch.setattr(tune_cmd, "tune_run", lambda *args, **kwargs: result)
    tuned = CliRunner().invoke(cli, ["tune", str(run)])
    assert tuned.exit_code == 0, tuned.output
    assert [line for line in tuned.stderr.splitlines() if line.startswith("warning:")] == [
        f"warning: {run}: tuned on 1 case(s): no held-out estimate of what the settings are worth on new cases, and "
        "`predict` applies them by default",
        f"warning: {run}: fold(s) 0 have no out-of-fold validation and are not in the tuning (`transunet3d "
        "crossval RUN` validates them)"]


def test_report_shows_the_cross_validation_and_the_tuning(trained_run: Path, tuned: Result):
    assert tuned.exit_code == 0
    result = CliRunner().invoke(cli, ["report", str(trained_run)])
    assert result.exit_code == 0, result.output
    page = (trained_run / "report.html").read_text()
    assert "Evaluation: cv" in page and "Evaluation: fold_0/validation" in page
    assert "Post-processing tuned on cross-validation" in page
    held_out = json.loads(RunFolder(trained_run).postprocessing.read_text())["score_held_out"]
    assert f"tuned on the other cases: <b>{held_out:.4f}" in page


def test_resume_trains_a_missing_fold_with_the_runs_config(trained_run: Path, raw_and_cache, tmp_path: Path,
                                                           monkeypatch):
    """`train --fold all --resume` without the original --set options continues the same experiment; the finished
    fold is reported from its checkpoint without building a trainer (model, optimizer, torch's compiler stack:
    seconds per fold, for nothing)."""
    from transunet3d.jobs import training

    real, built = training.Trainer, []

    def counted(task, folder, *args):
        built.append(folder.fold)
        return real(task, folder, *args)

    monkeypatch.setattr(training, "Trainer", counted)
    _, cache = raw_and_cache
    run = RunFolder(tmp_path / "run")
    shutil.copytree(trained_run / "fold_0", run.fold(0).path)
    result = CliRunner().invoke(cli, ["train", str(cache), "--preset", "tiny-unet", "--fold", "all", "--out",
                                      str(run.path), "--device", "cpu", "--resume", "--no-validate",
                                      "--set", "loop.epochs=5", "--set", "loop.val_batches=1",  # the run's
                                      "--init-encoder", str(tmp_path / "mae")])  # was ignored without a word
    assert result.exit_code == 0, result.output
    assert load_config(run.fold(1).config).loop.epochs == 2  # the run's, not the given 5 (nor the preset's 20)
    assert "fold 0: 2 epochs" in result.output and "fold 1: 2 epochs" in result.output and built == [1]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: {run.path}: --resume continues with the run's saved config.yaml; the given "
                        f"--init-encoder {tmp_path / 'mae'}, loop.epochs are not applied (train into another --out "
                        "to change them)"], result.stderr
