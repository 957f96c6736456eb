import json
import re
from pathlib import Path

import pytest

from transunet3d.data.splits import make_splits
from transunet3d.errors import UserError

CASES = [f"BraTS-MET-{p:05d}-{t:03d}" for p in range(1, 12) for t in range(1 + (p % 3 == 0))]


def test_folds_are_disjoint_and_cover_every_case():
    splits = make_splits(CASES, folds=5, seed=12345)
    assert len(splits) == 5
    validation = [case for split in splits for case in split["val"]]
    assert sorted(validation) == sorted(CASES) and len(set(validation)) == len(CASES)
    for split in splits:
        assert not set(split["train"]) & set(split["val"])
        assert sorted(split["train"] + split["val"]) == sorted(CASES)


def test_time_points_of_a_patient_share_a_fold():
    for split in make_splits(CASES, folds=4, seed=1):
        val_patients = {c[:-4] for c in split["val"]}
        assert not val_patients & {c[:-4] for c in split["train"]}


def test_deterministic_per_seed_and_balanced():
    assert make_splits(CASES, 5, 12345) == make_splits(CASES, 5, 12345)
    assert make_splits(CASES, 5, 12345) != make_splits(CASES, 5, 7)
    sizes = [len({c[:-4] for c in s["val"]}) for s in make_splits(CASES, 5, 3)]
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("folds", [1, 12])
def test_impossible_fold_counts_are_user_errors(folds):
    with pytest.raises(UserError):
        make_splits(CASES, folds, 0)


def test_splits_cli_writes_json(tmp_path: Path, case_root: Path):
    from click.testing import CliRunner

    from tests.factories import write_case
    from transunet3d.cli.main import cli

    write_case(case_root, "BraTS-MET-00002-000", seed=2)
    runner = CliRunner()
    assert runner.invoke(cli, ["preprocess", str(case_root), str(tmp_path / "pp")]).exit_code == 0
    result = runner.invoke(cli, ["splits", str(tmp_path / "pp"), "--folds", "2", "--seed", "3"])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "pp" / "splits.json").read_text())
    assert saved == make_splits(["BraTS-MET-00001-000", "BraTS-MET-00002-000"], 2, 3)


def test_ten_folds_from_the_command_line(tmp_path: Path, case_root: Path):
    """The paper's 10-fold protocol: any k >= 2 that the patients allow."""
    from click.testing import CliRunner

    from tests.factories import write_case
    from transunet3d.cli.main import cli

    cases = [f"BraTS-MET-{p:05d}-000" for p in range(1, 11)]
    for seed, case in enumerate(cases[1:], start=2):
        write_case(case_root, case, seed=seed)
    runner = CliRunner()
    assert runner.invoke(cli, ["preprocess", str(case_root), str(tmp_path / "pp")]).exit_code == 0
    result = runner.invoke(cli, ["splits", str(tmp_path / "pp"), "--folds", "10"])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "pp" / "splits.json").read_text())
    assert len(saved) == 10 and sorted(case for split in saved for case in split["val"]) == cases
    too_many = runner.invoke(cli, ["splits", str(tmp_path / "pp"), "--folds", "11"])
    assert too_many.exit_code == 2 and "cannot make 11 folds from 10 patients" in too_many.output


def test_splits_refuse_a_cache_that_lost_a_case_and_ignore_cases_at_another_grid(tmp_path: Path, case_root: Path):
    """A case whose files were damaged was left out of the splits without a word; one left from an earlier
    preprocessing at another target spacing is not a case of the cache."""
    from click.testing import CliRunner

    from tests.factories import write_case
    from transunet3d.cli.main import cli

    write_case(case_root, "BraTS-MET-00002-000", seed=2)
    write_case(case_root, "BraTS-MET-00003-000", seed=3)
    runner = CliRunner()
    pre = tmp_path / "pp"
    assert runner.invoke(cli, ["preprocess", str(case_root), str(pre), "--target-spacing", "2", "2", "2"]
                         ).exit_code == 0
    (case_root / "BraTS-MET-00003-000").rename(tmp_path / "elsewhere")
    assert runner.invoke(cli, ["preprocess", str(case_root), str(pre)]).exit_code == 0
    result = runner.invoke(cli, ["splits", str(pre), "--folds", "2"])
    assert result.exit_code == 0, result.output
    saved = json.loads((pre / "splits.json").read_text())
    assert sorted(case for split in saved for case in split["val"]) == ["BraTS-MET-00001-000", "BraTS-MET-00002-000"]
    image = pre / "BraTS-MET-00001-000.npy"
    image.write_bytes(image.read_bytes()[:1000])  # truncated: split, then refused only by training
    truncated = runner.invoke(cli, ["splits", str(pre), "--folds", "2"])
    assert truncated.exit_code == 2 and truncated.stderr.startswith(
        f"error: {image}: damaged in the preprocessed cache (")
    assert truncated.stderr.strip().endswith("); remove the case's files and preprocess it again")
    (pre / "BraTS-MET-00002-000.json").write_text("{damaged")
    damaged = runner.invoke(cli, ["splits", str(pre), "--folds", "2"])
    assert damaged.exit_code == 2 and damaged.stderr.strip() == (
        f"error: {pre}: 1 case(s) that dataset.json lists are missing or incomplete (BraTS-MET-00002-000); "
        "preprocess into the folder again (it redoes only those)")


@pytest.mark.parametrize(("folds", "problem"), [
    ([{"train": ["a", "b"], "val": ["b"]}, {"train": ["b"], "val": ["a"]}],
     "fold 0 validates on case(s) it trains on (b)"),
    ([{"train": [], "val": ["a"]}, {"train": ["a"], "val": ["b"]}], "fold 0 has no training case"),
    ([{"train": ["a"], "val": ["b"]}, {"train": ["b"], "val": []}], "fold 1 has no validation case"),
    ([{"train": ["a"], "val": ["b"]}], "holds 1 fold; a cross-validation needs at least 2"),
    ([{"train": ["a"], "val": ["b", "c"]}, {"train": ["d"], "val": ["a"]}, {"train": ["a"], "val": ["c", "b"]}],
     "folds 0 and 2 both validate on b, c; each case is validated by one fold at most"),
])
def test_splits_that_leak_train_on_nothing_or_cannot_be_pooled_are_refused(tmp_path: Path, folds, problem: str):
    """A validation case that is also trained on made the out-of-fold score count a case the model had seen; a
    fold without validation cases, or two folds validating one case, trained fully before the pooling failed (or,
    without validation, passed)."""
    from transunet3d.data.splits import read_splits

    path = tmp_path / "splits.json"
    path.write_text(json.dumps(folds))
    with pytest.raises(UserError, match=f"^{path}: {re.escape(problem)}$"):
        read_splits(path)


def test_a_seed_numpy_cannot_take_is_one_error_line(tmp_path: Path):
    """A traceback from numpy's SeedSequence."""
    from click.testing import CliRunner

    from transunet3d.cli.main import cli

    result = CliRunner().invoke(cli, ["splits", str(tmp_path), "--seed", "-1"])
    assert result.exit_code == 2 and result.stderr.startswith(
        "error: Invalid value for '--seed': -1 is not in the range 0<=x<=4294967295.")
