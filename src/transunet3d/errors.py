"""Errors caused by what the user gave us; the CLI prints them as one line and exits with code 2."""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A mistake in the user's input or configuration (not a bug): reported without a traceback."""


class InputError(UserError):
    """A problem with one input file, named by case, file and problem."""

    def __init__(self, case: str | None, file: str | Path | None, problem: str):
        self.case = case
        self.file = Path(file).name if file is not None else None
        self.problem = problem
        super().__init__(": ".join(part for part in (case, self.file, problem) if part))


class ConfigError(UserError):
    """An unknown preset, section or field, or a value of the wrong type."""
