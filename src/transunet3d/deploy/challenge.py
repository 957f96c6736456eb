"""The BraTS challenge entry point: every case of the input folder to `<case-id>.nii.gz` in the output folder, on
every GPU given, then the outputs checked as the challenge's orchestrator checks them.

The orchestrator runs the image without network, with the cases at `/input` (or MLCube's `--data_path`) and
expects one label map per case at `/output` (or `--output_path`), in the input's geometry; it refuses a count
that differs from the inputs and all-zero label maps. The model is a training run (torch) or a folder written by
`transunet3d export` (ONNX Runtime), baked into the image at `MODEL_IN_IMAGE`.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
import yaml

from transunet3d.config.io import read_settings_yaml, yaml_problem
from transunet3d.config.schema import WINDOW_STEP
from transunet3d.data.labels import label_scheme
from transunet3d.data.layout import NIFTI_NAME, CaseFiles, discover_cases
from transunet3d.deploy.onnx_backend import checked_export, is_export, load_exported_models
from transunet3d.deploy.optional import require
from transunet3d.errors import UserError
from transunet3d.files import (
    atomic_path,
    check_apart,
    is_temporary,
    output_folder,
    remove_stale_temporaries,
    scratch_folder,
)
from transunet3d.inference.cases import PredictReport, off_input_grid, predict_folder, remove_outputs, submission_path
from transunet3d.inference.predictor import Predictor
from transunet3d.inference.trained import (
    CHECKPOINTS,
    ensemble_scheme,
    fold_folders,
    load_models,
    unfinished_warning,
)
from transunet3d.inference.tta import TTA_MODES
from transunet3d.jobs.tuning import run_postprocessing
from transunet3d.runs.folds import parse_fold_list
from transunet3d.runs.layout import ModelFolder, RunFolder

DEFAULT_INPUT, DEFAULT_OUTPUT = Path("/input"), Path("/output")
MODEL_IN_IMAGE = Path("/opt/transunet3d/model")


@dataclass(frozen=True)
class EntrySettings:
    """What a parameters file (MLCube's `--parameters_file`) may set; None keeps the model's own setting."""

    fold: str | None = None
    checkpoint: str | None = None
    tta: str | None = None
    step: float | None = None
    batch_windows: int | None = None
    postprocessing: str = "run"  # "run": the tuned one when the model has it; "none": the config's


_CHECKS: dict[str, Callable[[Any], bool]] = {
    "fold": lambda v: isinstance(v, (str, int)) and not isinstance(v, bool),
    "checkpoint": lambda v: v in CHECKPOINTS,
    "tta": lambda v: v in TTA_MODES,
    "step": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and WINDOW_STEP.problem(v) is None,
    "batch_windows": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
    "postprocessing": lambda v: v in ("run", "none"),
}
_WANTED = {"fold": "a fold list such as 0,2 or all-data", "checkpoint": " or ".join(CHECKPOINTS),
           "tta": " or ".join(TTA_MODES), "step": f"a number {WINDOW_STEP.describe()}",
           "batch_windows": "a whole number >= 1",
           "postprocessing": "run or none"}


def read_parameters(path: Path | None) -> EntrySettings:
    """The settings of a YAML parameters file (empty: the model's own); a bad file is a one-line UserError."""
    if path is None:
        return EntrySettings()
    try:
        data = read_settings_yaml(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: parameters file does not exist") from None
    except yaml.YAMLError as error:
        raise UserError(f"{path}: not a readable YAML file ({yaml_problem(error)})") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: not a readable YAML file ({str(error).splitlines()[0]})") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise UserError(f"{path}: a parameters file must be a mapping of settings")
    unknown = sorted(set(map(str, data)) - set(_CHECKS))
    if unknown:
        raise UserError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(_CHECKS)}")
    for key, value in data.items():
        if not _CHECKS[key](value):
            raise UserError(f"{path}: {key} must be {_WANTED[key]}, not {value!r}")
    if "fold" in data:
        data["fold"] = str(data["fold"])
        if data["fold"] != "all":
            try:
                parse_fold_list(data["fold"])
            except UserError as error:
                raise UserError(f"{path}: fold: {str(error).removeprefix('--fold ')}") from None
    return EntrySettings(**data)


@dataclass
class ChallengeReport:
    """Cases written and checked, and the failures (prediction or check), by case id."""

    cases: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    devices: list[str] = field(default_factory=list)
    backend: str = "torch"
    warnings: list[str] = field(default_factory=list)  # `warning:` lines: models whose training had not finished


def run_challenge(input_dir: Path, output_dir: Path, model_dir: Path, settings: EntrySettings | None = None,
                  devices: list[str] | None = None, progress: bool = True) -> ChallengeReport:
    """Predict every case under `input_dir` into `output_dir`/<case-id>.nii.gz and check the outputs.

    Args:
        devices: one process per device, each with its share of the cases; None: every GPU, else the CPU.

    Raises:
        UserError: no case in `input_dir`, or `model_dir` is not a run or an exported folder.
        OSError: `output_dir` cannot be written.
    """
    settings = settings or EntrySettings()
    cases = discover_cases(input_dir)
    check_apart(output_dir, input_dir, "input folder")
    backend = model_backend(model_dir)
    warnings = check_models(model_dir, backend, settings.fold, settings.checkpoint, settings.postprocessing == "run")
    _check_writable(output_folder(output_dir))
    remove_stale_temporaries(output_dir)  # a killed earlier run's half-written label maps
    foreign = foreign_outputs(cases, output_dir)
    if foreign:
        raise UserError(f"{output_dir}: holds label maps of cases not in {input_dir} ({', '.join(foreign[:3])}"
                        f"{', ...' if len(foreign) > 3 else ''}); the challenge refuses more outputs than inputs: "
                        f"remove them or choose an empty folder")
    devices = devices or entry_devices(backend)
    report = ChallengeReport(cases=[case.case_id for case in cases], devices=devices, backend=backend,
                             warnings=warnings)
    with scratch_folder("transunet3d-challenge") as scratch:
        jobs = [_Shard(Path(input_dir), Path(scratch), Path(model_dir), backend, settings, rank, devices,
                       progress and rank == 0) for rank in range(len(devices))]
        written = set()
        for shard in _run_shards(jobs):
            report.failed.update(shard.failed)
            for case_id in shard.written:
                _move(submission_path(Path(scratch), case_id), submission_path(output_dir, case_id))
            written.update(shard.written)
    for case_id in report.failed:  # an earlier run's label map of a case that fails now is not this run's answer
        remove_outputs(output_dir, case_id)
    report.failed.update(check_outputs(cases, output_dir, skip=set(report.failed)))
    report.written = [case for case in report.cases if case in written and case not in report.failed]
    return report


def check_models(model_dir: Path, backend: str, fold: str | None = None, which: str | None = None,
                 postprocessing: bool = True) -> list[str]:
    """Every model that prediction from `model_dir` loads with `fold` and `which` (None: the default checkpoint),
    checked as prediction checks it (config, complete checkpoint, weights that fit and are finite, one label
    scheme; an exported network that is the one export.json records), and with `postprocessing` the tuned
    post-processing it would apply (one for another label scheme's regions is refused), before any output is made:
    a damaged model must fail here, not in a shard after the output folder exists, nor inside a container image.

    Returns:
        The `warning:` lines for models whose training had not finished.
    """
    if backend == "onnxruntime":
        checked = checked_export(model_dir, fold, which)
        models = [(str(network), epoch, config.loop.epochs) for network, epoch, config in checked]
        schemes = {config.data.labels for _, _, config in checked}
        if len(schemes) > 1:
            raise UserError(f"{model_dir}: holds models of the label schemes {', '.join(sorted(schemes))}; an "
                            "ensemble needs models of one label scheme")
        scheme = label_scheme(schemes.pop())
    else:
        trained = load_models([model_dir], fold, which or default_checkpoint(model_dir, fold))
        scheme = ensemble_scheme(trained)
        models = [(str(model.checkpoint), model.epoch, model.config.loop.epochs) for model in trained]
    if postprocessing:
        run_postprocessing(model_dir, scheme)
    return [warning for warning in (unfinished_warning(*model) for model in models) if warning]


def model_backend(model_dir: Path) -> str:
    """"onnxruntime" for an exported folder, "torch" for a training run; UserError for anything else."""
    if is_export(model_dir):
        return "onnxruntime"
    if ModelFolder(model_dir).is_model() or RunFolder(model_dir).folds():
        return "torch"
    if not Path(model_dir).exists():
        raise UserError(f"{model_dir}: model folder does not exist")
    raise UserError(f"{model_dir}: neither a training run nor an exported model folder")


def entry_devices(backend: str) -> list[str]:
    """Every CUDA device (one process each), or the CPU when there is none or the backend cannot use it."""
    count = torch.cuda.device_count()
    if count and backend == "onnxruntime":
        providers = require("onnxruntime", "the challenge entry").get_available_providers()
        count = count if "CUDAExecutionProvider" in providers else 0
    return [f"cuda:{index}" for index in range(count)] or ["cpu"]


def default_checkpoint(model_dir: Path, fold: str | None) -> str:
    """"latest", or "best" for models that hold only their best checkpoint (`container --checkpoint best`)."""
    folders = fold_folders(model_dir, fold)
    only_best = all(not f.latest_pointer.is_file() and f.best_checkpoint.is_dir() for f in folders)
    return "best" if only_best else "latest"


def check_outputs(cases: list[CaseFiles], output_dir: Path, skip: set[str] = frozenset()) -> dict[str, str]:
    """What the orchestrator would refuse, by case: a missing output, one off the input's grid, an all-zero one;
    and by file name, a label map of no input case (the count of outputs would differ from the inputs)."""
    problems = {name: f"{name}: a label map of no input case" for name in foreign_outputs(cases, output_dir)}
    for case in cases:
        if case.case_id in skip:
            continue
        path = submission_path(output_dir, case.case_id)
        if not path.is_file():
            problems[case.case_id] = f"{case.case_id}: no output {path.name}"
            continue
        problem = _output_problem(case, path)
        if problem:
            problems[case.case_id] = f"{case.case_id}: {path.name}: {problem}"
    return problems


def foreign_outputs(cases: list[CaseFiles], output_dir: Path) -> list[str]:
    """The names of the NIfTI files in `output_dir` that are the output of none of `cases`."""
    expected = {submission_path(output_dir, case.case_id).name for case in cases}
    return sorted(path.name for path in Path(output_dir).iterdir()
                  if NIFTI_NAME.search(path.name) and path.name not in expected and not is_temporary(path))


def _output_problem(case: CaseFiles, path: Path) -> str | None:
    off_grid = off_input_grid(case, path)
    if off_grid:
        return off_grid
    if not np.asanyarray(nib.load(path).dataobj).any():
        return "all zero (the challenge refuses empty label maps)"
    return None


def _check_writable(folder: Path) -> None:
    """Raise the OSError of writing into `folder` (read-only mount, permission denied) before any work."""
    try:
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".transunet3d-probe.", suffix=".tmp")
    except OSError as error:
        raise OSError(error.errno or errno.EACCES, error.strerror or "cannot be written", str(folder)) from None
    os.close(handle)
    os.unlink(probe)


def _move(source: Path, target: Path) -> None:
    """Copy `source` to `target` atomically (the scratch folder may be on another file system)."""
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


@dataclass(frozen=True)
class _Shard:
    """One process's share: every len(devices)-th case from `rank`, predicted on devices[rank] into `scratch`."""

    input_dir: Path
    scratch: Path
    model_dir: Path
    backend: str
    settings: EntrySettings
    rank: int
    devices: list[str]
    progress: bool


def _run_shards(jobs: list[_Shard]) -> list[PredictReport]:
    if len(jobs) == 1:
        return [_predict_shard(jobs[0])]
    with ProcessPoolExecutor(len(jobs), mp_context=get_context("spawn")) as pool:
        return list(pool.map(_predict_shard, jobs))


def _predict_shard(job: _Shard) -> PredictReport:
    device = torch.device(job.devices[job.rank])
    if device.type == "cuda":
        torch.cuda.set_device(device)
    settings = job.settings
    if job.backend == "onnxruntime":
        models = load_exported_models([job.model_dir], settings.fold, settings.checkpoint, device)
    else:
        which = settings.checkpoint or default_checkpoint(job.model_dir, settings.fold)
        models = load_models([job.model_dir], settings.fold, which, device)
    given = {"tta": settings.tta, "step": settings.step, "batch_windows": settings.batch_windows}
    options = replace(models[0].config.infer, **{key: value for key, value in given.items() if value is not None})
    tuned = run_postprocessing(job.model_dir, ensemble_scheme(models)) if settings.postprocessing == "run" else None
    predictor = Predictor(models, options, device, postprocessing=tuned)
    return predict_folder(job.input_dir, job.scratch, predictor, shard=(job.rank, len(job.devices)),
                          progress=job.progress)
