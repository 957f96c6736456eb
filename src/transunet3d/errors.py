"""The error policy of every command: what is reported how, and with which exit code.

- A mistake in what the user gave (a bad option or setting, a missing or damaged file or folder) is a `UserError`:
  one line `error: <file or setting>: <problem>` on stderr, no traceback, exit code `EXIT_USER_ERROR` (2), and
  nothing is written (settings are checked before a command creates any output).
- The environment failing (no space left, permission denied, a read-only folder) is one `error:` line naming the
  file that could not be written, exit code `EXIT_ENVIRONMENT` (1); so is an optional package that a command needs
  and the environment lacks (`MissingPackage`, e.g. onnxruntime for `predict --backend onnxruntime`).
- Commands that work case by case (validate, preprocess, predict, evaluate) report a broken case and go on with the
  others; at the end they list every failed case and exit with `EXIT_INCOMPLETE` (3), raised as `IncompleteBatch`.
- A warning (something odd that does not change the result) is one `warning:` line; library warnings are turned
  into such lines or dropped, never shown as raw library text.
- Anything else is a bug: a traceback, exit code 1.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from tqdm import tqdm

EXIT_ENVIRONMENT = 1
EXIT_USER_ERROR = 2
EXIT_INCOMPLETE = 3


def describe_os_error(error: OSError) -> str:
    """`file: problem` (e.g. `out/a.npy: no space left on device`) for the environment's failures, whose own text
    (`[Errno 28] No space left on device: 'out/a.npy'`) reads like a traceback's last line."""
    if error.strerror and error.filename:
        return f"{error.filename}: {error.strerror[0].lower()}{error.strerror[1:]}"
    return str(error)


def out_of_memory(error: BaseException) -> str | None:
    """What ran out of memory, for a MemoryError or torch's (a CUDA OutOfMemoryError, the CPU allocator's
    RuntimeError); None for any other error."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
        return text
    if isinstance(error, RuntimeError) and "can't allocate memory" in str(error):
        return text.split("] ")[-1]  # the allocator's "[enforce fail at alloc_cpu.cpp:...] " prefix
    return None


class UserError(Exception):
    """A mistake in the user's input or configuration (not a bug): reported without a traceback."""


def _naming(case: str | None, file: str | Path | None, problem: str) -> str:
    """`case: file name: problem`, leaving out the parts that are not known."""
    return ": ".join(part for part in (case, Path(file).name if file is not None else None, problem) if part)


class InputError(UserError):
    """A problem with one input file, named by case, file and problem."""

    def __init__(self, case: str | None, file: str | Path | None, problem: str):
        self.case = case
        self.file = Path(file).name if file is not None else None
        self.problem = problem
        super().__init__(_naming(case, file, problem))

    def __reduce__(self):
        """Pickle by the three parts, so that an error raised in a worker process reaches the parent whole."""
        return type(self), (self.case, self.file, self.problem)


class MissingPackage(Exception):
    """An optional package that a command needs is not installed: the environment's problem, not the input's."""

    def __init__(self, package: str, purpose: str, install: str):
        self.parts = (package, purpose, install)
        super().__init__(f"{package} is not installed; {purpose} needs it ({install})")

    def __reduce__(self):
        """Pickle by the three parts, so that one raised in a worker process reaches the parent whole."""
        return type(self), self.parts


class ConfigError(UserError):
    """An unknown preset, section or field, or a value of the wrong type or out of range."""


class IncompleteBatch(Exception):
    """A case-by-case command finished, but these cases failed: {case id: message}, listed at the end."""

    def __init__(self, failed: Mapping[str, str]):
        self.failed = dict(failed)
        super().__init__(f"{len(self.failed)} case(s) failed: {', '.join(self.failed)}")


def warn_input(case: str | None, file: str | Path | None, problem: str) -> None:
    """Report something odd in one input file that does not change the result: one `warning:` line on stderr.

    Written where the file is read, so that a worker process reports it too (its stderr is the command's), and
    above the progress bar of the process, which tqdm then draws again.
    """
    tqdm.write(f"warning: {_naming(case, file, problem)}", file=sys.stderr)
