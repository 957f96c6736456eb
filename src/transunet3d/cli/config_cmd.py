"""`transunet3d config`: show a preset's resolved configuration (with overrides) or save it as YAML."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from transunet3d.cli.options import OUTPUT_FILE
from transunet3d.config import PRESETS, build_config, config_to_dict, save_config
from transunet3d.config.io import check_overrides, unread_overrides
from transunet3d.files import prepare_output_files


def _checked(_ctx: click.Context, _param: click.Parameter, overrides: tuple[str, ...]) -> tuple[str, ...]:
    check_overrides(overrides)
    return overrides


set_option = click.option("--set", "overrides", multiple=True, metavar="SECTION.FIELD=VALUE", callback=_checked,
                          help="Override one config field, e.g. --set train.lr=1e-3 (repeatable, each field once).")


def warn_unread(overrides: list[str], sections: tuple[str, ...], job: str) -> None:
    """A `warning:` line naming the --set keys of sections that `job` does not read (recorded, never applied)."""
    unread = unread_overrides(overrides, sections)
    if unread:
        click.echo(f"warning: --set {', '.join(unread)}: {job} does not read these settings (it reads "
                   f"{', '.join(sections)}); they are recorded in config.yaml and change nothing", err=True)


@click.command("config")
@click.option("--preset", type=click.Choice(list(PRESETS)), default=None, help="Named preset to start from.")
@set_option
@click.option("--out", type=OUTPUT_FILE, default=None, help="Write the YAML here instead of stdout.")
def config_command(preset: str | None, overrides: tuple[str, ...], out: Path | None) -> None:
    """Print the resolved experiment config of PRESET with --set overrides applied."""
    config = build_config(preset, overrides)
    if out is None:
        click.echo(yaml.safe_dump(config_to_dict(config), sort_keys=False), nl=False)
    else:
        prepare_output_files(out)
        save_config(config, out)
        click.echo(f"wrote {out}")
