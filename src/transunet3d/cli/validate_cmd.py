"""`transunet3d validate`: check a folder of BraTS cases before anything else reads it."""

from __future__ import annotations

from pathlib import Path

import click

from transunet3d.cli.options import PATH, case_workers, label_scheme
from transunet3d.data.validate import validate_cases
from transunet3d.errors import IncompleteBatch


@click.command("validate")
@click.argument("raw", type=PATH)
@case_workers
@label_scheme
def validate_command(raw: Path, workers: int, labels: str) -> None:
    """Check every BraTS case under RAW: four modalities, 3D, same grid, finite values, labels of the scheme
    (--labels: {0,1,2,3}, or {0,1,2,3,4} for brats-mets-2025)."""
    count, problems = validate_cases(raw, workers=workers, labels=labels)
    click.echo(f"{count - len(problems)} of {count} cases are valid")
    if problems:
        raise IncompleteBatch(problems)
