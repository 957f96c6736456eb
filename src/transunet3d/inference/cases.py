"""Predict every case of a folder into BraTS submission files, robust to broken cases and interruptions."""

from __future__ import annotations

import dataclasses
import json
import zipfile
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from transunet3d.data.grid import AFFINE_TOLERANCE
from transunet3d.data.layout import CaseFiles, discover_cases
from transunet3d.data.nifti import Geometry, load_header, load_header_3d, peek_header, read_data, write_nifti
from transunet3d.data.validate import LoadedCase, load_case
from transunet3d.errors import InputError, UserError, warn_input
from transunet3d.files import atomic_path, output_folder, read_json, remove_stale_temporaries, write_json
from transunet3d.inference.predictor import CasePrediction, Predictor


@dataclass
class PredictReport:
    """Case ids written, skipped (output already there with --continue) and failed (with the message)."""

    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def submission_path(out_dir: Path, case_id: str) -> Path:
    """Where the label map of a case goes: `OUT/BraTS-MET-XXXXX-YYY.nii.gz`, the challenge's naming."""
    return out_dir / f"{case_id}.nii.gz"


def probabilities_path(out_dir: Path, case_id: str) -> Path:
    """Where the region probabilities of a case go (.npz, so that evaluation never takes them for a prediction),
    with the names of their regions."""
    return out_dir / f"{case_id}_probabilities.npz"


ENSEMBLE_FILE = "ensemble.json"  # in OUT: the models and settings that made its predictions


def ensemble_record(predictor: Predictor) -> dict:
    """The models (run folder, fold, checkpoint, epochs), the settings and the post-processing that shape the
    predictions, as JSON data.

    The windows per forward pass, and the memory they may take, change the speed, not the result, so a run
    continued with fewer (after running out of memory, say) still matches its record.
    """
    settings = dataclasses.asdict(predictor.options)
    del settings["batch_windows"], settings["max_memory_gb"]
    record = {"models": [model.record() for model in predictor.models], "settings": settings,
              "postprocessing": predictor.postprocessing.to_json()}
    return json.loads(json.dumps(record))  # tuples as lists, as they read back


def same_ensemble(saved: Any, record: dict) -> bool:
    """Whether a saved ensemble record describes the predictions of `record`: the same settings and models, each
    model known by its weights' SHA-256 wherever its folder is now (a run moved or copied with its predictions), or
    by its folder where either record was written before the digests."""
    if not (isinstance(saved, dict) and isinstance(saved.get("models"), list)):
        return saved == record
    models, others = saved["models"], record["models"]
    return ({key: value for key, value in saved.items() if key != "models"}
            == {key: value for key, value in record.items() if key != "models"}
            and len(models) == len(others) and all(map(_same_model, models, others)))


def _same_model(saved: Any, model: dict) -> bool:
    """Two records of a model: by the weights' digest when both have one, else by folder, fold and checkpoint."""
    if not isinstance(saved, dict):
        return False
    left_out = "folder" if "weights" in saved and "weights" in model else "weights"
    return ({key: value for key, value in saved.items() if key != left_out}
            == {key: value for key, value in model.items() if key != left_out})


def _record_ensemble(out_dir: Path, predictor: Predictor, skip_existing: bool, write: bool) -> None:
    """Write OUT/ensemble.json, refusing a folder whose predictions come from another ensemble or other settings:
    with --continue they would be kept as this run's, and without it the cases this run does not predict again
    would stay beside its own under a record that no longer describes them."""
    path, record = out_dir / ENSEMBLE_FILE, ensemble_record(predictor)
    if path.exists() and not same_ensemble(read_json(path), record):
        if skip_existing:
            raise UserError(f"{out_dir}: its predictions come from other models or settings (see {path}); "
                            "choose another folder, or predict without --continue")
        if _holds_predictions(out_dir):
            raise UserError(f"{out_dir}: holds predictions of other models or settings (see {path}); choose "
                            "another folder, or empty this one first")
    if write:
        write_json(path, record)


def predict_folder(input_dir: str | Path, out_dir: str | Path, predictor: Predictor, skip_existing: bool = False,
                   save_probabilities: bool = False, shard: tuple[int, int] = (0, 1),
                   progress: bool = True, only: set[str] | None = None) -> PredictReport:
    """Predict the cases under `input_dir` (a dataset or one case folder) into `out_dir`.

    `only` restricts the run to those case ids (e.g. the validation cases of a fold).
    `shard` = (rank, world) takes every world-th case from the rank-th, for several processes under torchrun.
    The next case is read while the current one is predicted, and outputs are written in the background.
    OUT/ensemble.json records the models and settings (see `ensemble_record`).
    """
    rank, world = shard
    cases = discover_cases(input_dir)
    if only is not None:
        missing = only - {case.case_id for case in cases}
        if missing:
            raise InputError(None, None, f"{input_dir}: no case {', '.join(sorted(missing)[:5])}")
        cases = [case for case in cases if case.case_id in only]
    out_dir = output_folder(out_dir)  # once the cases are known: a wrong case list writes nothing
    remove_stale_temporaries(out_dir)
    cases = cases[rank::world]
    _record_ensemble(out_dir, predictor, skip_existing, write=rank == 0)
    report = PredictReport()
    todo = []
    for case in cases:
        if skip_existing and _kept(case, _outputs(out_dir, case.case_id, save_probabilities)):
            report.skipped.append(case.case_id)
        else:
            todo.append(case)
    with ThreadPoolExecutor(1) as reader, ThreadPoolExecutor(1) as writer:
        writes: list[Future] = []
        bar = tqdm(_read_ahead(reader, todo), total=len(todo), desc="predict", unit="case", disable=not progress)
        for case, loading in bar:
            try:
                loaded = loading.result()
            except InputError as error:
                removed = remove_outputs(out_dir, case.case_id)
                report.failed[case.case_id] = f"{error}{'; its earlier prediction was removed' if removed else ''}"
                continue
            prediction = _predict_showing_steps(predictor, loaded, save_probabilities, bar)
            writes.append(writer.submit(write_prediction, prediction, loaded.geometry, out_dir))
            report.written.append(case.case_id)
        for write in writes:
            write.result()
    return report


def _predict_showing_steps(predictor: Predictor, case: LoadedCase, keep_probabilities: bool,
                           bar: tqdm) -> CasePrediction:
    """`predictor.predict`, with the step it is at (preprocess, sliding window, resample back, ...) shown beside
    the progress bar: resampling a large case is a step of its own."""
    quiet = predictor.on_stage
    predictor.on_stage = lambda stage: bar.set_postfix_str(f"{case.case_id}: {stage}")
    try:
        return predictor.predict(case, keep_probabilities=keep_probabilities)
    finally:
        predictor.on_stage = quiet


def _kept(case: CaseFiles, outputs: list[Path]) -> bool:
    """Whether --continue keeps `outputs` as the prediction of `case`: each there and whole, none older than an
    image of the case, and the label map on the grid of the case's images. A prediction of another version of the
    case (an image replaced since, or another crop or origin copied in from elsewhere) is predicted again, with a
    word; where the input cannot be read, the case is left to fail as any other case would."""
    if not all(map(_reads_whole, outputs)):
        return False
    try:
        problem = _replaced_since(case, outputs) or off_input_grid(case, outputs[0])
    except (InputError, OSError):
        return False
    if problem:
        warn_input(case.case_id, outputs[0], f"{problem}; predicted again")
    return problem is None


def _replaced_since(case: CaseFiles, outputs: list[Path]) -> str | None:
    """Which images of `case` were written after the oldest of its outputs (as `make` tells what to redo), or
    None."""
    made = min(path.stat().st_mtime_ns for path in outputs)
    newer = [path.name for path in case.image_paths() if path.stat().st_mtime_ns > made]
    return f"older than {', '.join(newer)}" if newer else None


def off_input_grid(case: CaseFiles, path: Path) -> str | None:
    """How the label map at `path` misses the grid a prediction of `case` is written on (the shape, trailing axis
    and affine of its first image), or None when it is on it.

    Raises:
        InputError: the case's first image cannot be read.
    """
    expected = Geometry.of(load_header_3d(case.image_paths()[0], case.case_id))
    written = peek_header(path)
    if tuple(written.shape[:3]) != expected.shape or len(written.shape) != (3 if expected.time_step is None else 4):
        return f"shape {tuple(written.shape)} differs from the input's {expected.shape}"
    if not np.allclose(written.affine, np.array(expected.affine), rtol=0.0, atol=AFFINE_TOLERANCE):
        return "affine differs from the input's"
    return None


def remove_outputs(out_dir: Path, case_id: str) -> bool:
    """Remove the label map and probabilities of `case_id` from `out_dir`, an earlier run's where this run fails on
    the case: kept, they would pass for its answer. Returns whether there was any."""
    removed = False
    for path in _outputs(out_dir, case_id, save_probabilities=True):
        if path.is_file():
            path.unlink()
            removed = True
    return removed


def _reads_whole(path: Path) -> bool:
    """Whether an output kept by --continue is there and reads whole. Ours are written atomically, so a truncated
    or empty one came from outside (a copy cut short, a full disk elsewhere): it is predicted again, with a word."""
    if not path.is_file():
        return False
    try:
        if path.suffix == ".npz":
            with zipfile.ZipFile(path) as archive:
                archive.infolist()
        else:
            read_data(load_header(path, None), path, None, dtype=None, read_only_ok=True)
    except (InputError, zipfile.BadZipFile, OSError):
        warn_input(None, path, "damaged; predicted again")
        return False
    return True


def _holds_predictions(out_dir: Path) -> bool:
    """Whether `out_dir` holds a label map or probabilities of some case (hidden temporaries aside)."""
    names = (path.name for path in out_dir.iterdir() if not path.name.startswith("."))
    return any(name.endswith((".nii.gz", "_probabilities.npz")) for name in names)


def _outputs(out_dir: Path, case_id: str, save_probabilities: bool) -> list[Path]:
    paths = [submission_path(out_dir, case_id)]
    return [*paths, probabilities_path(out_dir, case_id)] if save_probabilities else paths


def _read_ahead(executor: ThreadPoolExecutor, cases: Iterable[CaseFiles]) -> Iterator[tuple[CaseFiles, Future]]:
    """(case, future of its LoadedCase), loading one case ahead of the one handed out."""
    pending: deque[tuple[CaseFiles, Future[LoadedCase]]] = deque()
    for case in cases:
        pending.append((case, executor.submit(load_case, replace(case, seg=None))))  # labels are not needed
        if len(pending) > 1:
            yield pending.popleft()
    yield from pending


def write_prediction(prediction: CasePrediction, geometry: Geometry, out_dir: Path) -> None:
    """The label map as uint8 NIfTI in the input's geometry and, when kept, the probabilities (float16 .npz) with
    their region names."""
    write_nifti(prediction.labels.astype(np.uint8), geometry, submission_path(out_dir, prediction.case_id))
    if prediction.probabilities is not None:
        with atomic_path(probabilities_path(out_dir, prediction.case_id)) as tmp, open(tmp, "wb") as file:
            np.savez_compressed(file, probabilities=prediction.probabilities.astype(np.float16),
                                regions=np.array(prediction.regions))
