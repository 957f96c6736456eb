"""A run records the target spacing and axis order of its cache; another target spacing is one error line. What
training refuses before it writes into the run folder: unlabelled cases, a --resume with nothing to resume, a
missing --init-encoder run."""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.factories import SMALL_PATCHES, add_cavities, write_case, write_run
from transunet3d.cli.main import cli
from transunet3d.config import build_config, load_config
from transunet3d.data.preprocess import preprocess_dataset
from transunet3d.errors import ConfigError, UserError
from transunet3d.files import write_json
from transunet3d.jobs.training import cache_defaults, with_cache_grid
from transunet3d.runs.layout import ModelFolder, RunFolder
from transunet3d.training.segmentation import fold_cases

LABELLED = ["BraTS-MET-00001-000", "BraTS-MET-00002-000"]
UNLABELLED = [f"BraTS-MET-0000{number}-000" for number in range(3, 7)]
SHORT_SETTINGS = ("loop.epochs=1", "loop.iterations_per_epoch=1", "loop.val_batches=1", SMALL_PATCHES[1])
SHORT = ["--device", "cpu", "--no-validate", *(part for setting in SHORT_SETTINGS for part in ("--set", setting))]
# One epoch of MAE pre-training, without the preset's 2-epoch warm-up (which a warning would name).
SHORT_PRETRAINING = ["--set", "loop.epochs=1", "--set", "loop.iterations_per_epoch=1", "--set", "loop.val_batches=1",
                     "--set", "pretrain.warmup_epochs=0"]


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    write_case(tmp_path / "raw")
    preprocess_dataset(tmp_path / "raw", tmp_path / "pre", target_spacing=(1.0, 1.0, 1.5), progress=False)
    return tmp_path / "pre"


@pytest.fixture
def partly_labelled(tmp_path: Path) -> Path:
    """A cache of two labelled cases and four without a label map, fold 0 of the labelled ones only."""
    for number, case in enumerate(LABELLED + UNLABELLED):
        write_case(tmp_path / "raw", case, seed=number, with_seg=case in LABELLED)
    preprocess_dataset(tmp_path / "raw", tmp_path / "pre", progress=False)
    write_json(tmp_path / "pre" / "splits.json", [{"train": LABELLED[:1], "val": LABELLED[1:]},
                                                  {"train": LABELLED + UNLABELLED[:2], "val": UNLABELLED[2:]}])
    return tmp_path / "pre"


def _error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_the_config_records_the_caches_target_spacing_and_axis_order(cache: Path):
    for overrides in ((), ("data.target_spacing=[1, 1, 1.5]",)):
        data = with_cache_grid(build_config("tiny", overrides), cache).data
        assert data.target_spacing == (1.0, 1.0, 1.5) and data.axis_order == "RAS"
        assert data.preprocessed == str(cache.resolve())


def test_another_target_spacing_than_the_caches_is_an_error(cache: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match=r"preprocess with --target-spacing 1 1 1"):
        with_cache_grid(build_config("tiny", ["data.target_spacing=[1, 1, 1]"]), cache)
    result = CliRunner().invoke(cli, ["train", str(cache), "--preset", "tiny", "--fold", "0", "--out",
                                      str(tmp_path / "run"), "--set", "data.target_spacing=[1, 1, 1]"])
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1 and not (tmp_path / "run").exists()
    assert errors[0].startswith("error: data.target_spacing: [1.0, 1.0, 1.0] differs from the [1.0, 1.0, 1.5]")


def test_the_run_takes_the_caches_label_scheme_and_another_one_is_an_error(tmp_path: Path):
    write_case(tmp_path / "raw")
    add_cavities(tmp_path / "raw")
    cache = tmp_path / "pre"
    preprocess_dataset(tmp_path / "raw", cache, target_spacing=(1.0, 1.0, 1.5), labels="brats-mets-2025",
                       progress=False)
    assert cache_defaults(cache) == ["data.labels=brats-mets-2025"] and cache_defaults(tmp_path / "none") == []
    config = build_config("tiny", [*cache_defaults(cache), "data.labels=brats-mets-2025"])
    assert with_cache_grid(config, cache).data.labels == "brats-mets-2025"
    with pytest.raises(ConfigError, match=r"data\.labels: brats-mets-2023 differs from the brats-mets-2025 of"):
        with_cache_grid(build_config("tiny"), cache)
    result = CliRunner().invoke(cli, ["train", str(cache), "--preset", "tiny", "--fold", "0", "--out",
                                      str(tmp_path / "run"), "--set", "data.labels=brats-mets-2023"])
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1 and not (tmp_path / "run").exists()
    assert errors[0].startswith(f"error: data.labels: brats-mets-2023 differs from the brats-mets-2025 of {cache}")


def test_a_fold_with_an_unlabelled_training_or_validation_case_is_refused(partly_labelled: Path):
    config = build_config("tiny-unet")
    assert fold_cases(partly_labelled, 0, config)[1:] == (LABELLED[:1], LABELLED[1:])
    with pytest.raises(UserError, match=r"2 case\(s\) of all-data have no label map"):
        fold_cases(partly_labelled, "all-data", config)
    for split in ({"train": LABELLED, "val": UNLABELLED[:1]}, {"train": UNLABELLED[:1], "val": LABELLED}):
        write_json(partly_labelled / "splits.json", [{"train": LABELLED[:1], "val": UNLABELLED[3:]}, split])
        with pytest.raises(UserError, match=rf"1 case\(s\) of fold 1 have no label map \({UNLABELLED[0]}\)"):
            fold_cases(partly_labelled, 1, config)


def test_train_refuses_unlabelled_cases_of_any_chosen_fold_before_writing(partly_labelled: Path, tmp_path: Path):
    """Fold 0 is labelled, fold 1 is not: `--fold all` trains neither."""
    result = CliRunner().invoke(cli, ["train", str(partly_labelled), "--preset", "tiny-unet", "--fold", "all",
                                      "--out", str(tmp_path / "run"), *SHORT])
    errors = _error_lines(result)
    assert result.exit_code == 2 and len(errors) == 1 and not (tmp_path / "run").exists(), result.output
    shown = ", ".join(UNLABELLED[:3])
    assert errors[0].startswith(f"error: {partly_labelled}: 4 case(s) of fold 1 have no label map ({shown}, ...)")


@pytest.mark.parametrize("content", ["no folder", "a fold folder without a config"])
def test_resume_with_nothing_to_resume_says_so_and_trains_from_the_start(content: str, partly_labelled: Path,
                                                                          tmp_path: Path):
    """Resuming is idempotent (a rerun of a job killed before its first config, a requeued job), but a mistyped
    --out must not start a training unnoticed."""
    run = tmp_path / "run"
    if content != "no folder":
        (run / "fold_0").mkdir(parents=True)
    result = CliRunner().invoke(cli, ["train", str(partly_labelled), "--preset", "tiny-unet", "--fold", "0",
                                      "--out", str(run), "--resume", *SHORT])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: {run}: no started fold to resume (no fold_*/config.yaml): training from the "
                        "start"]
    assert RunFolder(run).fold(0).config.is_file()


def test_pretrain_resume_with_nothing_to_resume_says_so_and_starts(partly_labelled: Path, tmp_path: Path):
    out = tmp_path / "mae"
    args = ["pretrain", str(partly_labelled), "--out", str(out), "--device", "cpu", *SHORT_PRETRAINING]
    first = CliRunner().invoke(cli, [*args, "--resume"])
    assert first.exit_code == 0, first.output
    assert [line for line in first.stderr.splitlines() if line.startswith("warning:")] == [
        f"warning: {out}: nothing to resume (no config.yaml): pre-training from the start"]
    again = CliRunner().invoke(cli, [*args, "--resume"])  # now there is: no warning
    assert again.exit_code == 0 and "warning:" not in again.stderr


def test_pretraining_and_training_runs_do_not_share_a_folder(partly_labelled: Path, tmp_path: Path):
    """Either way the folder was accepted and became one that `predict` took for the wrong kind of run."""
    from tests.factories import write_run

    training = tmp_path / "run"
    write_run(training / "fold_0", preset="tiny-unet")
    pretraining = tmp_path / "mae"
    write_run(pretraining, preset="mae-tiny")
    loop = ["--device", "cpu", "--set", "loop.epochs=1", "--set", "loop.iterations_per_epoch=1"]
    calls = [(["pretrain", str(partly_labelled), "--out", str(training), *loop], training, "a training run"),
             (["pretrain", str(partly_labelled), "--out", str(training / "fold_0"), "--resume", *loop],
              training / "fold_0", "a training run or one of its folds"),
             (["train", str(partly_labelled), "--preset", "tiny-unet", "--fold", "0", "--out", str(pretraining),
               "--resume", *SHORT], pretraining, "holds one model at its top")]
    before = sorted(str(path) for path in tmp_path.rglob("*"))
    for args, folder, problem in calls:
        result = CliRunner().invoke(cli, args)
        errors = _error_lines(result)
        assert result.exit_code == 2 and len(errors) == 1, result.output
        assert errors[0].startswith(f"error: {folder}: ") and problem in errors[0], errors
    assert sorted(str(path) for path in tmp_path.rglob("*")) == before


def test_a_missing_init_encoder_run_is_named_once(partly_labelled: Path, tmp_path: Path):
    missing = tmp_path / "nothere"
    result = CliRunner().invoke(cli, ["train", str(partly_labelled), "--preset", "tiny", "--fold", "0", "--out",
                                      str(tmp_path / "run"), "--init-encoder", str(missing), *SHORT])
    errors = _error_lines(result)
    assert result.exit_code == 2 and len(errors) == 1 and not (tmp_path / "run").exists(), result.output
    assert errors[0].startswith(f"error: {missing}: does not exist") and errors[0].count(str(missing)) == 1


def test_a_cache_with_splits_decides_the_folds_and_the_run_records_them(partly_labelled: Path, tmp_path: Path):
    """`--set data.num_folds=3 data.split_seed=7` trained on the cache's 2 folds and recorded 3 and 7; a run
    without them recorded the preset's 5 folds."""
    for setting in ("data.num_folds=3", "data.split_seed=7"):
        result = CliRunner().invoke(cli, ["train", str(partly_labelled), "--preset", "tiny-unet", "--fold", "0",
                                          "--out", str(tmp_path / "refused"), "--set", setting, *SHORT])
        errors = _error_lines(result)
        assert result.exit_code == 2 and len(errors) == 1, result.output
        assert errors[0].startswith(f"error: {setting.split('=')[0]}: {partly_labelled / 'splits.json'} already "
                                    "fixes the folds (2 of them)")
    assert not (tmp_path / "refused").exists()
    result = CliRunner().invoke(cli, ["train", str(partly_labelled), "--preset", "tiny-unet", "--fold", "0",
                                      "--out", str(tmp_path / "run"), *SHORT])
    assert result.exit_code == 0, result.output
    assert load_config(RunFolder(tmp_path / "run").fold(0).config).data.num_folds == 2


def test_settings_a_job_does_not_read_are_named(partly_labelled: Path, tmp_path: Path):
    """`train --set pretrain.*` and `pretrain --set train.*` were recorded and silently changed nothing (the
    commands here stop at a bad loop.epochs, after the warning)."""
    for command, given, job, sections in (
            (["train", "--preset", "tiny"], "pretrain.mask_ratio=0.5", "training",
             "data, model, augment, loop, train, infer"),
            (["pretrain"], "train.lr=1", "MAE pre-training", "model, loop, pretrain")):
        result = CliRunner().invoke(cli, [command[0], str(partly_labelled), *command[1:], "--out",
                                          str(tmp_path / "out"), "--set", given, "--set", "loop.epochs=0"])
        assert result.exit_code == 2 and not (tmp_path / "out").exists()
        assert result.stderr.splitlines()[-2] == (
            f"warning: --set {given.split('=')[0]}: {job} does not read these settings (it reads {sections}); they "
            "are recorded in config.yaml and change nothing")


def test_a_fold_of_another_scheme_or_grid_is_refused_before_it_joins_a_run(partly_labelled: Path, tmp_path: Path):
    """Trained and written, it was refused only afterwards, when the run's folds could not be pooled."""
    spacing = json.loads((partly_labelled / "dataset.json").read_text())["target_spacing"]
    run = tmp_path / "run"
    write_run(run / "fold_1", overrides=("data.labels=brats-mets-2025", f"data.target_spacing={spacing}"))
    write_run(tmp_path / "other" / "fold_1", overrides=("data.target_spacing=[2, 2, 2]",))
    grid = f"{[float(side) for side in spacing]} mm"
    for existing, saved in ((run, f"brats-mets-2025 at {grid}"), (tmp_path / "other", "brats-mets-2023 at [2.0, 2.0, "
                                                                                       "2.0] mm")):
        result = CliRunner().invoke(cli, ["train", str(partly_labelled), "--preset", "tiny", "--fold", "0", "--out",
                                          str(existing), *SHORT])
        assert _error_lines(result) == [f"error: {existing}: its fold 1 trained on {saved}, this training's cache "
                                        f"holds brats-mets-2023 at {grid}; train into another --out"]
        assert result.exit_code == 2 and not (existing / "fold_0").exists()


def test_a_fold_made_from_other_splits_is_refused_before_it_joins_a_run(partly_labelled: Path, tmp_path: Path):
    """After `transunet3d splits` rewrote the cache's splits between folds, the next fold trained on the new
    partition and the pooled cross-validation scored some cases twice and others never."""
    spacing = json.loads((partly_labelled / "dataset.json").read_text())["target_spacing"]
    run = tmp_path / "run"
    write_run(run / "fold_1", overrides=(f"data.target_spacing={spacing}", *SHORT_SETTINGS))
    cache_splits = json.loads((partly_labelled / "splits.json").read_text())
    reordered = [{part: ids[::-1] for part, ids in split.items()} for split in cache_splits]
    for saved, refused in ((cache_splits[::-1], True), (reordered, False)):  # the same partition in another order
        write_json(run / "fold_1" / "splits.json", saved)
        result = CliRunner().invoke(cli, ["train", str(partly_labelled), "--preset", "tiny", "--fold", "0", "--out",
                                          str(run), *SHORT])
        if refused:
            assert _error_lines(result) == [
                f"error: {run}: its fold 1 trained on other splits ({run / 'fold_1' / 'splits.json'}) than "
                f"{partly_labelled / 'splits.json'}, and a cross-validation cannot pool folds of two partitions; "
                "train into another --out, or copy the run's splits back into the cache"]
            assert result.exit_code == 2 and not (run / "fold_0").exists()
        else:
            assert result.exit_code == 0, result.output


def test_a_fold_of_another_network_or_recipe_is_refused_before_it_joins_a_run(partly_labelled: Path,
                                                                              tmp_path: Path):
    """A U-Net fold joined an encoder run without a word, and the pooled out-of-fold score, the tuning and the fold
    ensemble then mixed the two models as one."""
    spacing = json.loads((partly_labelled / "dataset.json").read_text())["target_spacing"]
    run = tmp_path / "run"
    write_run(run / "fold_1", preset="tiny-unet", overrides=(f"data.target_spacing={spacing}", *SHORT_SETTINGS))
    result = CliRunner().invoke(cli, ["train", str(partly_labelled), "--preset", "tiny", "--fold", "0", "--out",
                                      str(run), *SHORT])
    assert _error_lines(result) == [
        f"error: {run}: its fold 1 trained with other settings (model.name: unet there, encoder here); the folds of "
        "a run are one model's cross-validation: train into another --out, or add --resume to train this fold with "
        "the run's config"]
    assert result.exit_code == 2 and not (run / "fold_0").exists()
    result = CliRunner().invoke(cli, ["train", str(partly_labelled), "--preset", "tiny-unet", "--fold", "0", "--out",
                                      str(run), *SHORT, "--set", "loop.num_workers=0"])
    assert result.exit_code == 0, result.output  # the same recipe, however many loader processes


@pytest.mark.parametrize("command", ["train", "pretrain"])
def test_a_run_folder_in_the_cache_is_refused(command: str, partly_labelled: Path):
    """`train --out PRE` wrote its fold folders among the cache's cases, with exit 0."""
    before = sorted(partly_labelled.rglob("*"))
    for out in (partly_labelled, partly_labelled / "run"):
        result = CliRunner().invoke(cli, [command, str(partly_labelled), "--out", str(out), *SHORT[:2]])
        place = "is" if out == partly_labelled else "lies inside"
        assert _error_lines(result) == [f"error: {out}: {place} the preprocessed cache {partly_labelled}, which is "
                                        "read only; write into another folder"], result.output
        assert result.exit_code == 2
    assert sorted(partly_labelled.rglob("*")) == before


def test_a_warm_up_as_long_as_the_training_is_named(partly_labelled: Path, tmp_path: Path):
    """A warm-up of 1e20 iterations trained at a learning rate of 1e-22 without a word."""
    result = CliRunner().invoke(cli, ["train", str(partly_labelled), "--preset", "tiny", "--fold", "0", "--out",
                                      str(tmp_path / "run"), *SHORT, "--set", "train.warmup_iterations=5"])
    assert result.exit_code == 0, result.output
    assert [line for line in result.stderr.splitlines() if "warm-up" in line] == [
        "warning: train.warmup_iterations: a warm-up of 5 iterations is not shorter than the whole training (1 "
        "iterations): the learning rate never reaches its peak"]


def _cache_of_other_images(partly_labelled: Path, tmp_path: Path) -> Path:
    """The same case ids, grid and splits as `partly_labelled`, with other images for the second labelled case."""
    for number, case in enumerate(LABELLED + UNLABELLED):
        write_case(tmp_path / "raw-other", case, seed=number + 10 * (case == LABELLED[1]), with_seg=case in LABELLED)
    preprocess_dataset(tmp_path / "raw-other", tmp_path / "pre-other", progress=False)
    shutil.copy(partly_labelled / "splits.json", tmp_path / "pre-other" / "splits.json")
    return tmp_path / "pre-other"


def _unfinish(config: Path) -> None:
    """Make a finished 1-epoch model's config ask for 2 epochs, so that a resume trains."""
    config.write_text(config.read_text().replace("  epochs: 1\n", "  epochs: 2\n"))


@pytest.mark.parametrize("job", ["train", "pretrain"])
def test_resuming_on_a_cache_of_other_images_is_refused_and_on_a_copy_continues(job: str, partly_labelled: Path,
                                                                               tmp_path: Path):
    """A resume on another cache with the same case ids trained on the new images without a word, while the
    config still named the first cache (pretrain recorded none)."""
    out = tmp_path / "out"
    args = {"train": ["--preset", "tiny-unet", "--fold", "0", *SHORT],
            "pretrain": ["--device", "cpu", *SHORT_PRETRAINING]}[job]
    assert CliRunner().invoke(cli, [job, str(partly_labelled), "--out", str(out), *args]).exit_code == 0
    model = RunFolder(out).fold(0) if job == "train" else ModelFolder(out)
    assert json.loads(model.cache.read_text())["preprocessed"] == str(partly_labelled.resolve())
    _unfinish(model.config)
    other = _cache_of_other_images(partly_labelled, tmp_path)
    before = model.log.read_text()
    result = CliRunner().invoke(cli, [job, str(other), "--out", str(out), "--resume", *args])
    assert _error_lines(result) == [
        f"error: {model.path}: 1 case(s) differ between the cache it trained on ({partly_labelled.resolve()}, by its "
        f"cache.json) and {other} ({LABELLED[1]}: other content, missing or added); resume with the cache it "
        "trained on, or train into another --out"], result.output
    assert result.exit_code == 2 and model.log.read_text() == before
    copy = shutil.copytree(partly_labelled, tmp_path / "moved")
    result = CliRunner().invoke(cli, [job, str(copy), "--out", str(out), "--resume", *args])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert all("are not applied" in line for line in warnings), warnings  # a copy is the same cache
    assert load_config(model.config).data.preprocessed == str(copy.resolve())
    assert json.loads(model.cache.read_text())["preprocessed"] == str(copy.resolve())
    assert model.latest_epoch() == 2


def test_a_run_without_a_cache_record_resumed_on_another_folder_is_warned_about(partly_labelled: Path,
                                                                                 tmp_path: Path):
    """Runs trained before cache.json: only a different folder can be told, and it is said."""
    out = tmp_path / "run"
    args = ["--preset", "tiny-unet", "--fold", "0", "--out", str(out), *SHORT]
    assert CliRunner().invoke(cli, ["train", str(partly_labelled), *args]).exit_code == 0
    RunFolder(out).fold(0).cache.unlink()
    copy = shutil.copytree(partly_labelled, tmp_path / "moved")
    result = CliRunner().invoke(cli, ["train", str(copy), *args, "--resume"])
    assert result.exit_code == 0, result.output
    assert [line for line in result.stderr.splitlines() if line.startswith("warning:")] == [
        f"warning: {out / 'fold_0'}: trained on {partly_labelled.resolve()}, resumed on {copy}; it has no cache.json "
        "(an older run), so the two caches cannot be compared"]


def test_validating_on_a_cache_of_other_images_is_refused(partly_labelled: Path, tmp_path: Path):
    """`crossval --preprocessed` of a cache with the same case ids and other images scored the fold on cases it
    never saw under its validation ids' names."""
    run = tmp_path / "run"
    args = ["--preset", "tiny-unet", "--fold", "0", "--out", str(run), *SHORT]
    assert CliRunner().invoke(cli, ["train", str(partly_labelled), *args]).exit_code == 0
    other = _cache_of_other_images(partly_labelled, tmp_path)
    result = CliRunner().invoke(cli, ["crossval", str(run), "--preprocessed", str(other), "--device", "cpu"])
    assert _error_lines(result) == [
        f"error: {other}: 1 validation case(s) hold other content than in the cache {run / 'fold_0'} trained on "
        f"({partly_labelled.resolve()}, by its cache.json): {LABELLED[1]}; validate with the cache the run trained on"]
    assert result.exit_code == 2 and not (run / "fold_0" / "validation").exists()


def test_a_pretraining_run_and_a_segmentation_run_are_named_for_what_they_are(partly_labelled: Path,
                                                                              tmp_path: Path):
    """An MAE run given to predict or export was 'weights that do not fit the model'; a segmentation run given as
    --init-encoder was 'not a pretraining run with a checkpoint yet', its fold 'depth differs?'."""
    mae, run = tmp_path / "mae", tmp_path / "run"
    write_run(mae, preset="mae-tiny")
    write_run(run / "fold_0", preset="tiny")
    not_mae = ("a segmentation training run, not a `transunet3d pretrain` run; model.init_encoder takes the encoder "
               "of a masked-autoencoder pre-training")
    not_a_model = (f"{mae}: a pre-training run (mae-tiny), whose encoder does not segment; train a model with "
                   f"`transunet3d train ... --init-encoder {mae}`")
    calls = [(["predict", str(partly_labelled.parent / "raw"), str(tmp_path / "p"), "--model", str(mae)], not_a_model),
             (["export", str(mae), str(tmp_path / "e")], not_a_model),
             *[(["train", str(partly_labelled), "--preset", "tiny", "--fold", "0", "--out", str(tmp_path / "t"),
                 "--init-encoder", str(given), *SHORT], f"{given}: {problem}")
               for given, problem in ((run, not_mae), (run / "fold_0", not_mae),
                                      (partly_labelled / "dataset.json", "not a folder (model.init_encoder names a "
                                                                         "`transunet3d pretrain` run)"),
                                      (partly_labelled, "not a `transunet3d pretrain` run (no config.yaml)"))]]
    for args, message in calls:
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2 and _error_lines(result) == [f"error: {message}"], result.output
    assert sorted(path.name for path in tmp_path.iterdir()) == ["mae", "pre", "raw", "run"]


def test_a_fold_another_command_finished_meanwhile_is_checked_again_before_it_trains(tmp_path: Path, monkeypatch):
    """`train --fold all` checked every fold before holding any: when `train --fold 1` into the same run finished
    fold 1 while it trained fold 0, it trained fold 1 again from the start and deleted the finished model."""
    from transunet3d.jobs import training

    run, config, trained, finished = RunFolder(tmp_path / "run"), build_config("tiny"), [], {}

    def fold_config(job, fold):  # the real started check, without a cache
        return config, training._model_config(job.run.fold(fold), config, job.resume)[1], ([], [], [])

    def fit(task, folder, started, device, processes):
        trained.append(folder.path.name)
        if folder.path.name == "fold_0":  # meanwhile the other command trains fold 1 to the end
            write_run(run.fold(1).path, seed=1)
            finished.update(_files(run.fold(1).path))
        return training.TrainerState()

    monkeypatch.setattr(training, "_fold_config", fold_config)
    monkeypatch.setattr(training, "_refuse_other_splits", lambda *args: None)
    monkeypatch.setattr(training, "SegmentationTask", lambda *args, **kwargs: None)
    monkeypatch.setattr(training, "_fit", fit)
    (tmp_path / "pre").mkdir()
    with pytest.raises(UserError, match="fold_1 already holds a training run: add --resume"):
        training.train_folds(training.TrainingJob(tmp_path / "pre", run, config, [0, 1], validate=False))
    assert trained == ["fold_0"] and finished and _files(run.fold(1).path) == finished


def _files(folder: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}
