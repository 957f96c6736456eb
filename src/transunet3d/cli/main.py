"""Entry point of the `transunet3d` command; user errors become one line on stderr and exit code 2."""

from __future__ import annotations

import importlib

import click

from transunet3d import __version__
from transunet3d.errors import (
    EXIT_ENVIRONMENT,
    EXIT_INCOMPLETE,
    EXIT_USER_ERROR,
    IncompleteBatch,
    MissingPackage,
    UserError,
    describe_os_error,
    out_of_memory,
)
from transunet3d.memory import keep_freed_memory

# Each command's module, imported only when the command runs (or `--help` lists them all): `transunet3d evaluate`
# and `--version` do not pay for torch, matplotlib and the models at start-up.
_COMMANDS = {
    "phantom": "phantom_cmd:phantom_command",
    "validate": "validate_cmd:validate_command",
    "preprocess": "preprocess_cmd:preprocess_command",
    "splits": "splits_cmd:splits_command",
    "evaluate": "evaluate_cmd:evaluate_command",
    "model-info": "model_cmd:model_info_command",
    "train": "train_cmd:train_command",
    "pretrain": "pretrain_cmd:pretrain_command",
    "crossval": "crossval_cmd:crossval_command",
    "tune": "tune_cmd:tune_command",
    "predict": "predict_cmd:predict_command",
    "demo": "demo_cmd:demo_command",
    "report": "demo_cmd:report_command",
    "config": "config_cmd:config_command",
    "export": "deploy_cmds:export_command",
    "container": "deploy_cmds:container_command",
    "challenge-entry": "deploy_cmds:challenge_entry_command",
}

# Commands that run networks on large CPU tensors, for which glibc's heap is tuned (memory.py).
_TENSOR_COMMANDS = {"train", "pretrain", "predict", "crossval", "demo", "challenge-entry"}


class _Commands(click.Group):
    """A click group that applies the error policy of `transunet3d.errors` to every command and imports each
    command's module when it is first asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in _COMMANDS:
            return None
        module, attribute = _COMMANDS[name].split(":")
        return getattr(importlib.import_module(f"transunet3d.cli.{module}"), attribute)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        """Also note whether the command is only asked for its help, which runs nothing (see `cli`)."""
        ctx.meta["help_only"] = any(arg in ctx.help_option_names for arg in args[1:])
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.UsageError as error:  # a command's options: one line too, not click's usage block
            command = error.ctx.command_path if error.ctx is not None else ctx.command_path
            click.echo(f"error: {error.format_message()} (see `{command} --help`)", err=True)
            ctx.exit(EXIT_USER_ERROR)
        except UserError as error:
            click.echo(f"error: {error}", err=True)
            ctx.exit(EXIT_USER_ERROR)
        except IncompleteBatch as incomplete:
            for message in incomplete.failed.values():
                click.echo(f"error: {message}", err=True)
            click.echo(f"failed cases ({len(incomplete.failed)}): {', '.join(incomplete.failed)}", err=True)
            ctx.exit(EXIT_INCOMPLETE)
        except OSError as error:  # disk full, permission denied, ...: the environment, not a bug
            click.echo(f"error: {describe_os_error(error)}", err=True)
            ctx.exit(EXIT_ENVIRONMENT)
        except MissingPackage as error:
            click.echo(f"error: {error}", err=True)
            ctx.exit(EXIT_ENVIRONMENT)
        except (MemoryError, RuntimeError) as error:  # the machine's limit, met by a setting: no traceback
            what = out_of_memory(error)
            if what is None:
                raise
            click.echo(f"error: out of memory ({what}): choose a smaller patch (train.patch_size), batch "
                       "(loop.batch_size), window batch (--batch-windows) or grid, or a machine with more memory",
                       err=True)
            ctx.exit(EXIT_ENVIRONMENT)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="transunet3d")
@click.option("--release-freed-memory", is_flag=True,
              help="Leave glibc's default of returning large freed blocks to the system (slower CPU training and "
                   "prediction, lower resident memory between steps).")
@click.pass_context
def cli(ctx: click.Context, release_freed_memory: bool) -> None:
    """3D-TransUNet for brain metastases segmentation in multi-parametric MRI (BraTS-METS)."""
    runs_networks = ctx.invoked_subcommand in _TENSOR_COMMANDS and not ctx.meta.get("help_only")
    if runs_networks and not release_freed_memory and keep_freed_memory():
        # On stdout with the command's other notes: stderr holds warnings, errors and progress only, so that a
        # refused command says one `error:` line there.
        click.echo("memory: freed blocks are kept for reuse (glibc mallopt; --release-freed-memory turns it off)")


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="transunet3d")
