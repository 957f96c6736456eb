"""Fold names on the command line and in run folders, random draws of folds, and the all-data model's cases."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.factories import SMALL_PATCHES
from transunet3d.cli.main import cli
from transunet3d.config import build_config
from transunet3d.errors import UserError
from transunet3d.runs.folds import ALL_DATA, draw_folds, parse_fold, parse_fold_list
from transunet3d.runs.layout import RunFolder, folder_fold
from transunet3d.training.segmentation import fold_cases


@pytest.fixture
def cache(raw_and_cache) -> Path:
    return raw_and_cache[1]


def test_fold_names_and_folders_round_trip(tmp_path: Path):
    run = RunFolder(tmp_path)
    for fold in (0, 7, 12, ALL_DATA):
        assert run.fold(fold).fold == fold
    assert run.fold(ALL_DATA).path.name == "fold_all" and run.fold(3).path.name == "fold_3"
    assert folder_fold("fold_x") is None and folder_fold("checkpoints") is None


def test_fold_lists_parse_in_order():
    assert parse_fold("4") == 4 and parse_fold("all-data") == ALL_DATA
    assert parse_fold_list("0,3, 5,all-data") == [0, 3, 5, ALL_DATA]
    for bad in ("-1", "x", "3.5", "0,,1", "all", "²"):  # isdigit() takes "²", int() did not (a traceback)
        with pytest.raises(UserError):
            parse_fold_list(bad)
    with pytest.raises(UserError, match="names a fold twice"):
        parse_fold_list("1,1")
    with pytest.raises(UserError, match=r"^--fold '1,': '' is neither a fold number nor 'all-data'$"):
        parse_fold_list("1,")  # the message names the option and the part (it named neither)


def test_random_draws_are_distinct_sorted_and_fixed_by_the_seed():
    folds = list(range(10))
    drawn = draw_folds(folds, 5, seed=2023)
    assert drawn == sorted(set(drawn)) and len(drawn) == 5 and set(drawn) <= set(folds)
    assert draw_folds(folds, 5, 2023) == drawn
    assert len({tuple(draw_folds(folds, 5, seed)) for seed in range(10)}) > 1
    assert draw_folds(folds, 10, 0) == folds
    with pytest.raises(UserError, match="cannot draw 11 of 10"):
        draw_folds(folds, 11, 0)


def test_the_all_data_model_trains_on_every_case(cache: Path):
    splits, train, val = fold_cases(cache, ALL_DATA, build_config("tiny"))
    every = sorted(splits[0]["train"] + splits[0]["val"])
    assert train == every and len(every) == 4 and val == []


def test_train_all_data_writes_fold_all(cache: Path, tmp_path: Path):
    result = CliRunner().invoke(cli, ["train", str(cache), "--preset", "tiny-unet", "--fold", "all-data",
                                      "--out", str(tmp_path / "run"), "--device", "cpu", "--no-validate",
                                      "--set", "loop.epochs=1", "--set", "loop.iterations_per_epoch=1",
                                      "--set", "loop.val_batches=1", *SMALL_PATCHES])
    assert result.exit_code == 0, result.output
    assert "all-data: 1 epochs" in result.output
    folder = RunFolder(tmp_path / "run").fold(ALL_DATA)
    assert folder.path.name == "fold_all" and folder.config.is_file() and folder.latest_pointer.is_file()
    assert json.loads(folder.splits.read_text()) == json.loads((cache / "splits.json").read_text())
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_train_rejects_a_fold_that_is_not_one(cache: Path, tmp_path: Path):
    result = CliRunner().invoke(cli, ["train", str(cache), "--fold", "last", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "neither a fold number nor 'all-data'" in result.output
