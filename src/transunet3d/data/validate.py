"""Load one case and check it: all four modalities, 3D, one grid (in any axis order), finite values, labels of the
scheme."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import nibabel as nib
import numpy as np

from transunet3d.data.grid import has_orientation, onto_grid
from transunet3d.data.labels import DEFAULT_SCHEME, SCHEMES, LabelScheme, label_scheme
from transunet3d.data.layout import CaseFiles, discover_cases
from transunet3d.data.nifti import Geometry, load_header_3d, read_data
from transunet3d.errors import InputError, warn_input
from transunet3d.parallel import map_cases

# A case whose files say nothing of where their voxels lie is read in nibabel's stand-in orientation, as every
# NIfTI reader does; said once per case, because a scan stored in another axis order is then seen mirrored or turned.
NO_ORIENTATION = ("has no orientation (qform and sform codes 0): read in nibabel's stand-in axis order (L, A, S); "
                  "a scan stored in another order is seen mirrored or turned (the output keeps the file's voxel order)")


@dataclass
class LoadedCase:
    """A validated case: image (4, X, Y, Z) float32 in channel order t1n, t1c, t2w, t2f; seg uint8 or None."""

    case_id: str
    image: np.ndarray
    seg: np.ndarray | None
    geometry: Geometry


def load_case(case: CaseFiles, scheme: LabelScheme = SCHEMES[DEFAULT_SCHEME]) -> LoadedCase:
    """Read and validate every file of `case`, its label map holding labels of `scheme`.

    Raises:
        InputError: naming the case, the file and the first problem found.
    """
    paths = case.image_paths()
    headers = [load_header_3d(path, case.case_id) for path in paths]
    reference = headers[0]
    if not has_orientation(reference):
        warn_input(case.case_id, paths[0], NO_ORIENTATION)
    onto = [onto_grid(case.case_id, path, header, paths[0], reference) for path, header in zip(paths, headers)]
    channels = [_read_modality(header, path, case.case_id, move) for path, header, move in zip(paths, headers, onto)]
    _not_constant_in_brain(channels, paths, case.case_id)
    seg = None
    if case.seg is not None:
        seg_header = load_header_3d(case.seg, case.case_id)
        move = onto_grid(case.case_id, case.seg, seg_header, paths[0], reference)
        seg = move(read_label_map(seg_header, case.seg, case.case_id, scheme.labels))
    return LoadedCase(case.case_id, np.stack(channels), seg, Geometry.of(reference))


def _read_modality(image: nib.Nifti1Image, path: Path, case_id: str, onto: Callable) -> np.ndarray:
    """One modality's voxels on the case's grid, checked finite, not blank and not all in a few voxels."""
    array = _not_blank(_finite(onto(read_data(image, path, case_id)), path, case_id), path, case_id)
    return _not_outlier_dominated(array, path, case_id)


def _finite(array: np.ndarray, path: Path, case_id: str) -> np.ndarray:
    if not np.isfinite(array).all():
        bad = int(array.size - np.isfinite(array).sum())
        raise InputError(case_id, path, f"{bad} voxels are NaN or infinite")
    return array


def _not_blank(array: np.ndarray, path: Path, case_id: str) -> np.ndarray:
    """`array`, a modality's voxels, unless they are all equal: a blank sequence, which z-scoring would turn into
    zeros and the model would read as a scan without signal."""
    low, high = array.min(), array.max()
    if low == high:
        raise InputError(case_id, path, f"every voxel is {float(low):g}: a blank image")
    return array


def _not_constant_in_brain(channels: list[np.ndarray], paths: list[Path], case_id: str) -> None:
    """Refuse a modality that holds one value wherever some modality is nonzero (a brain mask, or a sequence
    exported as a constant): z-scoring over the brain would turn it into a blank channel."""
    brain = np.zeros(channels[0].shape, dtype=bool)
    for channel in channels:
        brain |= channel != 0
    for path, channel in zip(paths, channels):
        inside = channel[brain]
        if inside.size and inside.min() == inside.max():
            raise InputError(case_id, path, f"every brain voxel (nonzero in some modality) is {float(inside[0]):g}: "
                                            "a mask or a blank sequence, not an image")


OUTLIER_SHARE = 0.001  # the brightest (or darkest) 0.1% of a modality's voxels ...
OUTLIER_VARIANCE = 0.99  # ... may not hold 99% of its variance


def _not_outlier_dominated(array: np.ndarray, path: Path, case_id: str) -> np.ndarray:
    """`array`, unless a handful of its nonzero voxels hold nearly all of its variance (one voxel of 1e30 in a
    scan of hundreds): z-scoring would then squeeze every other voxel to one value, a blank image in all but
    name, which the model would read without a word. In a real scan the most extreme 0.1% of the voxels hold a few
    percent of the variance."""
    values = array[array != 0].astype(np.float64)
    deviations = (values - values.mean()) ** 2
    total = float(deviations.sum())
    count = max(1, int(OUTLIER_SHARE * values.size))
    if total > 0 and values.size > count:
        extreme = float(np.partition(deviations, values.size - count)[values.size - count:].sum())
        if extreme > OUTLIER_VARIANCE * total:
            largest = float(values[np.argmax(np.abs(values - values.mean()))])
            raise InputError(case_id, path, f"{count} of its {values.size} nonzero voxels hold {extreme / total:.1%} "
                                            f"of the intensity variance (the most extreme is {largest:g}): "
                                            "normalised, the rest would be one value; a damaged or mis-scaled file")
    return array


def read_label_map(image: nib.Nifti1Image, path: Path, case_id: str | None,
                   labels: tuple[int, ...] | None = None) -> np.ndarray:
    """The labels of a segmentation as a writable uint8 array, checked to be integers of the scheme.

    Training, tuning and evaluation all read label maps here (or through `read_label_values`): a label no region
    holds would otherwise count as background without a word.

    Args:
        labels: the labels allowed (background included); by default those of the default label scheme.
    """
    values = read_label_values(image, path, case_id, labels)
    labels_map = values.astype(np.uint8, copy=False)
    return labels_map if labels_map.flags.writeable else labels_map.copy(order="K")


def read_label_values(image: nib.Nifti1Image, path: Path, case_id: str | None,
                      labels: tuple[int, ...] | None = None) -> np.ndarray:
    """The labels of a segmentation, checked like `read_label_map`'s, in the integer type they are stored in
    (uint8 for a float map) and possibly a read-only view of the file's bytes: for a reader that only looks, and
    converts no more of the map to uint8 than it needs (evaluation converts the crop around the lesions).

    Args:
        labels: the labels allowed (background included); by default those of the default label scheme.
    """
    labels = label_scheme().labels if labels is None else tuple(labels)
    # As stored (after scaling): a float32 map holds every integer label exactly, and converting it would cost
    # more than all the checks.
    raw = read_data(image, path, case_id, dtype=None, read_only_ok=True)
    if raw.dtype.kind == "f" and raw.size and raw.min() >= 0 and raw.max() <= 255:  # NaN fails these tests
        as_integers = raw.astype(np.uint8)
        if np.array_equal(raw, as_integers):  # the usual float map: integers in 0..255, one conversion
            raw = as_integers
    if raw.dtype.kind == "f":
        _finite(raw, path, case_id)
        if not np.array_equal(raw, np.round(raw)):
            raise InputError(case_id, path, "label map has non-integer values")
    bad = _labels_outside(raw, labels)
    if bad:
        raise InputError(case_id, path, f"labels must be in {{{','.join(map(str, labels))}}}, "
                                        f"found {', '.join(f'{value:.6g}' for value in bad)}")
    return raw


def _labels_outside(values: np.ndarray, labels: tuple[int, ...], shown: int = 5) -> list[float]:
    """Up to `shown` values of the integer array `values` that are not in `labels`, in increasing order."""
    # The usual case, labels 0..K: the extremes decide, two fast passes instead of a lookup of every voxel.
    contiguous = labels == tuple(range(len(labels)))
    if contiguous and values.size and values.max() <= labels[-1] and (values.dtype.kind == "u" or values.min() >= 0):
        return []
    allowed = np.zeros(256, dtype=bool)
    allowed[list(labels)] = True
    codes = np.clip(values, 0, 255).astype(np.uint8)
    outside = (values != codes) | ~allowed[codes]
    return [float(value) for value in np.unique(values[outside])[:shown]] if outside.any() else []


def case_problem(case: CaseFiles, scheme: LabelScheme) -> str:
    """The first problem `load_case` finds in `case` (naming case and file), or "" when the case is valid."""
    try:
        load_case(case, scheme)
    except InputError as error:
        return str(error)
    return ""


def validate_cases(root: str | Path, workers: int = 1, progress: bool = True,
                   labels: str = DEFAULT_SCHEME) -> tuple[int, dict[str, str]]:
    """Check every case under `root`, label maps against the label scheme `labels`; returns (number of cases,
    {case id: message} of the broken ones)."""
    cases = discover_cases(root)
    messages = map_cases(partial(case_problem, scheme=label_scheme(labels)), cases, workers, "validate", progress)
    return len(cases), {case.case_id: message for case, message in zip(cases, messages) if message}
