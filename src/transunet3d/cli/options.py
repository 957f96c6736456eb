"""Option types and options that several commands share."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import click

from transunet3d.data.labels import DEFAULT_SCHEME, SCHEMES

PATH = click.Path(path_type=Path)


class OutputFile(click.Path):
    """The path of a file to write: a name ending in a separator means a folder, which `Path` would silently drop
    (`--out results/` wrote a file named results)."""

    def __init__(self):
        super().__init__(path_type=Path)

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value.endswith(("/", os.sep)):
            self.fail(f"{value!r} ends in a folder separator; give a file name", param, ctx)
        return super().convert(value, param, ctx)


OUTPUT_FILE = OutputFile()


class FiniteRange(click.FloatRange):
    """click's FloatRange without NaN and infinity, which its comparisons let through (`--step nan` passed
    `(0, 1]`, `--min-lesion-mm3 inf` passed `>= 0`)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number

case_workers = click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
                            help="Cases processed in parallel (one process each).")

label_scheme = click.option(
    "--labels", type=click.Choice(list(SCHEMES)), default=DEFAULT_SCHEME, show_default=True,
    help="Label scheme of the label maps: brats-mets-2023 (labels 0-3; regions WT, TC, ET) or brats-mets-2025 "
         "(adds 4, resection cavity, and its region RC).")
