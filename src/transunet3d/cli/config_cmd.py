"""`transunet3d config`: show a preset's resolved configuration (with overrides) or save it as YAML."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from transunet3d.cli.options import OUTPUT_FILE
from transunet3d.config import PRESETS, build_config, config_to_dict, save_config
from transunet3d.config.io import check_overrides, parse_override, unread_overrides
from transunet3d.config.schema import ExperimentConfig
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


def warn_unapplied(path: Path, saved: ExperimentConfig, given: ExperimentConfig, preset: str | None,
                   overrides: tuple[str, ...], options: tuple[str, ...] = ()) -> None:
    """A `warning:` line naming the --preset, the `options` (`--init-encoder`: model.init_encoder) and the --set
    settings given that differ from a resumed run's saved config, which it continues with."""
    keys = dict.fromkeys(parse_override(item)[0] for item in overrides)
    differing = [key for key in keys if _value(saved, key) != _value(given, key)]
    if "--init-encoder" in options and given.model.init_encoder != saved.model.init_encoder:
        differing.insert(0, f"--init-encoder {given.model.init_encoder}")
    if preset is not None and preset != saved.preset:
        differing.insert(0, f"--preset {preset}")
    if differing:
        shown = ", ".join(differing[:4]) + (", ..." if len(differing) > 4 else "")
        click.echo(f"warning: {path}: --resume continues with the run's saved config.yaml; the given {shown} "
                   "are not applied (train into another --out to change them)", err=True)


def _value(config: ExperimentConfig, key: str) -> object:
    section, _, name = key.partition(".")
    return getattr(getattr(config, section), name)


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
