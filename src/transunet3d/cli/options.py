"""Option types and options that several commands share."""

from __future__ import annotations

from pathlib import Path

import click

from transunet3d.data.labels import DEFAULT_SCHEME, SCHEMES

PATH = click.Path(path_type=Path)

case_workers = click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
                            help="Cases processed in parallel (one process each).")

label_scheme = click.option(
    "--labels", type=click.Choice(list(SCHEMES)), default=DEFAULT_SCHEME, show_default=True,
    help="Label scheme of the label maps: brats-mets-2023 (labels 0-3; regions WT, TC, ET) or brats-mets-2025 "
         "(adds 4, resection cavity, and its region RC).")
