"""BraTS-like synthetic cases: MNI152 anatomy, four contrasts, metastases with BraTS labels, in the BraTS layout."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from transunet3d.data.nifti import MILLIMETRES, Geometry, format_mm, write_nifti
from transunet3d.data.phantom.anatomy import anatomy_on_grid, brain_size_mm, fitting_spacing, grid_affine
from transunet3d.data.phantom.cavities import Cavity, carve_cavities, sample_cavities
from transunet3d.data.phantom.contrasts import synthesize_contrasts
from transunet3d.data.phantom.lesions import Lesion, rasterize, sample_lesions
from transunet3d.data.phantom.variants import Variant, apply_variant
from transunet3d.data.resample import resampled_shape
from transunet3d.errors import UserError
from transunet3d.files import atomic_folder, output_folder, read_json, remove_stale_temporaries, write_json
from transunet3d.parallel import map_cases

MANIFEST_FILE = "phantoms.json"
MAX_SIDE = 1024  # voxels per axis: beyond any scan (NIfTI's own limit, 32767, was a traceback after generating)
_CAVITY_STREAM = 4  # the cavities' own random stream: (seed, index, 4)


@dataclass(frozen=True)
class PhantomSpec:
    """What the generator makes. `spacing=None` picks the smallest isotropic voxel (>= 1 mm) that fits the brain.
    `cavities` is the probability that a lesion has a resection cavity (label 4, BraTS 2025) next to it; 0 gives
    the BraTS 2023 labels."""

    shape: tuple[int, int, int] = (240, 240, 155)
    spacing: tuple[float, float, float] | None = None
    lesions: tuple[int, int] = (1, 12)
    diameter_mm: tuple[float, float] = (3.0, 40.0)
    necrosis_p: float = 0.6
    edema_p: float = 0.9
    cavities: float = 0.0
    cavity_diameter_mm: tuple[float, float] = (8.0, 30.0)

    def resolved_spacing(self) -> tuple[float, float, float]:
        return tuple(self.spacing) if self.spacing is not None else fitting_spacing(self.shape)


@dataclass
class Phantom:
    """One generated case: int16 images per modality, uint8 BraTS labels, geometry, the lesions and cavities drawn."""

    case_id: str
    images: dict[str, np.ndarray]
    seg: np.ndarray
    geometry: Geometry
    lesions: list[Lesion]
    cavities: list[Cavity] = field(default_factory=list)


MAX_CASE_INDEX = 99999  # case ids have five digits (BraTS-MET-00001-000); a sixth is no BraTS case id


def phantom_case_id(index: int) -> str:
    return f"BraTS-MET-{index:05d}-000"


def generate_phantom(spec: PhantomSpec, seed: int, index: int) -> Phantom:
    """Case `index` of the series `seed`: the same (spec, seed, index) always gives the same case."""
    rng = np.random.default_rng([seed, index])
    spacing = spec.resolved_spacing()
    anatomy = anatomy_on_grid(tuple(spec.shape), spacing)
    count = int(rng.integers(spec.lesions[0], spec.lesions[1] + 1))
    lesions = sample_lesions(rng, anatomy, count, spec.diameter_mm, spec.necrosis_p, spec.edema_p)
    seg = rasterize(lesions, anatomy)
    cavities = []
    if spec.cavities > 0:
        # Their own stream: a case has the same lesions with cavities as without.
        cavity_rng = np.random.default_rng([seed, index, _CAVITY_STREAM])
        cavities = sample_cavities(cavity_rng, anatomy, lesions, spec.cavities, spec.cavity_diameter_mm)
        carve_cavities(seg, cavities, anatomy)
    images = synthesize_contrasts(anatomy, seg, rng)
    affine = grid_affine(spec.shape, spacing)
    rows = tuple(tuple(float(x) for x in row) for row in affine)
    geometry = Geometry(tuple(spec.shape), rows, rows, 1, rows, 1, tuple(float(s) for s in spacing),
                        xyzt_units=MILLIMETRES)
    return Phantom(phantom_case_id(index), images, seg, geometry, lesions, cavities)


def write_phantom(phantom: Phantom, out_dir: Path) -> Path:
    """Write the case in the BraTS layout (`<id>/<id>-{t1n,t1c,t2w,t2f,seg}.nii.gz`); returns its folder.

    The folder appears whole or not at all (`atomic_folder`): one killed before its label map read as an
    unlabelled case."""
    with atomic_folder(out_dir / phantom.case_id) as folder:
        for modality, volume in phantom.images.items():
            write_nifti(volume, phantom.geometry, folder / f"{phantom.case_id}-{modality}.nii.gz")
        write_nifti(phantom.seg, phantom.geometry, folder / f"{phantom.case_id}-seg.nii.gz")
    return out_dir / phantom.case_id


def _make_one(args: tuple[PhantomSpec, int, int, Path, Variant | None]) -> tuple[str, list[dict]]:
    spec, seed, index, out_dir, variant = args
    phantom = generate_phantom(spec, seed, index)
    write_phantom(apply_variant(phantom, variant) if variant else phantom, out_dir)
    affine = np.asarray(phantom.geometry.affine, dtype=np.float64)
    lesions = [_with_world_centre(lesion.to_dict(), affine) for lesion in phantom.lesions]
    for cavity in phantom.cavities:
        lesions[cavity.lesion]["cavity"] = _with_world_centre(cavity.to_dict(), affine)
    return phantom.case_id, lesions


def _with_world_centre(record: dict[str, Any], affine: np.ndarray) -> dict[str, Any]:
    """`record` with its centre also in world coordinates (mm): the same point in every stored variant, whose
    voxel grid and axis order differ from the generated one's."""
    world = affine[:3, :3] @ np.asarray(record["center_voxel"], dtype=np.float64) + affine[:3, 3]
    return {**record, "center_mm": [round(float(c), 2) for c in world]}


def shortfalls(spec: PhantomSpec, cases: dict[str, list[dict]]) -> list[str]:
    """What the written `cases` (a manifest's id -> lesions) hold short of `spec`: a lesion finds no room, or
    shrinks until it fits, in a small or crowded brain."""
    notes = []
    fewer = sorted(case_id for case_id, lesions in cases.items() if len(lesions) < spec.lesions[0])
    if fewer:
        notes.append(f"{len(fewer)} case(s) hold fewer than {spec.lesions[0]} lesions (no room left for the others): "
                     f"{', '.join(fewer[:3])}{', ...' if len(fewer) > 3 else ''}")
    shrunk = sum(lesion["diameter_mm"] < spec.diameter_mm[0] for lesions in cases.values() for lesion in lesions)
    if shrunk:
        notes.append(f"{shrunk} lesion(s) shrunk below {spec.diameter_mm[0]:g} mm to fit")
    return notes


def brain_cut(spec: PhantomSpec) -> str | None:
    """Why the field of view (shape x voxel size) cuts the brain, or None when it holds the whole brain."""
    view = np.asarray(spec.shape) * np.asarray(spec.resolved_spacing())
    brain = brain_size_mm()
    if np.all(view >= brain):
        return None
    return (f"field of view {format_mm(np.round(view))} mm is smaller than the brain ({format_mm(np.round(brain))} "
            "mm): the cases hold a cut-out of it")


MIN_BRAIN_VOXELS = 8  # across the brain per axis: fewer leave no room to place and draw lesions


def _check_brain_fits(spec: PhantomSpec, variant: Variant | None) -> None:
    """Refuse a voxel size, generated or stored (`variant`), at which the brain spans fewer than MIN_BRAIN_VOXELS
    voxels along an axis (before any output: lesions could not be placed, or would vanish in the stored copy)."""
    size = brain_size_mm()
    for spacing in (spec.resolved_spacing(), variant.voxel_size if variant is not None else None):
        if spacing is not None and np.any(size / np.asarray(spacing) < MIN_BRAIN_VOXELS):
            raise UserError(f"voxel size {format_mm(spacing)} mm: the brain ({format_mm(np.round(size))} mm) would "
                            f"span fewer than {MIN_BRAIN_VOXELS} voxels along an axis")
    if variant is not None and variant.voxel_size:
        stored = resampled_shape(spec.shape, spec.resolved_spacing(), variant.voxel_size)
        if max(stored) > MAX_SIDE:  # as --shape: a grid of 1810^3 voxels ran out of memory after a while
            raise UserError(f"voxel size {format_mm(variant.voxel_size)} mm: the stored grid would be "
                            f"{'x'.join(map(str, stored))} voxels, more than {MAX_SIDE} along an axis")


def write_phantoms(
    out_dir: str | Path, cases: int, seed: int, spec: PhantomSpec = PhantomSpec(), workers: int = 1,
    progress: bool = True, first: int = 1, variant: Variant | None = None,
) -> list[str]:
    """Generate cases `first`..`first + cases - 1` of series `seed` into `out_dir`, with a manifest of the
    lesions drawn (`center_voxel` on the generated grid, before any `variant`, and `center_mm` in world
    coordinates, which hold for the stored files too; a lesion's cavity, if any, under its "cavity" key). Cases
    of one series never repeat, so a later range is a held-out test set."""
    if first < 1 or first + cases - 1 > MAX_CASE_INDEX:
        raise UserError(f"cases {first}..{first + cases - 1}: case ids run from 1 to {MAX_CASE_INDEX} (five digits, "
                        "as BraTS-MET-00001-000)")
    _check_brain_fits(spec, variant)
    series = series_record(seed, spec, variant)
    indices = range(first, first + cases)
    case_ids = [phantom_case_id(index) for index in indices]
    written = cases_of_series(Path(out_dir), series, case_ids)
    out_dir = output_folder(out_dir)
    remove_stale_temporaries(out_dir, recursive=True)  # a killed run's half-written files
    # The cases about to be written are recorded first: a run killed among them leaves their folders to its rerun.
    writing = sorted(set(_writing(out_dir)) | set(case_ids))
    write_json(out_dir / MANIFEST_FILE, {**series, "cases": written, "writing": writing})
    jobs = [(spec, seed, index, out_dir, variant) for index in indices]
    results = dict(map_cases(_make_one, jobs, workers, "phantom", progress))
    left = [case_id for case_id in writing if case_id not in results]  # of an earlier killed run, other ids
    write_json(out_dir / MANIFEST_FILE, {**series, "cases": dict(sorted({**written, **results}.items())),
                                         **({"writing": left} if left else {})})
    return list(results)


def _writing(out_dir: Path) -> list[str]:
    """The cases that a killed run of this series was writing, by its manifest."""
    manifest = out_dir / MANIFEST_FILE
    return list(read_json(manifest).get("writing", [])) if manifest.is_file() else []


def series_record(seed: int, spec: PhantomSpec, variant: Variant | None = None) -> dict[str, Any]:
    """What names a series in its manifest: the seed, the spec (voxel size resolved) and the stored variant."""
    return json.loads(json.dumps({"seed": seed, "spec": {**asdict(spec), "spacing": list(spec.resolved_spacing())},
                                  "variant": variant.to_json() if variant else None}))  # tuples as read back


def cases_of_series(out_dir: Path, series: dict[str, Any], case_ids: list[str]) -> dict[str, list]:
    """The cases (id -> lesions) that `out_dir`'s manifest records for `series`, to which `case_ids` may be added.

    Raises:
        UserError: the folder holds phantoms of another series (adding cases would leave a manifest that describes
            only some of them), or a folder of one of `case_ids` that the manifest does not record (real data, or
            cases of unknown origin, would be replaced).
    """
    manifest = out_dir / MANIFEST_FILE
    recorded = read_json(manifest) if manifest.is_file() else {**series, "cases": {}}
    if not isinstance(recorded, dict) or not isinstance(recorded.get("cases"), dict):
        raise UserError(f"{manifest}: not a phantom manifest; choose an empty folder")
    differing = [key for key in series if recorded.get(key) != series[key]]
    if differing:
        raise UserError(f"{out_dir}: holds phantoms of another series ({manifest.name} differs in "
                        f"{', '.join(differing)}); choose an empty folder")
    ours = set(recorded["cases"]) | set(recorded.get("writing", []))
    for case_id in case_ids:
        if (out_dir / case_id).exists() and case_id not in ours:
            raise UserError(f"{out_dir / case_id}: exists and is not a phantom of this series (not in "
                            f"{manifest.name}); phantom does not replace it, choose an empty folder")
    return recorded["cases"]
