"""Tiny hand-made BraTS cases written as NIfTI, for tests."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from transunet3d import files

MODALITIES = ("t1n", "t1c", "t2w", "t2f")
SHAPE = (12, 14, 10)
PIXDIM_OFFSET = 76  # byte offset of pixdim[0] in a NIfTI-1 header
# For tests of training's files, resume, folds and plumbing rather than of learning: 64 x 64 x 32 patches, half the
# voxels of the tiny presets' 64^3 (a step 0.47 against 1.05 s), with a bottleneck of more than one voxel and a
# square axial plane, as the models and flip+rot need.
SMALL_PATCHES = ("--set", "train.patch_size=[64,64,32]")


def brain_case_arrays(shape=SHAPE, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(4, X, Y, Z) float images that are zero outside an off-centre box 'brain', and a label map inside it."""
    rng = np.random.default_rng(seed)
    image = np.zeros((4, *shape), dtype=np.float32)
    image[:, 2:10, 3:12, 1:8] = rng.uniform(50, 500, size=(4, 8, 9, 7))
    seg = np.zeros(shape, dtype=np.uint8)
    seg[4:8, 5:9, 3:6] = 2
    seg[5:7, 6:8, 4:5] = 3
    seg[5, 6, 4] = 1
    return image, seg


def with_cavity(seg: np.ndarray, depth: int = 2) -> np.ndarray:
    """`seg` with a resection cavity (label 4, brats-mets-2025) beside its largest lesion: the background voxels
    within `depth` voxels of the lesion on its side of higher x, as a cavity left where part of it was removed."""
    from scipy import ndimage

    components, count = ndimage.label(seg > 0, structure=np.ones((3, 3, 3), dtype=bool))
    if count == 0:
        raise ValueError("no lesion to put a cavity beside")
    lesion = components == 1 + np.argmax(np.bincount(components.ravel())[1:])
    beside = ndimage.binary_dilation(lesion, iterations=depth) & (seg == 0)
    beside[: int(np.ceil(np.argwhere(lesion)[:, 0].mean()))] = False
    cavity = seg.copy()
    cavity[beside] = 4
    return cavity


def add_cavities(root: Path) -> list[Path]:
    """Give the label map of every case under `root` a cavity beside its largest lesion (`with_cavity`), keeping
    its geometry; returns the label maps changed."""
    changed = []
    for path in sorted(root.rglob("*-seg.nii.gz")):
        image = nib.load(path)
        seg = np.asanyarray(image.dataobj).astype(np.uint8)
        nib.save(nib.Nifti1Image(with_cavity(seg), image.affine, image.header), path)
        changed.append(path)
    return changed


def write_volume(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), path)
    return path


def set_pixdim(path: Path, spacing: tuple[float, float, float]) -> Path:
    """Overwrite the voxel size (pixdim[1:4]) stored in a NIfTI-1 file's header, bypassing nibabel, which would
    'fix' a zero or negative value on saving."""
    data = path.read_bytes()
    gzipped = path.name.endswith(".gz")
    header = bytearray(gzip.decompress(data) if gzipped else data)
    header[PIXDIM_OFFSET + 4: PIXDIM_OFFSET + 16] = np.asarray(spacing, dtype="<f4").tobytes()
    path.write_bytes(gzip.compress(bytes(header)) if gzipped else bytes(header))
    return path


def write_case(root: Path, case_id: str = "BraTS-MET-00001-000", seed: int = 0, with_seg: bool = True,
               folder: bool = True, affine: np.ndarray | None = None) -> Path:
    """A valid case in the BraTS layout (a case folder, or flat in `root` when `folder` is False)."""
    image, seg = brain_case_arrays(seed=seed)
    directory = root / case_id if folder else root
    for channel, modality in enumerate(MODALITIES):
        write_volume(directory / f"{case_id}-{modality}.nii.gz", image[channel], affine)
    if with_seg:
        write_volume(directory / f"{case_id}-seg.nii.gz", seg, affine)
    return directory


def write_two_case_cache(root: Path) -> Path:
    """root/raw with two hand-made cases (`write_case`, seeds 1 and 2) and root/pre, their preprocessed cache."""
    from transunet3d.data.preprocess import preprocess_dataset

    for number in (1, 2):
        write_case(root / "raw", f"BraTS-MET-0000{number}-000", seed=number)
    preprocess_dataset(root / "raw", root / "pre", progress=False)
    return root / "pre"


def write_run(folder: Path, preset: str = "tiny", seed: int = 0, epoch: int | None = None,
              overrides: tuple[str, ...] = ()) -> Path:
    """A model folder as `transunet3d train` leaves it (config with `--set`-style `overrides`, latest checkpoint),
    with random weights."""
    import torch

    from transunet3d.config import build_config, save_config
    from transunet3d.files import write_json
    from transunet3d.models import model_from_config
    from transunet3d.runs.layout import ModelFolder
    from transunet3d.training.checkpoint import save_checkpoint

    model = ModelFolder(folder)
    config = build_config(preset, overrides)
    save_config(config, model.config)
    torch.manual_seed(seed)
    network = model_from_config(config)
    epoch = config.loop.epochs if epoch is None else epoch
    save_checkpoint(model.epoch_checkpoint(epoch), network, {"trainer": {"epoch": epoch}})
    write_json(model.latest_pointer, {"folder": model.epoch_checkpoint(epoch).name, "epoch": epoch})
    return folder


def dead_pid() -> int:
    """The PID of a process that has ended (reaped, so no longer alive)."""
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


def temporary(folder: Path, name: str, pid: int, host: str | None = None) -> Path:
    """A temporary as `atomic_path` names it, written by process `pid` of `host` (this host by default)."""
    suffix = ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix
    path = folder / f".{name}.{pid}@{host or files._host()}.abcd1234.tmp{suffix}"
    path.write_bytes(b"")
    return path


# One small phantom stored as acquired at other axis orders and voxel sizes: the same head at 2 mm in RAS, with its
# axes in two other orders, and at 0.5x0.5x1 and 1x1x3 of its voxel size.
VARIANT_SPEC = {"shape": (40, 48, 40), "spacing": (2.0, 2.0, 2.0), "lesions": (3, 5), "diameter_mm": (6.0, 20.0)}
VARIANTS = {"ras": {}, "lps": {"axis_codes": "LPS"}, "psr": {"axis_codes": "PSR"},
            "fine": {"voxel_size": (1.0, 1.0, 2.0)}, "thick": {"voxel_size": (2.0, 2.0, 6.0)}}


def write_phantom_variants(root: Path) -> dict[str, Path]:
    """Each variant of the phantom as a one-case dataset folder `root/<name>`."""
    from transunet3d.data.phantom import PhantomSpec, Variant, write_phantoms

    for name, variant in VARIANTS.items():
        write_phantoms(root / name, cases=1, seed=7, spec=PhantomSpec(**VARIANT_SPEC),
                       variant=Variant(**variant) if variant else None, progress=False)
    return {name: root / name for name in VARIANTS}
