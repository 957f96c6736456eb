"""A training job, start to finish: start or resume each model, train it, and validate every finished fold.

`transunet3d train`, `transunet3d pretrain` and the demo are thin callers of these two functions, which alone
decide whether a model folder starts fresh or resumes (and then with its saved config), when a pre-trained encoder
is transferred, and when out-of-fold validation and the pooled cross-validation run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch

from transunet3d.config.io import check_rotations, load_config, parse_override
from transunet3d.config.schema import DataConfig, ExperimentConfig
from transunet3d.crossval import check_fold, pool_folds, validate_fold
from transunet3d.data.cache import SPLITS_FILE, cached_case_ids, read_dataset
from transunet3d.data.grid import same_spacing
from transunet3d.data.splits import Split, read_splits
from transunet3d.devices import parse_device
from transunet3d.errors import ConfigError, UserError, warn_input
from transunet3d.files import check_apart, remove_stale_temporaries, write_json
from transunet3d.runs.cache_record import check_same_cache
from transunet3d.runs.folds import ALL_DATA, Fold, fold_label, parse_fold
from transunet3d.runs.layout import ModelFolder, RunFolder
from transunet3d.training.checkpoint import read_state
from transunet3d.training.distributed import SINGLE_PROCESS, Distributed
from transunet3d.training.pretrained import load_pretrained_encoder
from transunet3d.training.pretraining import PretrainTask
from transunet3d.training.segmentation import SegmentationTask, fold_cases
from transunet3d.training.task import Task
from transunet3d.training.trainer import Trainer, TrainerState

Echo = Callable[[str], None]


def _silent(_: str) -> None:
    pass


@dataclass
class TrainingJob:
    """What to train: folds of `config` on the cases of `preprocessed`, into `run`.

    `resume`: continue models that have a checkpoint (with the config saved beside them) and start the others
    (with the config of the run's started folds; a warning when no fold has started); without it, a model folder
    that already holds a checkpoint is an error. `validate`: out-of-fold validation of
    every finished cross-validation fold, then RUN/cv/.
    """

    preprocessed: Path
    run: RunFolder
    config: ExperimentConfig
    folds: list[Fold]
    resume: bool = False
    device: torch.device | str | None = None  # None: this process's GPU, else the CPU (`devices.parse_device`)
    validate: bool = True
    workers: int = 1  # processes for the evaluation of the validation cases


def folds_to_train(choice: str, preprocessed: Path, config: ExperimentConfig) -> list[Fold]:
    """The folds that `--fold` names: 'all' (every fold of the splits), a number, or 'all-data'."""
    if choice != "all":
        return [parse_fold(choice)]
    splits = Path(preprocessed) / SPLITS_FILE
    count = len(read_splits(splits)) if splits.exists() else config.data.num_folds
    return list(range(count))


def train_folds(job: TrainingJob, processes: Distributed = SINGLE_PROCESS,
                echo: Echo = _silent) -> dict[str, Any] | None:
    """Train (or resume) each fold of `job`, validating each finished fold; returns the pooled cv summary.

    Returns:
        RUN/cv/summary.json's content when some fold is validated (None without validation).
    """
    if not Path(job.preprocessed).is_dir():
        raise UserError(f"{job.preprocessed}: not a folder")
    check_apart(job.run.path, job.preprocessed, "preprocessed cache")
    if ModelFolder(job.run.path).is_model():
        raise UserError(f"{job.run.path}: holds one model at its top (config.yaml, as `pretrain` writes), not a "
                        "training run's fold folders; train into another --out")
    if processes.is_main:
        if job.resume:
            _warn_if_nothing_to_resume(job.run)
        remove_stale_temporaries(job.run.path, recursive=True)
    # Every fold is checked (its config, the cache, its cases) before the first one writes into the run folder.
    checked = [_fold_config(job, fold) for fold in job.folds]
    _refuse_another_data(job.run, [config for config, _, _ in checked])
    _refuse_other_splits(job.run, Path(job.preprocessed), [splits for _, _, (splits, _, _) in checked])
    _refuse_another_recipe(job.run, [config for config, _, _ in checked])
    if processes.is_main:
        loop, train = checked[0][0].loop, checked[0][0].train
        warn_if_warmup_outlasts("train.warmup_iterations", train.warmup_iterations,
                                loop.epochs * loop.iterations_per_epoch, "iterations")
    for fold, (config, started, cases) in zip(job.folds, checked):
        folder = job.run.fold(fold)
        with processes.main_holds(folder.path, "training"):  # folds of one run may train in parallel
            if not started and folder.latest_checkpoint() is not None:
                # another command trained this fold while this one trained the ones before: check it again
                config, started, cases = _fold_config(job, fold)
            task = SegmentationTask(config, job.preprocessed, fold, processes, cases)
            if not started and config.model.init_encoder:
                _transfer_encoder(task, config, folder, processes, echo)
            state = _fit(task, folder, started, job.device, processes)
            if processes.is_main:
                echo(f"{fold_label(fold)}: {state.epoch} epochs, EMA pseudo-Dice {state.ema_score:.4f} -> "
                     f"{folder.path}")
            if job.validate and fold != ALL_DATA:
                _validate(job, folder, processes, echo)
    return pool_folds(job.run) if job.validate and processes.is_main else None


def warn_if_warmup_outlasts(setting: str, warmup: int, total: int, unit: str) -> None:
    """One `warning:` line when a warm-up lasts the whole training: the learning rate then never reaches its peak
    (a warm-up of 1e20 iterations trained at 1e-22), which is legal for a smoke run but rarely meant."""
    if warmup > 0 and warmup >= total:
        warn_input(None, None, f"{setting}: a warm-up of {warmup} {unit} is not shorter than the whole training "
                               f"({total} {unit}): the learning rate never reaches its peak")


def _refuse_another_data(run: RunFolder, configs: list[ExperimentConfig]) -> None:
    """Refuse folds that would join a run whose folds were trained on another label scheme or grid: the run could
    not be validated, pooled, tuned or predicted as one (it was refused only after the new fold had trained)."""
    for fold, folder in run.folds().items():
        saved = load_config(folder.config).data
        for config in configs:
            if not _same_data(saved, config.data):
                raise UserError(f"{run.path}: its {fold_label(fold)} trained on {saved.labels} at "
                                f"{_grid(saved.target_spacing)}, this training's cache holds {config.data.labels} at "
                                f"{_grid(config.data.target_spacing)}; train into another --out")


RECIPE_SECTIONS = ("model", "train", "augment", "loop")  # what makes a run's folds one model's cross-validation
NOT_RECIPE = {"loop.num_workers", "loop.checkpoint_every"}  # how a fold trained, not what it learned


def _recipe_differences(saved: ExperimentConfig, other: ExperimentConfig) -> list[str]:
    """The settings of `RECIPE_SECTIONS` in which two configs differ, as 'section.name: saved vs other'."""
    found = []
    for section in RECIPE_SECTIONS:
        mine, theirs = getattr(saved, section), getattr(other, section)
        for name in (f.name for f in fields(mine)):
            key = f"{section}.{name}"
            if key not in NOT_RECIPE and getattr(mine, name) != getattr(theirs, name):
                found.append(f"{key}: {_shown(getattr(mine, name))} there, {_shown(getattr(theirs, name))} here")
    return found


def _shown(value: Any) -> str:
    return str(list(value)) if isinstance(value, tuple) else str(value)


def _refuse_another_recipe(run: RunFolder, configs: list[ExperimentConfig]) -> None:
    """Refuse folds that would join a run whose folds were trained with another network or recipe (another
    --preset, other --set values): the pooled out-of-fold score, the tuned post-processing and the fold ensemble
    would mix two models as if they were one. `--resume` trains new folds with the run's own config."""
    for fold, folder in run.folds().items():
        saved = load_config(folder.config)
        for config in configs:
            differing = _recipe_differences(saved, config)
            if differing:
                shown = "; ".join(differing[:3]) + ("; ..." if len(differing) > 3 else "")
                raise UserError(f"{run.path}: its {fold_label(fold)} trained with other settings ({shown}); the "
                                "folds of a run are one model's cross-validation: train into another --out, or "
                                "add --resume to train this fold with the run's config")


def _refuse_other_splits(run: RunFolder, preprocessed: Path, splits: list[list[Split]]) -> None:
    """Refuse training into a run whose folds (or a resumed one) were made from other splits than this job's, as
    after `transunet3d splits` wrote new ones into the cache: the pooled out-of-fold score would count some cases
    twice and others never, and the tuning and the fold ensemble would rest on it."""
    for fold, folder in run.folds().items():
        if not folder.splits.is_file():
            continue
        saved = _partition(read_splits(folder.splits))
        if any(_partition(other) != saved for other in splits):
            source = preprocessed / SPLITS_FILE
            made = source if source.exists() else "the splits this training makes (data.num_folds, data.split_seed)"
            raise UserError(f"{run.path}: its {fold_label(fold)} trained on other splits ({folder.splits}) than "
                            f"{made}, and a cross-validation cannot pool folds of two partitions; train into "
                            "another --out, or copy the run's splits back into the cache")


def _partition(splits: list[Split]) -> list[tuple[list[str], list[str]]]:
    return [(sorted(split["train"]), sorted(split["val"])) for split in splits]


def _same_data(data: DataConfig, other: DataConfig) -> bool:
    spacings = (data.target_spacing, other.target_spacing)
    same_grid = spacings == (None, None) or (None not in spacings and same_spacing(*spacings))
    return data.labels == other.labels and same_grid


def _grid(spacing: tuple[float, float, float] | None) -> str:
    return "each case's own grid" if spacing is None else f"{list(spacing)} mm"


def _warn_if_nothing_to_resume(run: RunFolder) -> None:
    """`--resume` on a run folder without a started fold trains from the start, as a rerun of a job killed before
    its first config (or a requeued cluster job that always resumes) must; said on one `warning:` line, so that a
    mistyped --out does not start a long training unnoticed."""
    if not run.folds():
        warn_input(None, None, f"{run.path}: no started fold to resume (no fold_*/config.yaml): training from the "
                               "start")


def _fold_config(job: TrainingJob, fold: Fold) -> tuple[ExperimentConfig, bool, tuple[list, list, list]]:
    """The config `fold` trains with, whether it has started, and its cases (`fold_cases`), once the cache and
    the cases are checked against the config (a resumed run's cache must still be as it was)."""
    folder = job.run.fold(fold)
    config, started = _model_config(folder, job.config, job.resume, job.run)
    if not started:
        config = with_cache_splits(with_cache_grid(config, job.preprocessed), job.preprocessed)
    cases = fold_cases(Path(job.preprocessed), fold, config)
    if started:
        check_same_cache(folder, job.preprocessed, [*cases[1], *cases[2]], config.data.preprocessed)
        if config.data.target_spacing is not None:  # the config names the cache it trains on from now
            config = with_cache_grid(config, job.preprocessed)
    return config, started, cases


def with_cache_grid(config: ExperimentConfig, preprocessed: Path) -> ExperimentConfig:
    """`config` with the cache it trains on recorded: its folder, target spacing and axis order, which prediction
    brings every input to, and its label scheme.

    Raises:
        UserError: `data.target_spacing` is set and differs from the cache's, `data.labels` differs from the
            cache's, the cache predates target spacings, or flip+rot TTA cannot serve the model on this grid
            (`check_rotations`).
    """
    dataset = check_cache_labels(config, preprocessed)
    cached = tuple(float(s) for s in dataset["target_spacing"])
    wanted = config.data.target_spacing
    if wanted is not None and not same_spacing(wanted, cached):
        shown = " ".join(f"{s:g}" for s in wanted)
        raise ConfigError(f"data.target_spacing: {list(wanted)} differs from the {list(cached)} of {preprocessed}; "
                          f"preprocess with --target-spacing {shown} (into another folder), or leave it unset")
    config = replace(config, data=replace(config.data, preprocessed=str(Path(preprocessed).resolve()),
                                          target_spacing=cached, axis_order=dataset["axis_order"],
                                          labels=dataset["labels"]))
    check_rotations(config)
    return config


def with_cache_splits(config: ExperimentConfig, preprocessed: Path) -> ExperimentConfig:
    """`config` recording the number of folds of the cache's splits.json, which decides the folds when there is
    one (`data.num_folds` and `data.split_seed` make the splits only for a cache without it)."""
    splits = Path(preprocessed) / SPLITS_FILE
    if not splits.exists():
        return config
    return replace(config, data=replace(config.data, num_folds=len(read_splits(splits))))


def check_split_overrides(overrides: list[str], preprocessed: Path) -> None:
    """Refuse `--set data.num_folds` or `data.split_seed` for a cache whose splits.json already fixes the folds:
    training used that file and recorded the settings as if they had been applied.

    Raises:
        ConfigError: naming the setting, the file and how to make other splits.
    """
    splits = Path(preprocessed) / SPLITS_FILE
    if not splits.exists():
        return
    count = len(read_splits(splits))
    for key, value in (parse_override(item) for item in overrides):
        if key == "data.split_seed" or (key == "data.num_folds" and value != count):
            raise ConfigError(f"{key}: {splits} already fixes the folds ({count} of them), so the setting would not "
                              "be applied; write other splits with `transunet3d splits PRE --folds N --seed S`, or "
                              "leave it out")


def cache_defaults(preprocessed: Path) -> list[str]:
    """`--set` overrides that make the cache's label scheme the run's, to go before the command line's own (which
    `check_cache_labels` then holds to the cache's); none when the cache cannot tell (training reports why)."""
    try:
        return [f"data.labels={read_dataset(preprocessed)['labels']}"]
    except UserError:
        return []


def check_cache_labels(config: ExperimentConfig, preprocessed: Path) -> dict[str, Any]:
    """The cache's dataset.json, once its label scheme is checked to be the config's `data.labels`: the network
    has one output per region of the scheme, and the cache's label maps and foreground locations are of its own.

    Raises:
        ConfigError: the schemes differ (naming both).
        UserError: the cache has no dataset.json or predates target spacings.
    """
    dataset = read_dataset(preprocessed)
    if config.data.labels != dataset["labels"]:
        raise ConfigError(f"data.labels: {config.data.labels} differs from the {dataset['labels']} of {preprocessed}; "
                          f"train with --set data.labels={dataset['labels']}, or preprocess with --labels "
                          f"{config.data.labels} (into another folder)")
    return dataset


def pretrain_model(preprocessed: Path, folder: ModelFolder, config: ExperimentConfig, resume: bool = False,
                   device: torch.device | str | None = None, processes: Distributed = SINGLE_PROCESS) -> Trainer:
    """MAE pre-training into `folder` (started or resumed as `train_folds` does); returns the finished trainer."""
    if not Path(preprocessed).is_dir():
        raise UserError(f"{preprocessed}: not a folder")
    check_apart(folder.path, preprocessed, "preprocessed cache")
    if folder.fold is not None or RunFolder(folder.path).folds():
        raise UserError(f"{folder.path}: a training run or one of its folds, not a pre-training run; pre-train into "
                        "another --out")
    if processes.is_main:
        if resume and not folder.is_model():  # as `train --resume` on a run without a started fold
            warn_input(None, None, f"{folder.path}: nothing to resume (no config.yaml): pre-training from the start")
        remove_stale_temporaries(folder.path, recursive=True)
    given = config
    config, started = _pretrain_config(folder, given, resume, preprocessed)
    if processes.is_main:
        warn_if_warmup_outlasts("pretrain.warmup_epochs", config.pretrain.warmup_epochs, config.loop.epochs, "epochs")
    with processes.main_holds(folder.path, "pre-training"):
        if not started and folder.latest_checkpoint() is not None:  # another command started it meanwhile
            config, started = _pretrain_config(folder, given, resume, preprocessed)
        trainer = Trainer(PretrainTask(config, preprocessed, processes), folder, device, processes)
        if started:
            trainer.resume()
        trainer.fit()
    return trainer


def _pretrain_config(folder: ModelFolder, config: ExperimentConfig, resume: bool,
                     preprocessed: Path) -> tuple[ExperimentConfig, bool]:
    """The config a pre-training runs with (`_model_config`, on `preprocessed`), and whether it has started; a
    started one must have trained on the same cache."""
    config, started = _model_config(folder, config, resume)
    if started:
        check_same_cache(folder, preprocessed, cached_case_ids(preprocessed), config.data.preprocessed)
    return replace(config, data=replace(config.data, preprocessed=str(Path(preprocessed).resolve()))), started


def _model_config(folder: ModelFolder, config: ExperimentConfig, resume: bool,
                  run: RunFolder | None = None) -> tuple[ExperimentConfig, bool]:
    """The config a model trains with, and whether it has started (holds a checkpoint).

    Resuming, a model keeps its saved config, and a fold not yet started takes the config of the run's other
    folds, so that `--resume` without the original `--set`s continues the same experiment.

    Raises:
        UserError: the folder holds a started model and `resume` is off.
    """
    started = folder.latest_checkpoint() is not None
    if started and not resume:
        raise UserError(f"{folder.path} already holds a training run: add --resume, or choose another --out")
    if resume and folder.is_model():
        return load_config(folder.config), started
    siblings = list(run.folds().values()) if resume and run is not None else []
    return (load_config(siblings[0].config) if siblings else config), started


def _fit(task: Task, folder: ModelFolder, started: bool, device: torch.device | str | None,
         processes: Distributed) -> TrainerState:
    if started and folder.latest_epoch() >= task.loop.epochs:
        # Finished: a rerun builds no trainer (seconds) to train nothing.
        return TrainerState(**read_state(folder.latest_checkpoint())["trainer"])
    trainer = Trainer(task, folder, device, processes)
    if started:
        trainer.resume()
    return trainer.fit()


def _transfer_encoder(task: SegmentationTask, config: ExperimentConfig, folder: ModelFolder,
                      processes: Distributed, echo: Echo) -> None:
    """Initialise the fresh model's ViT from the MAE run `model.init_encoder`, and record what was transferred."""
    transferred = load_pretrained_encoder(task.network, Path(config.model.init_encoder))
    source = ModelFolder(config.model.init_encoder)
    epoch, epochs = source.latest_epoch(), load_config(source.config).loop.epochs
    if processes.is_main:
        if epoch < epochs:
            warn_input(None, None, f"{source.path}: pre-trained for {epoch} of {epochs} epochs; its encoder is "
                                   "transferred as it is")
        write_json(folder.init_encoder, {"source": config.model.init_encoder, "epoch": epoch, "epochs": epochs,
                                         "tensors": transferred})
        echo(f"initialised {len(transferred)} ViT tensors from {config.model.init_encoder} "
             f"(listed in {folder.init_encoder})")


def _validate(job: TrainingJob, folder: ModelFolder, processes: Distributed, echo: Echo) -> None:
    """Out-of-fold validation in the main process while the others wait."""
    if processes.is_main:
        summary = validate_fold(check_fold(folder, job.preprocessed, parse_device(job.device)), workers=job.workers)
        echo(f"{fold_label(folder.fold)} validation: mean lesion-wise Dice "
             f"{summary['overall'].get('mean_lesionwise_dice', float('nan')):.4f} on {summary['cases_scored']} "
             f"cases -> {folder.validation.folder}")
    processes.barrier()
