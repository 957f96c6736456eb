"""Find BraTS cases on disk: case folders (`BraTS-MET-00001-000/BraTS-MET-00001-000-t1c.nii.gz`) or a flat folder."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from transunet3d.config.schema import MODALITIES
from transunet3d.errors import InputError, warn_input
from transunet3d.files import is_temporary

CASE_ID = re.compile(r"BraTS-[A-Za-z]+-\d{5}-\d{3}")
CASE_FILE = re.compile(rf"^(?P<case>{CASE_ID.pattern})-(?P<kind>{'|'.join(MODALITIES)}|seg)\.nii(\.gz)?$")
NIFTI_NAME = re.compile(r"\.nii(\.gz)?$", re.IGNORECASE)  # any name a NIfTI file goes by


@dataclass(frozen=True)
class CaseFiles:
    """The files of one case: `images` maps modality to path (possibly incomplete: see `check_complete`)."""

    case_id: str
    images: dict[str, Path] = field(default_factory=dict)
    seg: Path | None = None

    def expected_name(self, kind: str) -> str:
        """The BraTS file name of modality (or "seg") `kind` for this case."""
        return f"{self.case_id}-{kind}.nii.gz"

    def check_complete(self) -> None:
        """Raise InputError naming the first missing modality."""
        for modality in MODALITIES:
            if modality not in self.images:
                raise InputError(self.case_id, self.expected_name(modality), f"missing modality {modality}")

    def image_paths(self) -> list[Path]:
        """The modality files in channel order (t1n, t1c, t2w, t2f)."""
        self.check_complete()
        return [self.images[m] for m in MODALITIES]


def entries_under(root: str | Path) -> Iterator[Path]:
    """Every folder and file under `root` (not `root` itself), following symlinked folders: a dataset assembled
    from links to case folders (`ln -s /data/BraTS-MET-* input/`) is read whole, where `Path.rglob` skips the
    linked folders without a word. Each real folder is entered once, so a link loop ends and a folder linked twice
    is read once. A dangling link is yielded as it is, for its reader to name."""
    seen: set[str] = set()
    for folder, folders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            folders[:] = []
            continue
        seen.add(real)
        folders[:] = sorted(name for name in folders if not is_temporary(name))  # a folder being written
        for name in [*folders, *files]:
            yield Path(folder) / name


def _warn_ignored(root: Path, paths: list[Path]) -> None:
    """One `warning:` line for the NIfTI files under `root` that belong to no case (a folder `case2` of
    `case2-t1n.nii.gz`, an upper-case `.NII.GZ`, a `-t1.nii.gz`): a case named otherwise was left out without a
    word."""
    shown = ", ".join(str(path.relative_to(root)) for path in paths[:3])
    warn_input(None, None, f"{root}: {len(paths)} NIfTI file(s) not named as a BraTS case's "
                           f"(CASE-{{{','.join(MODALITIES)},seg}}.nii.gz, CASE like BraTS-MET-00001-000) are "
                           f"ignored: {shown}{', ...' if len(paths) > 3 else ''}")


def patient_id(case_id: str) -> str:
    """`BraTS-MET-00001-000` -> `BraTS-MET-00001`: time points of one patient share it."""
    return case_id.rsplit("-", 1)[0]


def discover_cases(root: str | Path) -> list[CaseFiles]:
    """All cases under `root` (searched recursively), sorted by case id.

    A case folder without any case file is a case with every modality missing (reported as such by whoever
    reads it), not nothing.

    Raises:
        InputError: the path does not exist, is not a folder, holds no BraTS case, holds one file twice, or a
            case folder holds a file of another case.
    """
    root = Path(root)
    if not root.exists():
        raise InputError(None, None, f"{root}: path does not exist")
    if not root.is_dir():
        raise InputError(None, None, f"{root}: not a folder")
    found: dict[str, dict[str, Path]] = {}
    entries = sorted(entries_under(root))
    ignored = []
    for path in entries:
        match = CASE_FILE.match(path.name)
        if path.is_dir() or is_temporary(path) or path.name.startswith("."):
            continue
        if match is None:
            if NIFTI_NAME.search(path.name):
                ignored.append(path)
            continue
        if CASE_ID.fullmatch(path.parent.name) and path.parent.name != match["case"]:
            raise InputError(match["case"], path, f"lies in the folder of case {path.parent.name}")
        kinds = found.setdefault(match["case"], {})
        if match["kind"] in kinds:
            raise InputError(match["case"], path, f"duplicate of {kinds[match['kind']]}")
        kinds[match["kind"]] = path
    for folder in entries:
        if folder.is_dir() and CASE_ID.fullmatch(folder.name):
            found.setdefault(folder.name, {})
    if not found:
        example = "BraTS-MET-00001-000-t1c.nii.gz"
        raise InputError(None, None, f"{root}: no BraTS cases found (expected files like {example})")
    if ignored:
        _warn_ignored(root, ignored)
    return [
        CaseFiles(case_id, {m: kinds[m] for m in MODALITIES if m in kinds}, kinds.get("seg"))
        for case_id, kinds in sorted(found.items())
    ]
