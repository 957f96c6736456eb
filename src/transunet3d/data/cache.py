"""The preprocessed-case cache: per case an image `.npy`, a seg `.npy` and a properties `.json`.

Arrays are on the training grid (canonical axis order, the dataset's target spacing). When resampling changed a
case's grid, its label map on the original grid (canonical order, cropped) is kept too, `_seg_original.npy`: the
reference that out-of-fold predictions are scored against.

Arrays are plain uncompressed `.npy` files opened memory-mapped, so a training patch is read without loading the
whole case (docs/benchmarks.md compares this with blosc2). The properties file is written last: a case whose
properties exist is complete, and every file is written under a temporary name and renamed, so an interrupted run
never leaves a case that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from transunet3d.data.labels import DEFAULT_SCHEME, SCHEMES
from transunet3d.data.orientation import CANONICAL
from transunet3d.errors import UserError
from transunet3d.files import atomic_path, is_temporary, parse_json, read_json, write_json

# 2: lesion_locations; 3: canonical axis order and target spacing. Older: preprocessed again. The label scheme
# ("labels", in dataset.json and each case's properties) came within version 3: a cache without it is a 2023 one.
FORMAT_VERSION = 3
DATASET_FILE = "dataset.json"
SPLITS_FILE = "splits.json"


@dataclass
class CachedCase:
    """One preprocessed case: image (C, X, Y, Z) float32 and seg (X, Y, Z) uint8 on the training grid, and
    `original_seg` on the cropped original grid (`seg` itself where the grid did not change), memory-mapped
    read-only."""

    case_id: str
    image: np.ndarray
    seg: np.ndarray | None
    properties: dict[str, Any]
    original_seg: np.ndarray | None = None


def image_path(root: Path, case_id: str) -> Path:
    return root / f"{case_id}.npy"


def seg_path(root: Path, case_id: str) -> Path:
    return root / f"{case_id}_seg.npy"


def original_seg_path(root: Path, case_id: str) -> Path:
    return root / f"{case_id}_seg_original.npy"


def properties_path(root: Path, case_id: str) -> Path:
    return root / f"{case_id}.json"


def write_case(root: Path, case_id: str, image: np.ndarray, seg: np.ndarray | None, properties: dict,
               original_seg: np.ndarray | None = None) -> None:
    """Store one case (`original_seg`: only when resampling changed the grid); the properties file goes last and
    marks the case complete."""
    root.mkdir(parents=True, exist_ok=True)
    _save_npy(image_path(root, case_id), image)
    if seg is not None:
        _save_npy(seg_path(root, case_id), seg)
    original = original_seg_path(root, case_id)
    if original_seg is not None:
        _save_npy(original, original_seg)
    else:
        original.unlink(missing_ok=True)  # from a run at another target spacing
    write_json(properties_path(root, case_id), {"format_version": FORMAT_VERSION, **properties}, indent=None)


def _save_npy(path: Path, array: np.ndarray) -> None:
    """`np.save`'s file, with the data written by Python: numpy's own write reports a full disk as a bare
    "N requested and M written", without the errno that says "no space left on device"."""
    array = np.ascontiguousarray(array)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, np.lib.format.header_data_from_array_1_0(array))
        handle.write(memoryview(array).cast("B"))


def read_properties(root: Path, case_id: str) -> dict[str, Any] | None:
    """The stored properties of a complete case of the current format, else None."""
    try:
        properties = parse_json(properties_path(root, case_id).read_text())
    except (FileNotFoundError, ValueError):  # damaged, or a key twice
        return None
    if properties.get("format_version") != FORMAT_VERSION or not image_path(root, case_id).exists():
        return None
    if properties.get("has_seg") and not seg_path(root, case_id).exists():
        return None
    if _has_original_seg(properties) and not original_seg_path(root, case_id).exists():
        return None
    return properties


def _has_original_seg(properties: dict[str, Any]) -> bool:
    """Whether a case keeps its label map on the original grid: it has one and resampling changed its grid."""
    return bool(properties.get("has_seg")) and properties["resampled_shape"] != properties["cropped_shape"]


def open_case(root: str | Path, case_id: str) -> CachedCase:
    """Memory-map a complete case for reading.

    Raises:
        FileNotFoundError: the case is missing from the cache, or incomplete.
        UserError: one of its arrays is damaged (empty, truncated, not an .npy file).
    """
    root = Path(root)
    properties = read_properties(root, case_id)
    if properties is None:
        raise FileNotFoundError(f"{root}: case {case_id} is missing or incomplete in the preprocessed cache")
    image = _mapped(image_path(root, case_id))
    if image.ndim != 4 or image.dtype.kind != "f":
        raise damaged(image_path(root, case_id), f"{image.dtype} {image.shape}, not the float (C, X, Y, Z) image "
                                                 "of a case")
    seg = _mapped(seg_path(root, case_id)) if properties["has_seg"] else None
    original = _mapped(original_seg_path(root, case_id)) if _has_original_seg(properties) else seg
    for path, labels in ((seg_path(root, case_id), seg), (original_seg_path(root, case_id), original)):
        if labels is not None and (labels.ndim != 3 or labels.dtype.kind not in "ui"):
            raise damaged(path, f"{labels.dtype} {labels.shape}, not a label map")
    if seg is not None and seg.shape != image.shape[1:]:
        raise damaged(seg_path(root, case_id), f"shape {seg.shape}, not its image's {image.shape[1:]}")
    return CachedCase(case_id, image, seg, properties, original)


def damaged(path: Path, reason: str) -> UserError:
    """The error for a damaged file of the cache, naming it and how to repair it."""
    return UserError(f"{path}: damaged in the preprocessed cache ({reason}); remove the case's files and "
                     "preprocess it again")


def _mapped(path: Path) -> np.ndarray:
    """The array of an .npy file of the cache, memory-mapped; a damaged file is a UserError (an empty one would
    otherwise raise EOFError, which click reports as a bare 'Aborted!')."""
    try:
        return np.load(path, mmap_mode="r")
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else "the file is empty"
        raise damaged(path, reason) from None


def case_digests(root: str | Path, case_ids: list[str]) -> dict[str, str | None]:
    """A short digest of each case's content as the cache holds it (None for a case it does not hold).

    The digest covers the stored properties (grid, crop, normalisation statistics, lesion locations), which differ
    between two caches of the same case ids with other images, but not where the raw files were read from: a cache
    that is copied or moved, or preprocessed again from the same files, keeps its digests.
    """
    digests: dict[str, str | None] = {}
    for case_id in case_ids:
        properties = read_properties(Path(root), case_id)
        content = None if properties is None else {k: v for k, v in properties.items() if k != "source"}
        digests[case_id] = None if content is None else hashlib.sha256(
            json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]
    return digests


def cached_case_ids(root: str | Path) -> list[str]:
    """Ids of the complete cases in a cache folder, sorted."""
    root = Path(root)
    candidates = sorted(p.stem for p in root.glob("*.json")
                        if p.name not in (DATASET_FILE, SPLITS_FILE) and not is_temporary(p))
    return [case_id for case_id in candidates if read_properties(root, case_id) is not None]


def read_dataset(root: str | Path) -> dict[str, Any]:
    """The cache's `dataset.json` (cases, target spacing, axis order, label scheme: brats-mets-2023 for caches
    written before label schemes).

    Raises:
        UserError: it is missing, damaged, or written by a version before target spacings (preprocess again).
    """
    path = Path(root) / DATASET_FILE
    if not path.is_file():
        raise UserError(f"{root}: no preprocessed cases found (no {DATASET_FILE}; run `transunet3d preprocess` first)")
    dataset = read_json(path)
    if not isinstance(dataset, dict):
        raise UserError(f"{path}: damaged: expected a JSON object, got {type(dataset).__name__}")
    if dataset.get("format_version") != FORMAT_VERSION or "target_spacing" not in dataset:
        raise UserError(f"{path}: written by an older version; run `transunet3d preprocess` into it again")
    dataset = {"labels": DEFAULT_SCHEME, **dataset}
    _check_dataset(path, dataset)
    return dataset


def _check_dataset(path: Path, dataset: dict[str, Any]) -> None:
    """Refuse a dataset.json whose grid or case list is not what `preprocess` writes (edited by hand, damaged):
    the run would record it and predict every input at that spacing."""
    spacing = dataset["target_spacing"]
    numbers = isinstance(spacing, list) and all(isinstance(value, (int, float)) and not isinstance(value, bool)
                                                for value in spacing)
    if not (numbers and len(spacing) == 3 and all(math.isfinite(value) and value > 0 for value in spacing)):
        raise UserError(f"{path}: damaged: target_spacing is {spacing!r}, not three voxel sizes in mm")
    if dataset.get("axis_order") != CANONICAL:
        raise UserError(f"{path}: damaged: axis_order is {dataset.get('axis_order')!r}, not {CANONICAL!r}")
    if dataset["labels"] not in SCHEMES:
        raise UserError(f"{path}: damaged: labels is {dataset['labels']!r}, not one of {', '.join(SCHEMES)}")
    cases = dataset.get("cases")
    if not isinstance(cases, list) or not all(isinstance(case, str) for case in cases):
        raise UserError(f"{path}: damaged: cases is not a list of case ids")
