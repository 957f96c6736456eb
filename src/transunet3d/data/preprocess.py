"""Turn raw BraTS cases into the training cache: canonical axis order, crop to brain, z-score, resampling to the
dataset's target spacing, foreground locations, properties.

The order is nnU-Net v2's (`DefaultPreprocessor.run_case_npy`): transpose, crop to the nonzero region, normalise,
then resample. Normalising before resampling takes the z-score statistics from the voxels as acquired, not from
interpolated ones, and the brain mask is exact on the original grid.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cc3d
import numpy as np

from transunet3d.config.schema import MODALITIES
from transunet3d.data.cache import (
    DATASET_FILE,
    FORMAT_VERSION,
    cached_case_ids,
    properties_path,
    read_properties,
    write_case,
)
from transunet3d.data.crop import brain_box, crop
from transunet3d.data.labels import DEFAULT_SCHEME, SCHEMES, LabelScheme, label_scheme
from transunet3d.data.layout import CaseFiles, discover_cases
from transunet3d.data.nifti import VOXEL_SIZE_MM, format_mm
from transunet3d.data.normalize import brain_mask, zscore_brain
from transunet3d.data.orientation import CANONICAL, AxisOrder
from transunet3d.data.plan import plan_target_spacing
from transunet3d.data.resample import resample_image, resample_labels, resampled_shape
from transunet3d.data.validate import LoadedCase, case_problem, load_case
from transunet3d.errors import InputError, UserError
from transunet3d.files import output_folder, remove_stale_temporaries, write_json
from transunet3d.parallel import map_cases

DEFAULT_FOREGROUND_SAMPLES = 10000
LESION_SAMPLES = 50  # voxel locations kept per lesion, for sampling lesions rather than voxels
# Images: nnU-Net's third-order spline, bitwise equal to nnU-Net's resampling and sharper than linear at small
# lesions; it costs seconds to half a minute per case that needs resampling (docs/benchmarks.md), once in
# preprocessing and once per prediction, and none for the cases already at the target spacing.
IMAGE_INTERPOLATION = "spline"
MAX_GRID_VOXELS = 2**30  # a case resampled to more voxels than this (4 GiB per float32 channel) is refused


@dataclass
class PreprocessReport:
    """What a preprocessing run did: case ids written, skipped (already complete) and failed (with the message),
    and the target spacing and label scheme of the cache."""

    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    target_spacing: tuple[float, float, float] | None = None
    labels: str = DEFAULT_SCHEME


@dataclass
class PreprocessedCase:
    """One case on the training grid: image (C, X, Y, Z) float32, seg uint8 or None, the seg on the cropped
    original grid (canonical order) when resampling changed the grid (else None), and its properties."""

    image: np.ndarray
    seg: np.ndarray | None
    original_seg: np.ndarray | None
    properties: dict[str, Any]


def source_fingerprint(case: CaseFiles) -> dict[str, list[int]]:
    """Size and modification time of each input file: a rerun redoes a case whose inputs changed."""
    files = dict(case.images, **({"seg": case.seg} if case.seg else {}))
    return {kind: [path.stat().st_size, path.stat().st_mtime_ns] for kind, path in sorted(files.items())}


def preprocess_loaded(loaded: LoadedCase, target: Sequence[float] | None, foreground_samples: int,
                      scheme: LabelScheme = SCHEMES[DEFAULT_SCHEME]) -> PreprocessedCase:
    """Reorient, crop, normalise, resample and describe one validated case.

    Args:
        target: the voxel size (mm, canonical order) to resample to; None keeps the file's axis order and grid,
            as preprocessing did before target spacings (for runs trained then).
        foreground_samples: tumour locations kept per region (0 for prediction).
        scheme: the label scheme of the case's label map (its regions are resampled and sampled).
    """
    geometry = loaded.geometry
    order = AxisOrder(CANONICAL) if target is None else AxisOrder.of(np.asarray(geometry.affine))
    spacing = order.spacing(geometry.zooms[:3])
    target = spacing if target is None else tuple(float(t) for t in target)
    image = order.apply(loaded.image)
    box = brain_box(image)
    image = crop(image, box)
    image, stats = zscore_brain(image, brain_mask(image))
    shape = resampled_shape(image.shape[1:], spacing, target)
    if int(np.prod(shape, dtype=np.int64)) > MAX_GRID_VOXELS:
        raise InputError(loaded.case_id, None, f"its {format_mm(spacing)} mm voxels at the target spacing "
                                               f"{format_mm(target)} mm make a grid of {'x'.join(map(str, shape))} "
                                               f"voxels, more than {MAX_GRID_VOXELS:.3g}")
    seg = crop(order.apply(loaded.seg), box) if loaded.seg is not None else None
    properties: dict[str, Any] = {
        "case_id": loaded.case_id,
        "modalities": list(MODALITIES),
        "geometry": geometry.to_dict(),
        **order.to_json(),
        "original_spacing": list(spacing),
        "canonical_shape": list(order.shape(geometry.shape)),
        "crop_box": [list(bounds) for bounds in box],
        "cropped_shape": list(image.shape[1:]),
        "target_spacing": list(target),
        "resampled_shape": list(shape),
        "normalization": {m: {"mean": mean, "std": std} for m, (mean, std) in zip(MODALITIES, stats)},
        "has_seg": seg is not None,
    }
    image = resample_image(image, shape, spacing, target, IMAGE_INTERPOLATION)
    resampled = resample_labels(seg, shape, spacing, target, scheme) if seg is not None else None
    if resampled is not None:
        properties.update(foreground_properties(resampled, foreground_samples,
                                                seed=zlib.crc32(loaded.case_id.encode()), scheme=scheme))
    original = seg if resampled is not None and resampled is not seg else None
    return PreprocessedCase(image, resampled, original, properties)


def foreground_properties(seg: np.ndarray, samples: int, seed: int,
                          scheme: LabelScheme = SCHEMES[DEFAULT_SCHEME]) -> dict[str, Any]:
    """Per region of `scheme`: the voxel count, up to `samples` voxel locations (x, y, z) drawn uniformly from the
    region, and up to LESION_SAMPLES locations of each of its lesions (26-connected components), for
    oversampling."""
    rng = np.random.default_rng(seed)
    counts, locations, lesions = {}, {}, {}
    for region, mask in zip(scheme.region_names, scheme.labels_to_regions(seg)):
        flat = np.flatnonzero(mask)
        counts[region] = int(flat.size)
        chosen = rng.choice(flat, size=min(samples, flat.size), replace=False) if flat.size else flat
        locations[region] = _voxels(chosen, seg.shape)
        lesions[region] = [_voxels(voxels, seg.shape) for voxels in _lesion_voxels(mask, flat, rng)]
    return {"region_voxels": counts, "foreground_locations": locations, "lesion_locations": lesions}


def _lesion_voxels(mask: np.ndarray, flat: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Up to LESION_SAMPLES flat indices of each 26-connected component of `mask` (`flat`: its voxels)."""
    labels = cc3d.connected_components(mask, connectivity=26).ravel()[flat]
    order = np.argsort(labels, kind="stable")
    groups = np.split(flat[order], np.flatnonzero(np.diff(labels[order])) + 1) if flat.size else []
    return [rng.choice(group, size=min(LESION_SAMPLES, group.size), replace=False) for group in groups]


def _voxels(flat: np.ndarray, shape: tuple[int, ...]) -> list[list[int]]:
    return np.stack(np.unravel_index(np.sort(flat), shape), axis=1).tolist()


def preprocess_case(case: CaseFiles, out_dir: Path, target: Sequence[float], foreground_samples: int,
                    scheme: LabelScheme = SCHEMES[DEFAULT_SCHEME]) -> str:
    """Preprocess one case into `out_dir` unless a complete copy of the same inputs at `target` and with the
    same label scheme is there.

    Returns:
        "written" or "skipped".
    """
    fingerprint = source_fingerprint(case)
    existing = read_properties(out_dir, case.case_id)
    if existing is not None and existing.get("source") == fingerprint and _cached_as(existing, target, scheme):
        return "skipped"
    done = preprocess_loaded(load_case(case, scheme), target, foreground_samples, scheme)
    write_case(out_dir, case.case_id, done.image, done.seg,
               {**done.properties, "labels": scheme.name, "source": fingerprint}, done.original_seg)
    return "written"


def _cached_as(properties: dict[str, Any], target: Sequence[float], scheme: LabelScheme) -> bool:
    """Whether a cached case is at `target` with the regions of `scheme` (cases cached before label schemes were
    cached with the 2023 one)."""
    return properties["target_spacing"] == list(target) and properties.get("labels", DEFAULT_SCHEME) == scheme.name


def _run_one(args: tuple[CaseFiles, Path, tuple[float, float, float], int, LabelScheme]) -> tuple[str, str, str]:
    case, out_dir, target, samples, scheme = args
    try:
        return case.case_id, preprocess_case(case, out_dir, target, samples, scheme), ""
    except InputError as error:
        return case.case_id, "failed", str(error)


def preprocess_dataset(
    raw: str | Path,
    out_dir: str | Path,
    workers: int = 1,
    foreground_samples: int = DEFAULT_FOREGROUND_SAMPLES,
    progress: bool = True,
    target_spacing: Sequence[float] | None = None,
    labels: str = DEFAULT_SCHEME,
) -> PreprocessReport:
    """Preprocess every case found under `raw` into `out_dir`, `workers` cases at a time.

    Args:
        target_spacing: voxel size (mm) of the training grid; default nnU-Net's plan from the cases' headers
            (`plan.plan_target_spacing`). Cases cached at another target are preprocessed again.
        labels: the label scheme of the cases (data/labels.py): the labels their label maps may hold and the
            regions they are resampled and sampled by. Cases cached with another scheme are preprocessed again.

    A broken case is reported in the result and does not stop the others; `dataset.json` lists the complete cases
    with the target spacing, the axis order and the label scheme.
    """
    scheme = label_scheme(labels)
    cases = discover_cases(raw)
    target = _checked_target(target_spacing) if target_spacing is not None else plan_target_spacing(cases)
    if target is None:
        raise UserError(f"{raw}: no case to plan the target spacing from (the first: "
                        f"{case_problem(cases[0], scheme) or 'its first image header cannot be read'})")
    out_dir = output_folder(out_dir)
    remove_stale_temporaries(out_dir)
    jobs = [(case, out_dir, target, foreground_samples, scheme) for case in cases]
    report = PreprocessReport(target_spacing=target, labels=scheme.name)
    for case_id, status, message in map_cases(_run_one, jobs, workers, "preprocess", progress):
        if status == "failed":
            report.failed[case_id] = message
        else:
            getattr(report, status).append(case_id)
    complete = _cases_at(out_dir, target, scheme)
    write_json(out_dir / DATASET_FILE, {"format_version": FORMAT_VERSION, "modalities": list(MODALITIES),
                                        "labels": scheme.name, "regions": list(scheme.region_names),
                                        "axis_order": CANONICAL, "target_spacing": list(target),
                                        "cases": complete})
    return report


def _checked_target(target_spacing: Sequence[float]) -> tuple[float, float, float]:
    """A target spacing given by the user, if it is three voxel sizes in the range a file may declare."""
    target = tuple(float(t) for t in target_spacing)
    low, high = VOXEL_SIZE_MM
    if len(target) != 3 or not all(low <= t <= high for t in target):
        raise UserError(f"--target-spacing {' '.join(f'{t:g}' for t in target)}: expected three voxel sizes "
                        f"from {low:g} to {high:g} mm")
    return target


def _cases_at(out_dir: Path, target: tuple[float, float, float], scheme: LabelScheme) -> list[str]:
    """The complete cases at `target` with `scheme`; the others (left from a run at another target or with another
    scheme, failed in this one) lose their properties file, so that no reader takes them for cases of this
    cache."""
    complete = []
    for case_id in cached_case_ids(out_dir):
        if _cached_as(read_properties(out_dir, case_id), target, scheme):
            complete.append(case_id)
        else:
            properties_path(out_dir, case_id).unlink()
    return complete
