"""Atomic file writing: outputs appear complete under their final name or not at all.

An output is written to a hidden temporary beside it, `.{name}.{pid}@{host}.XXXXXXXX.tmp{suffix}`, and renamed when
complete. A killed process leaves its temporary behind: readers skip temporaries (`is_temporary`), and a command
that writes into a folder first removes the temporaries that dead processes of this host left there
(`remove_stale_temporaries`), and every write of a file first removes the stale temporaries of that file. The
writer's PID and host in the name tell a stale temporary from one that a process still running (a parallel run into
the same folder) is writing.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from transunet3d.errors import UserError

_TEMPORARY = re.compile(r"^\..+\.tmp(\.[A-Za-z0-9]+){0,2}$")
_WRITER = re.compile(r"\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]+)\.[^.]+\.tmp(\.[A-Za-z0-9]+){0,2}$")


def is_temporary(path: str | Path) -> bool:
    """Whether `path` names an unfinished output of `atomic_path` (never data, whether or not its writer lives)."""
    return _TEMPORARY.match(Path(path).name) is not None


def _host() -> str:
    """This machine's name as it appears in temporary names (letters, digits and dashes only)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "localhost"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's process
        return True
    return True


def _is_stale(path: Path) -> bool:
    """A temporary whose writer was a process of this host that has ended; unknown writers count as alive."""
    writer = _WRITER.search(path.name)
    return writer is not None and writer["host"] == _host() and not _process_alive(int(writer["pid"]))


def remove_stale_temporaries(folder: str | Path, recursive: bool = False) -> list[Path]:
    """Delete the temporaries that killed processes of this host left in `folder` (and below, if `recursive`).

    Temporaries of running processes and of other hosts (a shared file system) are kept: readers skip them anyway.

    Returns:
        The removed paths.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    candidates = folder.rglob(".*.tmp*") if recursive else folder.glob(".*.tmp*")
    removed = [path for path in candidates if is_temporary(path) and _is_stale(path)]
    for path in removed:
        if path.is_dir():  # an `atomic_folder`
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return removed


@contextlib.contextmanager
def scratch_folder(name: str) -> Iterator[Path]:
    """A private folder in the system's temporary directory for a command's intermediate files, removed when the
    block ends. Named `{name}.{pid}@{host}.XXXXXXXX.tmp` like a temporary, so that the folders which killed runs of
    this host left there are told from those of running ones, and removed first."""
    root = Path(tempfile.gettempdir())
    for stale in root.glob(f"{name}.*@*.tmp"):
        if stale.is_dir() and _is_stale(stale):
            shutil.rmtree(stale, ignore_errors=True)
    folder = Path(tempfile.mkdtemp(dir=root, prefix=f"{name}.{os.getpid()}@{_host()}.", suffix=".tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def exclusive_folder(path: str | Path, work: str) -> Iterator[Path]:
    """Hold an advisory lock on the folder `path` (created if needed, and removed again if the block wrote nothing
    into it) while the block runs, so that a second process that would write the same files at once is refused;
    the lock ends with the process, however it ends.

    Args:
        work: what the holder does there, for the refusal ("training").

    Raises:
        UserError: another process holds the folder.
    """
    created = [made for made in (Path(path), *Path(path).parents) if not made.exists()]  # the deepest first
    folder = output_folder(path)
    handle = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{folder}: another process is {work} into it (a run still going, or the workers of a "
                            "killed torchrun); wait for it to end or stop it") from None
        yield folder
    finally:
        os.close(handle)  # releases the lock
        for made in created:  # the work stopped before its first file
            if made.is_dir() and not any(made.iterdir()):
                made.rmdir()


def check_output_path(path: str | Path) -> None:
    """Raise UserError when a file stands where `path`'s folder, or one above it, should be, or when the nearest
    existing one is not writable (a read-only mount, another user's folder).

    Called before a command works, so that such a mistake stops it with nothing written: a command with several
    outputs checks them all first.
    """
    for folder in Path(path).parents:
        if folder.exists():
            if not folder.is_dir():
                raise UserError(f"{folder}: exists and is not a folder")
            if not os.access(folder, os.W_OK | os.X_OK):
                raise UserError(f"{folder}: folder is not writable")
            return


def prepare_output_files(*paths: str | Path | None) -> None:
    """Before a command works: stop it on a file in the way of an output's folder, a folder where an output file
    should be, or one path given for two outputs (UserError, nothing written), and remove the stale temporaries
    beside each output (`None`: an output not asked for)."""
    given = [Path(path) for path in paths if path is not None]
    for index, path in enumerate(given):
        check_output_path(path)
        if path.is_dir():
            raise UserError(f"{path}: is a folder; expected the path of a file to write")
        if any(path.resolve() == other.resolve() for other in given[:index]):
            raise UserError(f"{path}: given for two outputs; each needs its own file")
    for path in given:
        remove_stale_temporaries(path.parent)


def check_output_folder(path: str | Path) -> None:
    """Raise UserError when `path` cannot become an output folder: a file stands there or above it, or the nearest
    existing folder is not writable. Creates nothing: for a command to stop before its first line of output."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: exists and is not a folder")
    check_output_path(path)


def check_apart(out: str | Path, source: str | Path, role: str) -> None:
    """Raise UserError when the output folder `out` is the folder `source` a command reads (its `role`: "input
    folder", "preprocessed cache") or lies inside it: its outputs would be read as inputs (predictions as
    "ignored" files of the dataset, a run's folders among a cache's cases), and an input is read only."""
    out_at, source_at = Path(out).resolve(), Path(source).resolve()
    if out_at == source_at or source_at in out_at.parents:
        place = "is" if out_at == source_at else "lies inside"
        raise UserError(f"{out}: {place} the {role} {source}, which is read only; write into another folder")


def output_folder(path: str | Path) -> Path:
    """`path` as an existing folder (created if needed); a file in the way is a UserError, not a traceback."""
    check_output_folder(path)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _default_mode() -> int:
    return 0o666 & ~_umask()


def _naming(error: OSError, path: Path) -> OSError:
    """`error` as raised for the final output `path` rather than for its hidden temporary."""
    if error.errno is None:  # e.g. numpy's "N requested and M written": a short write
        return OSError(f"{path}: could not be written ({error})")
    return OSError(error.errno, os.strerror(error.errno), str(path))  # the subclass follows from errno


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed to `path` when the block succeeds, removed otherwise.

    The temporary name keeps the final suffix (e.g. `.nii.gz`) so that writers which infer the format from it work.

    Raises:
        OSError: writing failed (no space, permission denied, ...), with `path` as its file name.
    """
    path = Path(path)
    output_folder(path.parent)
    _remove_stale_temporaries_of(path)
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".gz") else path.suffix
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}@{_host()}.",
                                   suffix=f".tmp{suffix}")
        os.close(fd)
        yield Path(tmp)
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except OSError as error:
        raise _naming(error, path) from error
    finally:
        if tmp is not None and os.path.lexists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """A temporary folder beside `path` to write a folder's files into; it replaces `path` (and whatever `path`
    held) when the block succeeds and is removed otherwise, so that a folder is never seen half-written (a case
    folder without its label map reads as an unlabelled case).

    Raises:
        OSError: the folder could not be made or renamed, with `path` as its file name.
    """
    path = Path(path)
    output_folder(path.parent)
    tmp = None
    try:
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}@{_host()}.", suffix=".tmp"))
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's is 0o700
        if path.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except OSError as error:
        raise _naming(error, path) from error
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _remove_stale_temporaries_of(path: Path) -> None:
    """Delete the temporaries of `path` that killed writers of this host left: whatever writes a file again also
    clears what an interrupted write of it left, in folders no command cleans as a whole."""
    prefix = f".{path.name}."
    for candidate in path.parent.glob(f"{glob.escape(prefix)}*.tmp*"):
        own = _WRITER.fullmatch("." + candidate.name[len(prefix):])  # not the temporary of `name.bak`
        if own is not None and candidate.is_file() and _is_stale(candidate):
            candidate.unlink(missing_ok=True)


def write_json(path: str | Path, data: Any, indent: int | None = 1) -> None:
    """Atomic JSON write (compact when `indent` is None)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=indent, separators=None if indent else (",", ":")))


def read_json(path: str | Path) -> Any:
    """The content of a JSON file the package wrote (a pointer, a record, a summary, the splits).

    Raises:
        UserError: the file is missing, unreadable or not valid JSON (empty, truncated, binary), naming it.
    """
    path = Path(path)
    try:
        return parse_json(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: does not exist") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise UserError(f"{path}: damaged, not valid JSON ({error})") from None


def parse_json(text: str) -> Any:
    """JSON text whose objects name each key once: of two values for one key, `json` keeps the last without a word,
    so a file edited by hand into holding both would be read as whichever came last.

    Raises:
        ValueError: not valid JSON (json.JSONDecodeError), or a key named twice in one object.
    """
    return json.loads(text, object_pairs_hook=_unique_keys)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping: dict[str, Any] = {}
    for key, value in pairs:
        if key in mapping:
            raise ValueError(f"the key {key!r} appears twice in one object")
        mapping[key] = value
    return mapping


def sha256_of(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, as hex, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
