"""The run layout: the one place that names a run's files."""

import json
from pathlib import Path

import pytest

from transunet3d.errors import UserError
from transunet3d.runs.folds import ALL_DATA
from transunet3d.runs.layout import ModelFolder, RunFolder, folder_fold


def test_a_run_names_its_folds_cv_and_postprocessing(tmp_path: Path):
    run = RunFolder(str(tmp_path))
    assert run.fold(2) == ModelFolder(tmp_path / "fold_2") and run.fold(ALL_DATA).path == tmp_path / "fold_all"
    assert run.cv.summary == tmp_path / "cv" / "summary.json"
    assert run.postprocessing == tmp_path / "postprocessing.json"
    model = run.fold(0)
    assert model.validation.reference("BraTS-MET-00001-000") == (
        tmp_path / "fold_0" / "validation" / "references" / "BraTS-MET-00001-000-seg.nii.gz")
    assert model.validation.evaluation.metrics == tmp_path / "fold_0" / "validation" / "metrics.csv"
    assert model.epoch_checkpoint(7).name == "epoch_0007" and model.latest_checkpoint() is None


def test_only_fold_folders_with_a_config_are_models(tmp_path: Path):
    run = RunFolder(tmp_path)
    for name in ("fold_3", "fold_1", "fold_all", "fold_x", "checkpoints"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.yaml").write_text("{}")
    (tmp_path / "fold_9").mkdir()  # started, no config yet
    assert list(run.folds()) == [1, 3, ALL_DATA]
    assert list(run.numbered_folds()) == [1, 3]
    assert folder_fold("fold_12") == 12 and folder_fold("fold_all") == ALL_DATA and folder_fold("fold_") is None


def test_the_latest_checkpoint_is_the_one_its_pointer_names(tmp_path: Path):
    model = ModelFolder(tmp_path)
    model.checkpoints.mkdir()
    model.latest_pointer.write_text('{"folder": "epoch_0004", "epoch": 4}')
    assert model.latest_checkpoint() == model.epoch_checkpoint(4)


def test_the_latest_epoch_is_read_from_the_pointer_and_a_pointer_without_one_is_damaged(tmp_path: Path):
    model = ModelFolder(tmp_path / "fold_0")
    assert model.latest_epoch() == 0 and model.latest_checkpoint() is None  # before the first checkpoint
    model.checkpoints.mkdir(parents=True)
    model.latest_pointer.write_text(json.dumps({"folder": "epoch_0007", "epoch": 7}))
    assert model.latest_epoch() == 7 and model.latest_checkpoint() == model.epoch_checkpoint(7)
    for damaged in ({"folder": "epoch_0007"}, {"folder": "epoch_0007", "epoch": "7"}, {"epoch": 7}):
        model.latest_pointer.write_text(json.dumps(damaged))
        with pytest.raises(UserError, match="damaged, not a checkpoint pointer"):
            model.latest_epoch()
