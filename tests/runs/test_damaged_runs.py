"""A damaged file in a run folder (empty, random bytes, truncated, another format) is one `error:` line naming the
file, exit code 2, for every command that reads it: never a traceback or click's bare "Aborted!"."""

import json
import random
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from tests.factories import write_run, write_two_case_cache
from transunet3d.cli.main import cli
from transunet3d.data.splits import write_splits
from transunet3d.errors import UserError
from transunet3d.runs.layout import ModelFolder
from transunet3d.training.checkpoint import read_state

FILES = ["state.pt", "weights.safetensors", "latest.json"]
DAMAGES = ["empty", "random bytes", "truncated", "wrong format"]


def _damage(path: Path, damage: str) -> None:
    content = path.read_bytes()
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "random bytes":
        path.write_bytes(random.Random(path.name).randbytes(512))
    elif damage == "truncated":
        path.write_bytes(content[: len(content) // 2])
    elif path.name == "weights.safetensors":  # a pickle of the same tensors
        torch.save({"weight": torch.zeros(3)}, path)
    elif path.name == "state.pt":  # the weights file in its place
        path.write_bytes((path.parent / "weights.safetensors").read_bytes())
    else:  # valid JSON, but not a pointer
        path.write_text(json.dumps(["epoch_0001"]))


def _damaged_file(model: ModelFolder, name: str) -> Path:
    return model.latest_pointer if name == "latest.json" else model.latest_checkpoint() / name


@pytest.fixture(scope="module")
def raw_and_cache(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("damaged")
    write_two_case_cache(root)
    write_splits(root / "pre", folds=2, seed=0)
    return root / "raw", root / "pre"


def _run(tmp_path: Path, name: str, damage: str, epoch: int | None = None) -> tuple[Path, Path]:
    """A run with fold_0 trained (to the end, or for `epoch` epochs) whose file `name` is damaged."""
    run = tmp_path / "run"
    write_run(run / "fold_0", epoch=epoch)
    path = _damaged_file(ModelFolder(run / "fold_0"), name)
    _damage(path, damage)
    return run, path


def _assert_one_error_naming(result, path: Path) -> None:
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and path.name in errors[0] and "damaged" in errors[0], result.stderr
    assert "Traceback" not in result.output and "Aborted!" not in result.output


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("name", FILES)
def test_predict_names_the_damaged_file(name, damage, raw_and_cache, tmp_path: Path):
    raw, _ = raw_and_cache
    run, path = _run(tmp_path, name, damage)
    result = CliRunner().invoke(cli, ["predict", str(raw), str(tmp_path / "out"), "--model", str(run),
                                      "--device", "cpu"])
    _assert_one_error_naming(result, path)


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("name", FILES)
def test_train_resume_names_the_damaged_file(name, damage, raw_and_cache, tmp_path: Path):
    _, cache = raw_and_cache
    run, path = _run(tmp_path, name, damage, epoch=1)
    result = CliRunner().invoke(cli, ["train", str(cache), "--fold", "0", "--out", str(run), "--resume",
                                      "--device", "cpu"])
    _assert_one_error_naming(result, path)


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("name", FILES)
def test_crossval_names_the_damaged_file(name, damage, raw_and_cache, tmp_path: Path):
    _, cache = raw_and_cache
    run, path = _run(tmp_path, name, damage)
    result = CliRunner().invoke(cli, ["crossval", str(run), "--preprocessed", str(cache), "--device", "cpu"])
    _assert_one_error_naming(result, path)


@pytest.mark.parametrize("damage", ["empty", "random bytes", "truncated", "wrong format"])
@pytest.mark.parametrize("name", ["summary.json", "postprocessing.json", "init_encoder.json"])
def test_report_names_the_damaged_file(name, damage, tmp_path: Path):
    run = tmp_path / "run"
    write_run(run / "fold_0")
    (run / "fold_0" / "log.csv").write_text("epoch,train_loss\n1,0.5\n")
    path = {"summary.json": run / "cv" / "summary.json", "postprocessing.json": run / "postprocessing.json",
            "init_encoder.json": run / "fold_0" / "init_encoder.json"}[name]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"source": "mae", "tensors": []}))
    (path.parent / "metrics.csv").write_text("case,region\n")  # an evaluation holds both
    if damage == "wrong format":
        path.write_text(json.dumps([1, 2, 3]))
    else:
        _damage(path, damage)
    result = CliRunner().invoke(cli, ["report", str(run)])
    _assert_one_error_naming(result, path)


@pytest.mark.parametrize("damage", ["empty", "random bytes", "wrong format"])
@pytest.mark.parametrize("fold", ["0", "all"])
def test_train_names_damaged_splits_and_writes_nothing(fold, damage, raw_and_cache, tmp_path: Path):
    cache = tmp_path / "pre"
    shutil.copytree(raw_and_cache[1], cache)
    splits = cache / "splits.json"
    if damage == "wrong format":
        splits.write_text(json.dumps({"train": ["BraTS-MET-00001-000"]}))
    else:
        _damage(splits, damage)
    result = CliRunner().invoke(cli, ["train", str(cache), "--preset", "tiny", "--fold", fold,
                                      "--out", str(tmp_path / "run"), "--device", "cpu"])
    _assert_one_error_naming(result, splits)
    assert not (tmp_path / "run").exists()


def test_train_on_a_folder_without_cases_says_so(tmp_path: Path):
    (tmp_path / "pre").mkdir()
    result = CliRunner().invoke(cli, ["train", str(tmp_path / "pre"), "--preset", "tiny", "--fold", "0",
                                      "--out", str(tmp_path / "run"), "--device", "cpu"])
    assert result.exit_code == 2 and "no preprocessed cases found" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("seed", range(40))
def test_any_damage_to_the_state_is_a_user_error(seed, tmp_path: Path):
    """torch's weights-only unpickler fails on malformed bytes with many exception types (IndexError, KeyError, ...):
    random bytes and truncations at random lengths all become the one damaged-file error."""
    folder = ModelFolder(write_run(tmp_path / "run")).latest_checkpoint()
    state = folder / "state.pt"
    draw = random.Random(seed)
    content = state.read_bytes()
    damaged = draw.randbytes(draw.randrange(1, 2048)) if seed % 2 else content[:draw.randrange(1, len(content))]
    state.write_bytes(damaged)
    with pytest.raises(UserError, match="damaged"):
        read_state(folder)


def _assert_one_error(result, text: str) -> None:
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and text in errors[0], result.stderr
    assert "Traceback" not in result.output and "Aborted!" not in result.output


def test_train_resume_names_a_damaged_log_and_a_state_of_another_model(raw_and_cache, tmp_path: Path):
    _, cache = raw_and_cache
    run = tmp_path / "run"
    write_run(run / "fold_0", epoch=1)
    log = run / "fold_0" / "log.csv"
    log.write_text("epoch,train_loss\n0,abc\n")
    args = ["train", str(cache), "--fold", "0", "--out", str(run), "--resume", "--device", "cpu"]
    _assert_one_error(CliRunner().invoke(cli, args), f"{log}: damaged, line 2 has a cell that is not a number, not "
                                                     "the numbers the run logged; restore it or delete it (the curves "
                                                     "start again)")
    log.unlink()
    other = write_run(tmp_path / "unet", preset="tiny-unet", epoch=1)
    state = ModelFolder(run / "fold_0").latest_checkpoint() / "state.pt"
    shutil.copy(ModelFolder(other).latest_checkpoint() / "state.pt", state)
    _assert_one_error(CliRunner().invoke(cli, args), f"{state}: does not fit this run's model and optimizer")


@pytest.mark.parametrize("damage", ["truncated", "empty", "spacing"])
def test_train_names_a_damaged_cache_before_it_starts(damage: str, raw_and_cache, tmp_path: Path):
    cache = tmp_path / "pre"
    shutil.copytree(raw_and_cache[1], cache)
    path = cache / ("dataset.json" if damage == "spacing" else "BraTS-MET-00002-000.npy")
    if damage == "spacing":
        path.write_text(json.dumps({**json.loads(path.read_text()), "target_spacing": ["x", 1, 1]}))
    else:
        path.write_bytes(path.read_bytes()[:100] if damage == "truncated" else b"")
    result = CliRunner().invoke(cli, ["train", str(cache), "--preset", "tiny", "--fold", "0",
                                      "--out", str(tmp_path / "run"), "--device", "cpu"])
    _assert_one_error(result, f"{path}: damaged")
    assert not (tmp_path / "run" / "fold_0" / "checkpoints").exists()


@pytest.mark.parametrize(("name", "content", "problem"), [
    ("metrics.csv", "a,b\n1,2\n", "not a table as transunet3d writes it (no column 'case')"),
    ("log.csv", "epoch,train_loss\n1,0.5,7\n", "line 2 has more cells than the header"),
])
def test_report_names_a_damaged_table(name: str, content: str, problem: str, tmp_path: Path):
    run = tmp_path / "run"
    write_run(run / "fold_0")
    (run / "fold_0" / "log.csv").write_text("epoch,train_loss\n1,0.5\n")
    (run / "cv").mkdir()
    (run / "cv" / "summary.json").write_text(json.dumps({"regions": {}}))
    (run / "cv" / "metrics.csv").write_text("case,region,lesionwise_dice,lesionwise_hd95,num_tp,num_fp,num_fn\n")
    path = run / "cv" / name if name == "metrics.csv" else run / "fold_0" / name
    path.write_text(content)
    _assert_one_error(CliRunner().invoke(cli, ["report", str(run)]), f"{path}: damaged, {problem}")


def test_train_resume_refuses_weights_that_hold_nan(raw_and_cache, tmp_path: Path):
    """Resuming went on from them: a NaN epoch, skipped steps and a new NaN checkpoint, exit 0."""
    from tests.inference.test_trained_and_ensemble import poison_weights

    run = tmp_path / "run"
    poison_weights(write_run(run / "fold_0", epoch=1))
    weights = ModelFolder(run / "fold_0").latest_checkpoint() / "weights.safetensors"
    result = CliRunner().invoke(cli, ["train", str(raw_and_cache[1]), "--fold", "0", "--out", str(run), "--resume",
                                      "--device", "cpu"])
    _assert_one_error(result, f"{weights}: 2 of ")
    assert "hold NaN or infinite values (the training diverged)" in result.stderr


def test_crossval_refuses_a_cache_of_another_label_scheme(raw_and_cache, tmp_path: Path):
    """Every case then failed inside the validation and the pooled score was NaN on 0 cases, exit 0."""
    cache = tmp_path / "pre"
    shutil.copytree(raw_and_cache[1], cache)
    dataset = cache / "dataset.json"
    dataset.write_text(json.dumps({**json.loads(dataset.read_text()), "labels": "brats-mets-2025"}))
    run = tmp_path / "run"
    write_run(run / "fold_0")
    shutil.copy(cache / "splits.json", run / "fold_0" / "splits.json")
    result = CliRunner().invoke(cli, ["crossval", str(run), "--preprocessed", str(cache), "--device", "cpu"])
    _assert_one_error(result, f"{cache}: holds brats-mets-2025 label maps, the run trained on brats-mets-2023")
    assert not (run / "fold_0" / "validation").exists()


def test_crossval_checks_every_validation_case_before_it_writes(raw_and_cache, tmp_path: Path):
    """A case missing from the cache stopped the validation halfway, with its record already written."""
    cache = tmp_path / "pre"
    shutil.copytree(raw_and_cache[1], cache)
    run = tmp_path / "run"
    write_run(run / "fold_0")
    shutil.copy(cache / "splits.json", run / "fold_0" / "splits.json")
    (case,) = json.loads((cache / "splits.json").read_text())[0]["val"]
    (cache / f"{case}.npy").unlink()
    result = CliRunner().invoke(cli, ["crossval", str(run), "--preprocessed", str(cache), "--device", "cpu"])
    _assert_one_error(result, f"{cache}: case {case} of fold 0 is missing or incomplete in the preprocessed cache "
                              f"(the fold's cases are those of {run / 'fold_0' / 'splits.json'})")
    assert not (run / "fold_0" / "validation").exists()


def test_predict_refuses_a_fold_whose_config_is_missing(raw_and_cache, tmp_path: Path):
    """It was left out of the default folds: 'with 1 model(s)' instead of 2, exit 0."""
    run = tmp_path / "run"
    for fold in (0, 1):
        write_run(run / f"fold_{fold}")
    (run / "fold_0" / "config.yaml").unlink()
    result = CliRunner().invoke(cli, ["predict", str(raw_and_cache[0]), str(tmp_path / "out"), "--model", str(run),
                                      "--device", "cpu"])
    _assert_one_error(result, f"{run / 'fold_0' / 'config.yaml'}: missing beside fold_0's checkpoints")
    assert not (tmp_path / "out").exists()


def test_crossval_checks_every_fold_before_the_first_writes(raw_and_cache, tmp_path: Path):
    """Fold 0 was validated (its files written) before fold 1's damaged config.yaml stopped the command."""
    cache = raw_and_cache[1]
    run = tmp_path / "run"
    for fold in (0, 1):
        write_run(run / f"fold_{fold}")
        shutil.copy(cache / "splits.json", run / f"fold_{fold}" / "splits.json")
    config = run / "fold_1" / "config.yaml"
    config.write_text(config.read_text().replace("loop:\n", "loop:\n  foo: 1\n"))
    result = CliRunner().invoke(cli, ["crossval", str(run), "--preprocessed", str(cache), "--device", "cpu"])
    _assert_one_error(result, f"{config}: unknown config field 'loop.foo'")
    assert not (run / "fold_0" / "validation").exists() and not (run / "cv").exists()


@pytest.mark.parametrize("command", ["train", "crossval"])
def test_a_case_preprocessed_for_another_scheme_is_refused_before_any_work(command: str, raw_and_cache,
                                                                           tmp_path: Path):
    """A 2025 case copied into a 2023 cache trained its cavity as background, then failed its validation and left
    the fold's score on the other cases, exit 0."""
    cache = tmp_path / "pre"
    shutil.copytree(raw_and_cache[1], cache)
    (case,) = json.loads((cache / "splits.json").read_text())[0]["val"]
    properties = cache / f"{case}.json"
    properties.write_text(json.dumps({**json.loads(properties.read_text()), "labels": "brats-mets-2025"}))
    run = tmp_path / "run"
    if command == "crossval":
        write_run(run / "fold_0")
        shutil.copy(cache / "splits.json", run / "fold_0" / "splits.json")
        args = ["crossval", str(run), "--preprocessed", str(cache)]
    else:
        args = ["train", str(cache), "--preset", "tiny", "--fold", "0", "--out", str(run)]
    result = CliRunner().invoke(cli, [*args, "--device", "cpu"])
    spacing = json.loads((cache / "dataset.json").read_text())["target_spacing"]
    _assert_one_error(result, f"{cache}: case {case} was preprocessed for brats-mets-2025 at {spacing} mm, the cache "
                              f"holds brats-mets-2023 at {spacing} mm (dataset.json): preprocess it with the others")
    assert not (run / "fold_0" / "validation").exists()
    assert (run / "fold_0" / "checkpoints").exists() == (command == "crossval")  # the run it was given, untouched


def test_a_validation_case_that_cannot_be_scored_fails_the_fold_instead_of_leaving_its_score(raw_and_cache,
                                                                                           tmp_path: Path,
                                                                                           monkeypatch):
    """The fold's mean was on the cases left, its pooled score too, exit 0."""
    from transunet3d.crossval import validation

    scored = validation.evaluate_folders

    def one_fails(*args, **kwargs):
        run = scored(*args, **kwargs)
        run.results[0].error, run.results[0].regions = f"{run.results[0].case}: a label that cannot be scored", {}
        return run

    monkeypatch.setattr(validation, "evaluate_folders", one_fails)
    run = tmp_path / "run"
    write_run(run / "fold_0")
    shutil.copy(raw_and_cache[1] / "splits.json", run / "fold_0" / "splits.json")
    result = CliRunner().invoke(cli, ["crossval", str(run), "--preprocessed", str(raw_and_cache[1]),
                                      "--device", "cpu"])
    (case,) = json.loads((raw_and_cache[1] / "splits.json").read_text())[0]["val"]
    assert result.exit_code == 3, result.output
    assert f"error: {case.removeprefix('BraTS-MET-')}: a label that cannot be scored" in result.stderr
    assert (run / "fold_0" / "validation" / "summary.json").exists() and not (run / "cv").exists()
