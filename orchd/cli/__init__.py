"""The ``orchd`` command line (entry layer): one module per command group."""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Any

import click

from orchd import __version__
from orchd.errors import InternalError, Interrupted, OrchdError

from .context import Config


def report(error: OrchdError) -> None:
    """Print an error and its hint to stderr, the way every orchd command does."""
    click.echo(f"orchd: error: {error.message}", err=True)
    if error.hint_text:
        click.echo(f"hint: {error.hint_text}", err=True)


class OrchdGroup(click.Group):
    """Turns orchd errors into a message, a hint and the error's exit code; Ctrl-C into exit 130
    with one line (a long command says what was done through ``interruptible``)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            stopped = Interrupted(detail="stopped before it finished")
            report(stopped)
            ctx.exit(stopped.exit_code)
        except OrchdError as error:
            report(error)
            ctx.exit(error.exit_code)
        except BrokenPipeError:  # the reader went away (orchd jobs list | head): not a bug
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(141)  # as a shell reports a process ended by SIGPIPE
        except Exception as exc:  # the edge: anything unexpected is a bug, said plainly
            traceback.print_exc()
            bug = InternalError(detail=f"{type(exc).__name__}: {exc}")
            report(bug)
            ctx.exit(bug.exit_code)


@click.group(cls=OrchdGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="orchd")
@click.option(
    "--state-dir",
    envvar="ORCHD_STATE_DIR",
    default="/var/lib/orchd",
    show_default=True,
    # not checked for readability here: an operator may reach the daemon only through its socket
    type=click.Path(file_okay=False, readable=False, path_type=Path),
    help="Directory of this site's ledger, lock and spool [env ORCHD_STATE_DIR].",
)
@click.option(
    "--policy-dir",
    envvar="ORCHD_POLICY_DIR",
    default="/etc/orchd/policies",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory of policy files (*.yaml) [env ORCHD_POLICY_DIR].",
)
@click.option(
    "--config",
    "config_path",
    envvar="ORCHD_CONFIG",
    default="/etc/orchd/orchd.yaml",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The daemon configuration file (see docs/CONFIG.md) [env ORCHD_CONFIG].",
)
@click.option(
    "--socket",
    "socket_path",
    envvar="ORCHD_SOCKET",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The daemon's control socket (default: the one the state dir's site.json names, else "
    "STATE_DIR/orchd.sock; /run/orchd/orchd.sock for the default state dir). Whoever answers "
    "there must serve the state dir's site [env ORCHD_SOCKET].",
)
@click.pass_context
def cli(
    ctx: click.Context,
    state_dir: Path,
    policy_dir: Path,
    config_path: Path,
    socket_path: Path | None,
) -> None:
    """orchd: an offline-first job orchestrator for air-gapped sites."""
    source = ctx.get_parameter_source("config_path")
    ctx.obj = Config(
        state_dir=state_dir.absolute(),
        policy_dir=policy_dir.absolute(),
        config_path=config_path.absolute(),
        config_explicit=source is not None and source.name != "DEFAULT",
        socket_path=None if socket_path is None else socket_path.absolute(),
    )


def main() -> None:
    cli(prog_name="orchd")


from . import (  # noqa: E402
    audit,
    backfill,
    bundle,
    completion,
    doctor,
    jobs,
    keys,
    ledger,
    metrics,
    policy,
    quota,
    replay,
    run,
    site,
    sources,
    status,
    work,
)

__all__ = [
    "audit",
    "backfill",
    "bundle",
    "cli",
    "completion",
    "doctor",
    "jobs",
    "keys",
    "ledger",
    "main",
    "metrics",
    "policy",
    "quota",
    "replay",
    "run",
    "site",
    "sources",
    "status",
    "work",
]
