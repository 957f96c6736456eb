"""Supervised segmentation of one cross-validation fold: the task that `transunet3d train` runs."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np
import torch

from transunet3d.config.io import save_config
from transunet3d.config.schema import ExperimentConfig
from transunet3d.data.cache import SPLITS_FILE, open_case, read_dataset, read_properties
from transunet3d.data.grid import same_spacing
from transunet3d.data.labels import DEFAULT_SCHEME, label_scheme
from transunet3d.data.splits import make_splits, preprocessed_case_ids, read_splits
from transunet3d.errors import UserError
from transunet3d.files import write_json
from transunet3d.models import model_from_config
from transunet3d.runs.cache_record import record_cache
from transunet3d.runs.folds import ALL_DATA, Fold, fold_label
from transunet3d.runs.layout import ModelFolder
from transunet3d.training.augment import augment_batch
from transunet3d.training.distributed import SINGLE_PROCESS, Distributed
from transunet3d.training.objective import training_loss
from transunet3d.training.pseudo_dice import PseudoDice
from transunet3d.training.sampling import PatchBatches
from transunet3d.training.schedule import poly_lr
from transunet3d.training.task import Task, batch_generator, seeded_network


def fold_cases(preprocessed: Path, fold: Fold, config: ExperimentConfig) -> tuple[list, list, list]:
    """(all splits, train ids, validation ids) of `fold`, from PREPROCESSED/splits.json or made from the config.

    The all-data model trains on every case of the splits and has no validation cases.

    Raises:
        UserError: the fold does not exist, or some of its cases have no label map.
    """
    splits_path = preprocessed / SPLITS_FILE
    if splits_path.exists():
        splits = read_splits(splits_path)
    else:
        splits = make_splits(preprocessed_case_ids(preprocessed), config.data.num_folds, config.data.split_seed)
    if fold == ALL_DATA:
        train, val = sorted({case for split in splits for case in split["val"]}), []
    elif 0 <= fold < len(splits):
        train, val = splits[fold]["train"], splits[fold]["val"]
    else:
        raise UserError(f"fold {fold} does not exist: the splits have folds 0..{len(splits) - 1}")
    check_labelled(preprocessed, fold, [*train, *val])
    check_readable(preprocessed, fold, [*train, *val], splits_path if splits_path.exists() else
                   "the splits made from data.num_folds and data.split_seed")
    return splits, train, val


def check_readable(preprocessed: Path, fold: Fold, case_ids: list[str], source: Path | str) -> None:
    """Open every case of a fold before training starts (memory maps: milliseconds each), so that a case missing
    from the cache or a damaged array stops the job with its name, not a loader process in the first epoch; and
    refuse a case preprocessed for another label scheme or grid than the cache's (copied in from another cache: a
    cavity trained as background, a validation that fails the case).

    Args:
        source: where the fold's cases come from (a splits.json), for the message about a missing one.

    Raises:
        UserError: naming the first case missing from the cache, the damaged file (`cache.open_case`), or the case
            of another scheme or target spacing.
    """
    dataset = read_dataset(preprocessed)
    for case_id in case_ids:
        try:
            properties = open_case(preprocessed, case_id).properties
        except FileNotFoundError:
            raise UserError(f"{preprocessed}: case {case_id} of {fold_label(fold)} is missing or incomplete in the "
                            f"preprocessed cache (the fold's cases are those of {source})") from None
        labels = properties.get("labels", DEFAULT_SCHEME)  # caches before the 2025 labels held 2023 ones
        if labels != dataset["labels"] or not same_spacing(properties["target_spacing"], dataset["target_spacing"]):
            raise UserError(f"{preprocessed}: case {case_id} was preprocessed for {labels} at "
                            f"{properties['target_spacing']} mm, the cache holds {dataset['labels']} at "
                            f"{dataset['target_spacing']} mm (dataset.json): preprocess it with the others")


def check_labelled(preprocessed: Path, fold: Fold, case_ids: list[str]) -> None:
    """Refuse cases cached without a label map (preprocessed for prediction): training would take them for cases
    without tumour, and out-of-fold validation would have no reference to score them against.

    Raises:
        UserError: naming the cache, the fold, how many cases and the first few.
    """
    unlabelled = [case for case in case_ids if _has_no_label_map(preprocessed, case)]
    if unlabelled:
        shown = ", ".join(unlabelled[:3]) + (", ..." if len(unlabelled) > 3 else "")
        raise UserError(f"{preprocessed}: {len(unlabelled)} case(s) of {fold_label(fold)} have no label map "
                        f"({shown}); training and validation need one for every case: preprocess them again with "
                        f"their -seg.nii.gz, or leave them out of {preprocessed / SPLITS_FILE}")


def _has_no_label_map(preprocessed: Path, case_id: str) -> bool:
    """Whether the cache holds the case without a label map (a case missing from it is reported when opened)."""
    properties = read_properties(preprocessed, case_id)
    return properties is not None and not properties.get("has_seg")


class SegmentationTask(Task):
    """Region losses (and the set loss for query decoders) on augmented, foreground-oversampled patches, one
    output per region of the label scheme (`data.labels`)."""

    score_column = "ema_dice"

    def __init__(self, config: ExperimentConfig, preprocessed: Path, fold: Fold,
                 processes: Distributed = SINGLE_PROCESS, cases: tuple[list, list, list] | None = None):
        """Without validation cases (the all-data model), the pseudo-Dice is measured on training patches.

        Args:
            cases: the fold's `fold_cases`, when the caller has read and checked them already (a training job
                checks every fold before the first one starts); by default they are read here.
        """
        self.config, train, self.loop = config, config.train, config.loop
        scheme = label_scheme(config.data.labels)
        self.metric_columns = tuple(f"dice_{region}" for region in scheme.region_names)
        self.splits, train_ids, val_ids = cases or fold_cases(Path(preprocessed), fold, config)
        self.preprocessed, self.case_ids = Path(preprocessed), [*train_ids, *val_ids]
        # Each process draws its own patches: the batch seeds include the rank.
        self.batches = PatchBatches(Path(preprocessed), train_ids, train.patch_size, self.loop.batch_size,
                                    train.foreground_fraction, train.lesion_sampling, seed=self.loop.seed,
                                    rank=processes.rank, augment=config.augment, scheme=scheme)
        self.validation = PatchBatches(Path(preprocessed), val_ids or train_ids, train.patch_size,
                                       self.loop.batch_size, train.foreground_fraction, seed=self.loop.seed + 1,
                                       scheme=scheme)
        self.iterations_per_epoch = (self.loop.iterations_per_epoch
                                     or math.ceil(len(train_ids) / (self.loop.batch_size * processes.world)))
        self.grad_clip = train.grad_clip
        self.network = seeded_network(self.loop.seed, lambda: model_from_config(config))
        # The CNN heads of a decoder-only model take no part in its loss.
        self.find_unused_parameters = self.network.spec.use_query_decoder and not train.cnn_deep_supervision

    def write_run_files(self, folder: ModelFolder) -> None:
        save_config(self.config, folder.config)
        write_json(folder.splits, self.splits)
        record_cache(folder, self.preprocessed, self.case_ids)

    def optimizer(self) -> torch.optim.Optimizer:
        train = self.config.train
        if train.optimizer == "sgd":
            return torch.optim.SGD(self.network.parameters(), lr=train.lr, momentum=train.momentum, nesterov=True,
                                   weight_decay=train.weight_decay)
        return torch.optim.AdamW(self.network.parameters(), lr=train.lr, weight_decay=train.weight_decay)

    def learning_rate(self, iteration: int) -> float:
        train = self.config.train
        return poly_lr(train.lr, iteration, self.loop.epochs * self.iterations_per_epoch, train.poly_power,
                       train.warmup_iterations)

    def prepare(self, batch, iteration, rank, device):
        """Move a batch to the device and augment it there, down to the final patch size."""
        images = batch.images.to(device, non_blocking=True)
        targets = batch.targets.to(device, non_blocking=True)
        return augment_batch(images, targets, batch.spatial.to(device), self.config.augment,
                             batch_generator(self.loop.seed, iteration, rank, device),
                             tuple(self.config.train.patch_size))

    def loss(self, model, images, targets):
        return training_loss(model(images), targets, self.config.train)

    def validate(self, device: torch.device, autocast: contextlib.AbstractContextManager) -> dict[str, float]:
        """Pseudo-Dice per region on the fixed validation batches."""
        dice = PseudoDice(len(self.metric_columns))
        for index in range(self.loop.val_batches):
            images, targets, _ = self.validation.batch(index)
            with autocast:
                logits = self.network(torch.from_numpy(images).to(device)).logits
            dice.update(logits.float(), torch.from_numpy(targets).to(device))
        return dict(zip(self.metric_columns, dice.values()))

    def score(self, metrics: dict[str, float]) -> float | None:
        finite = [value for value in metrics.values() if not math.isnan(value)]
        return float(np.mean(finite)) if finite else None
