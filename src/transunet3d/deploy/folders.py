"""Output folders of deployment, which appear whole or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from transunet3d.errors import UserError
from transunet3d.files import check_output_path


def check_new_folder(path: Path, what: str) -> None:
    """UserError unless `path` is new or an empty folder (checked before any work, so nothing is written)."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UserError(f"{path}: exists and is not an empty folder; write the {what} into a new one")
    check_output_path(path)


@contextlib.contextmanager
def building_folder(out_dir: Path) -> Iterator[Path]:
    """A hidden temporary folder beside `out_dir` (a new or empty folder), renamed to it when the block succeeds,
    removed otherwise."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.", suffix=".tmp"))
    try:
        yield building
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(building, 0o777 & ~umask)  # mkdtemp's folder is private; the result is not
        if out_dir.exists():
            out_dir.rmdir()  # empty, as checked before
        os.replace(building, out_dir)
    finally:
        shutil.rmtree(building, ignore_errors=True)
