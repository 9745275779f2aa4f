"""The ``orchd`` command line (entry layer): one module per command group.

The commands' modules are imported when a command is run (``RootGroup``), so ``orchd
--version`` and ``orchd --help`` import none of the heavy libraries (SQLite, zstd, Ed25519,
YAML, APScheduler, watchdog): ``COMMANDS`` names each top-level command's module and the first
paragraph of its help, which ``orchd --help`` lists (``tests/unit/test_cli_start.py`` checks both
against the commands themselves). The daemon and the tools that walk every command call
``load_all``.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import click

from orchd import __version__
from orchd.errors import InternalError, Interrupted, OrchdError

COMMANDS: dict[str, tuple[str, str]] = {  # command -> (its module, its help's first paragraph)
    "audit": (
        "audit",
        ("Read and check the audit trail: who changed what, why, under which ticket."),
    ),
    "backfill": (
        "backfill",
        ("Create the jobs of every slot of SCHEDULE between --from and --to the ledger lacks."),
    ),
    "bundle": (
        "bundle",
        ("Offline Kit state bundles: signed, compressed files carried across the air gap."),
    ),
    "completion": (
        "completion",
        (
            "Print the completion script for SHELL. Install it with, for bash, "
            "``orchd completion bash > /etc/bash_completion.d/orchd``; for zsh, "
            "into a file named _orchd on $fpath; for fish, ``> "
            "~/.config/fish/completions/orchd.fish``."
        ),
    ),
    "console": (
        "console",
        (
            "Open the web console: a link on a loopback port to the daemon's pages "
            "(needs orch:read; Ctrl-C closes the port)."
        ),
    ),
    "doctor": (
        "doctor",
        (
            "Check the state dir and key permissions, the ledger, the trust store, "
            "the policy (with authz.yaml), the job programs, free disk, the clock "
            "and the daemon's socket; print each finding with its fix. Exits non-"
            "zero when anything fails."
        ),
    ),
    "init": (
        "site",
        (
            "Create the state dir, the ledger and the signing key of a new site "
            "(never overwrites); with --restore, rebuild a lost one from bundles "
            '(docs/ARCHITECTURE.md, "Resume").'
        ),
    ),
    "events": (
        "events",
        "The site's committed events, as a stream.",
    ),
    "help": (
        "help",
        (
            "Show the help of COMMAND (of orchd itself without one): orchd help jobs "
            "submit is orchd jobs submit --help."
        ),
    ),
    "jobs": ("jobs", "Submit and inspect jobs."),
    "keys": ("keys", "The site's Ed25519 signing key and the keys it trusts for its peers."),
    "ledger": ("ledger", "Check and maintain the event log and its projections."),
    "metrics": (
        "metrics",
        (
            "Print the metrics a Prometheus server scrapes (the daemon serves the "
            "same text at GET /metrics on its socket, and on metrics_listen when "
            "configured)."
        ),
    ),
    "policy": ("policy", "Work with the policy files (job types, schedules, quotas)."),
    "quota": ("quota", "Quotas: the policy's defaults and operators' overrides."),
    "replay": (
        "replay",
        ("Replay JOB_IDS, or every --type job in --state since --since, as new jobs."),
    ),
    "run": (
        "run",
        (
            "Run the daemon in the foreground: schedules, spool intake and the "
            "engine (systemd Type=notify; READY=1 once it serves). Settings: "
            "docs/CONFIG.md; flags win."
        ),
    ),
    "schedules": ("schedules", "What runs next: each schedule's next and last slot."),
    "sources": ("sources", "Pause and resume sources (paused sources start no runs here)."),
    "status": (
        "status",
        ("Queues by state, running and throttled jobs, recent failures, freshness per source."),
    ),
    "work": (
        "work",
        ("Run the site's jobs in this process (holding the site lock), as the daemon would."),
    ),
    "worker": ("worker", "Run remote jobs of SITE on this host, pulled over NATS JetStream."),
    "workers": (
        "workers",
        (
            "The remote workers: the job types each may claim, and as the daemon last heard "
            "from them (version, concurrency, last heartbeat, runs held now)."
        ),
    ),
}


JSON_KEY = "orchd.json"  # ctx.meta: the command line asked for --json (errors in JSON too)


def report(error: OrchdError, as_json: bool = False) -> None:
    """Print an error and its hint to stderr, the way every orchd command does; with ``--json``
    one JSON object: ``error``, ``code`` (the exit code), ``hint`` and ``kind`` (its name)."""
    if as_json:
        click.echo(json.dumps(error.to_json(), ensure_ascii=False), err=True)
        return
    click.echo(f"orchd: error: {error.message}", err=True)
    if error.hint_text:
        click.echo(f"hint: {error.hint_text}", err=True)


def report_usage(error: click.ClickException) -> None:
    """A usage error (exit 2) as one JSON object on stderr, as ``report`` writes orchd's."""
    where = getattr(error, "ctx", None)
    hint = f"see '{where.command_path} --help'" if where is not None else "see 'orchd --help'"
    said = {"error": error.format_message(), "code": error.exit_code, "hint": hint}
    click.echo(json.dumps(said | {"kind": type(error).__name__}, ensure_ascii=False), err=True)


def wants_json(args: list[str]) -> bool:
    """``--json`` among the words before ``--``: the caller reads errors as JSON too."""
    return "--json" in (args[: args.index("--")] if "--" in args else args)


class OrchdGroup(click.Group):
    """Turns orchd errors into a message, a hint and the error's exit code (with ``--json``, one
    JSON object on stderr, usage errors too); Ctrl-C into exit 130 with one line (a long command
    says what was done through ``interruptible``)."""

    def invoke(self, ctx: click.Context) -> Any:
        as_json = bool(ctx.meta.get(JSON_KEY))
        try:
            return super().invoke(ctx)
        except click.exceptions.ClickException as error:
            if not as_json:
                raise
            report_usage(error)
            ctx.exit(error.exit_code)
        except (click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            stopped = Interrupted(detail="stopped before it finished")
            report(stopped, as_json)
            ctx.exit(stopped.exit_code)
        except OrchdError as error:
            report(error, as_json)
            ctx.exit(error.exit_code)
        except BrokenPipeError:  # the reader went away (orchd jobs list | head): not a bug
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(141)  # as a shell reports a process ended by SIGPIPE
        except Exception as exc:  # the edge: anything unexpected is a bug, said plainly
            traceback.print_exc()
            bug = InternalError(detail=f"{type(exc).__name__}: {exc}")
            report(bug, as_json)
            ctx.exit(bug.exit_code)


class RootGroup(OrchdGroup):
    """``orchd`` itself: a command's module is imported when the command is looked up."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        as_json = wants_json(args)
        try:
            ctx = super().make_context(info_name, args, parent, **extra)
        except click.exceptions.ClickException as error:
            if not as_json:
                raise
            report_usage(error)
            raise click.exceptions.Exit(error.exit_code) from None
        ctx.meta[JSON_KEY] = as_json
        return ctx

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            importlib.import_module(f"{__name__}.{COMMANDS[cmd_name][0]}")
        found = super().get_command(ctx, cmd_name)
        if found is not None and found.epilog is None:  # not dressed yet
            dress(found, cmd_name)
        return found

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands and their help's first paragraph, from ``COMMANDS``: nothing imported."""
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [  # as click shortens a command's help: a stand-in command of that help
            (name, click.Command(name, help=text).get_short_help_str(limit))
            for name, (_, text) in COMMANDS.items()
        ]
        with formatter.section("Commands"):
            formatter.write_dl(sorted(rows))


def examples_text(path: str) -> str:
    """A command's examples (``examples.EXAMPLES``), as the last part of its help: each line
    kept as it is (click's ``\\b``), what it does as a comment above it."""
    from .examples import EXAMPLES  # plain data

    lines = ["\b", "Examples:"]
    for line, what in EXAMPLES.get(path, ()):
        lines += [f"  # {what}", f"  {line}"]
    return "\n".join(lines)


def dress(command: click.Command, path: str) -> None:
    """Finish a command once its module is imported: its help's examples (its subcommands'
    too) and the completers of its parameters (``completion.attach``)."""
    from . import completion  # light: click and the core's ids

    def walk(found: click.Command, where: str) -> None:
        found.epilog = examples_text(where)
        for name, sub in getattr(found, "commands", {}).items():
            walk(sub, f"{where} {name}")

    walk(command, path)
    completion.attach(command)


def load_all() -> None:
    """Import every command's module: its commands and the actions they register (the daemon
    serves every action; the docs generator walks every command)."""
    for module, _ in COMMANDS.values():
        importlib.import_module(f"{__name__}.{module}")


@click.group(
    cls=RootGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=examples_text(""),
)
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
@click.option(
    "--local",
    is_flag=True,
    help="Show times in tables in this host's zone (TZ, else /etc/localtime), and read a date, "
    "today and yesterday there; without it UTC (config display_time). --json is UTC always.",
)
@click.pass_context
def cli(
    ctx: click.Context,
    state_dir: Path,
    policy_dir: Path,
    config_path: Path,
    socket_path: Path | None,
    local: bool,
) -> None:
    """orchd: an offline-first job orchestrator for air-gapped sites."""
    from .context import Config  # here, not at the top: --help and --version need none of it

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


__all__ = ["COMMANDS", "cli", "load_all", "main"]
