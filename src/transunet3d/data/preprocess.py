"""Turn raw BraTS cases into the training cache: crop to brain, z-score, foreground locations, properties."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cc3d
import numpy as np

from transunet3d.config.schema import MODALITIES, REGIONS
from transunet3d.data.cache import DATASET_FILE, FORMAT_VERSION, cached_case_ids, read_properties, write_case
from transunet3d.data.crop import brain_box, crop
from transunet3d.data.layout import CaseFiles, discover_cases
from transunet3d.data.normalize import zscore_brain
from transunet3d.data.regions import labels_to_regions
from transunet3d.data.validate import LoadedCase, load_case
from transunet3d.errors import InputError
from transunet3d.files import output_folder, remove_stale_temporaries, write_json
from transunet3d.parallel import map_cases

DEFAULT_FOREGROUND_SAMPLES = 10000
LESION_SAMPLES = 50  # voxel locations kept per lesion, for sampling lesions rather than voxels


@dataclass
class PreprocessReport:
    """What a preprocessing run did: case ids written, skipped (already complete) and failed (with the message)."""

    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def source_fingerprint(case: CaseFiles) -> dict[str, list[int]]:
    """Size and modification time of each input file: a rerun redoes a case whose inputs changed."""
    files = dict(case.images, **({"seg": case.seg} if case.seg else {}))
    return {kind: [path.stat().st_size, path.stat().st_mtime_ns] for kind, path in sorted(files.items())}


def preprocess_loaded(loaded: LoadedCase, foreground_samples: int) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Crop, normalise and describe one validated case; returns (image, seg, properties)."""
    box = brain_box(loaded.image)
    image = crop(loaded.image, box)
    brain = np.any(image != 0, axis=0)
    image, stats = zscore_brain(image, brain)
    seg = crop(loaded.seg, box) if loaded.seg is not None else None
    properties: dict[str, Any] = {
        "case_id": loaded.case_id,
        "modalities": list(MODALITIES),
        "geometry": loaded.geometry.to_dict(),
        "crop_box": [list(bounds) for bounds in box],
        "cropped_shape": list(image.shape[1:]),
        "normalization": {m: {"mean": mean, "std": std} for m, (mean, std) in zip(MODALITIES, stats)},
        "has_seg": seg is not None,
    }
    if seg is not None:
        properties.update(foreground_properties(seg, foreground_samples, seed=zlib.crc32(loaded.case_id.encode())))
    return image, seg, properties


def foreground_properties(seg: np.ndarray, samples: int, seed: int) -> dict[str, Any]:
    """Per region: the voxel count, up to `samples` voxel locations (x, y, z) drawn uniformly from the region, and
    up to LESION_SAMPLES locations of each of its lesions (26-connected components), for oversampling."""
    rng = np.random.default_rng(seed)
    counts, locations, lesions = {}, {}, {}
    for region, mask in zip(REGIONS, labels_to_regions(seg)):
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


def preprocess_case(case: CaseFiles, out_dir: Path, foreground_samples: int) -> str:
    """Preprocess one case into `out_dir` unless a complete copy of the same inputs is there.

    Returns:
        "written" or "skipped".
    """
    fingerprint = source_fingerprint(case)
    existing = read_properties(out_dir, case.case_id)
    if existing is not None and existing.get("source") == fingerprint:
        return "skipped"
    image, seg, properties = preprocess_loaded(load_case(case), foreground_samples)
    write_case(out_dir, case.case_id, image, seg, {**properties, "source": fingerprint})
    return "written"


def _run_one(args: tuple[CaseFiles, Path, int]) -> tuple[str, str, str]:
    case, out_dir, samples = args
    try:
        return case.case_id, preprocess_case(case, out_dir, samples), ""
    except InputError as error:
        return case.case_id, "failed", str(error)


def preprocess_dataset(
    raw: str | Path,
    out_dir: str | Path,
    workers: int = 1,
    foreground_samples: int = DEFAULT_FOREGROUND_SAMPLES,
    progress: bool = True,
) -> PreprocessReport:
    """Preprocess every case found under `raw` into `out_dir`, `workers` cases at a time.

    A broken case is reported in the result and does not stop the others; `dataset.json` lists the complete cases.
    """
    cases = discover_cases(raw)
    out_dir = output_folder(out_dir)
    remove_stale_temporaries(out_dir)
    jobs = [(case, out_dir, foreground_samples) for case in cases]
    report = PreprocessReport()
    for case_id, status, message in map_cases(_run_one, jobs, workers, "preprocess", progress):
        if status == "failed":
            report.failed[case_id] = message
        else:
            getattr(report, status).append(case_id)
    complete = cached_case_ids(out_dir)
    write_json(out_dir / DATASET_FILE, {"format_version": FORMAT_VERSION, "modalities": list(MODALITIES),
                                        "regions": list(REGIONS), "cases": complete})
    return report

