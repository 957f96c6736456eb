"""Entry point of the `transunet3d` command; user errors become one line on stderr and exit code 2."""

from __future__ import annotations

import click

from transunet3d import __version__
from transunet3d.cli.config_cmd import config_command
from transunet3d.cli.crossval_cmd import crossval_command
from transunet3d.cli.data_cmds import phantom_command, preprocess_command, splits_command, validate_command
from transunet3d.cli.demo_cmd import demo_command, report_command
from transunet3d.cli.deploy_cmds import challenge_entry_command, container_command, export_command
from transunet3d.cli.evaluate_cmd import evaluate_command
from transunet3d.cli.model_cmd import model_info_command
from transunet3d.cli.predict_cmd import predict_command
from transunet3d.cli.pretrain_cmd import pretrain_command
from transunet3d.cli.train_cmd import train_command
from transunet3d.cli.tune_cmd import tune_command
from transunet3d.errors import (
    EXIT_ENVIRONMENT,
    EXIT_INCOMPLETE,
    EXIT_USER_ERROR,
    IncompleteBatch,
    MissingPackage,
    UserError,
    describe_os_error,
)
from transunet3d.memory import keep_freed_memory

# Commands that run networks on large CPU tensors, for which glibc's heap is tuned (memory.py).
_TENSOR_COMMANDS = {"train", "pretrain", "predict", "crossval", "demo", "challenge-entry"}


class _Commands(click.Group):
    """A click group that applies the error policy of `transunet3d.errors` to every command."""

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


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="transunet3d")
@click.option("--release-freed-memory", is_flag=True,
              help="Leave glibc's default of returning large freed blocks to the system (slower CPU training and "
                   "prediction, lower resident memory between steps).")
@click.pass_context
def cli(ctx: click.Context, release_freed_memory: bool) -> None:
    """3D-TransUNet for brain metastases segmentation in multi-parametric MRI (BraTS-METS)."""
    if ctx.invoked_subcommand in _TENSOR_COMMANDS and not release_freed_memory and keep_freed_memory():
        click.echo("memory: freed blocks are kept for reuse (glibc mallopt; --release-freed-memory turns it off)",
                   err=True)


for command in (phantom_command, validate_command, preprocess_command, splits_command, evaluate_command,
                model_info_command, train_command, pretrain_command, crossval_command, tune_command, predict_command,
                demo_command, report_command, config_command, export_command, container_command,
                challenge_entry_command):
    cli.add_command(command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="transunet3d")
