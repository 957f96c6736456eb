"""Atomic file writing: outputs appear complete under their final name or not at all."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from transunet3d.errors import UserError


def output_folder(path: str | Path) -> Path:
    """`path` as an existing folder (created if needed); a file in the way is a UserError, not a traceback."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: exists and is not a folder")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed to `path` when the block succeeds, removed otherwise.

    The temporary name keeps the final suffix (e.g. `.nii.gz`) so that writers which infer the format from it work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".gz") else path.suffix
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{suffix}")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: str | Path, data: Any, indent: int | None = 1) -> None:
    """Atomic JSON write (compact when `indent` is None)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=indent, separators=None if indent else (",", ":")))
