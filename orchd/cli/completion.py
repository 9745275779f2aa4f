"""``orchd completion SHELL``: the shell completion script, and the completers ``attach`` sets on
the commands' parameters (entry layer).

The completers offer the policy's job types, sources and schedules, the sites this site knows,
the trust store's key ids and the newest job ids. They run while click completes a command line:
the ``orchd`` group's callback has not run then (click parses the words resiliently and calls no
callback), so the state and policy dirs come from the root's parsed parameters. They read only
(the ledger opened read-only by ``adapters/ledger/peek.py``: nothing created, no lock, no
daemon asked), quickly (a few indexed
queries, no whole-file check) and silently: whatever goes wrong completes nothing.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.shell_completion import CompletionItem, get_completion_class

from orchd.core import ids

from . import cli

if TYPE_CHECKING:  # imported when a completer runs: a command that completes nothing needs none
    from .context import Config

SHELLS = ("bash", "zsh", "fish")
RECENT_JOBS = 50  # the newest jobs offered (and as many more whose id starts as typed)

Names = Iterable[tuple[str, str | None]]  # (value, help) of each candidate
Completer = Callable[[click.Context, click.Parameter, str], list[CompletionItem]]


@cli.command()
@click.argument("shell", type=click.Choice(SHELLS))
@click.option("--json", "as_json", is_flag=True, help="Print the shell and its script as JSON.")
def completion(shell: str, as_json: bool) -> None:
    """Print the completion script for SHELL. Install it with, for bash,
    ``orchd completion bash > /etc/bash_completion.d/orchd``; for zsh, into a file named _orchd
    on $fpath; for fish, ``> ~/.config/fish/completions/orchd.fish``."""
    found = get_completion_class(shell)
    if found is None:  # click ships all three: a click without one
        raise click.BadParameter(f"this click has no {shell} completion", param_hint="SHELL")
    script = found(cli, {}, "orchd", "_ORCHD_COMPLETE").source()
    if as_json:
        click.echo(json.dumps({"shell": shell, "script": script}, indent=2, sort_keys=True))
        return
    click.echo(script)


# --- where to read ----------------------------------------------------------------------------


def config_of(ctx: click.Context) -> Config:
    """The ``Config`` of the command line being completed: the group's when its callback ran,
    else made from the root's parsed ``--state-dir`` and ``--policy-dir`` (click resolves their
    environment variables and defaults while completing, though it runs no callback)."""
    from .context import Config

    root = ctx.find_root()
    if isinstance(root.obj, Config):
        return root.obj
    params = root.params
    return Config(
        state_dir=Path(params["state_dir"]).absolute(),
        policy_dir=Path(params["policy_dir"]).absolute(),
    )


def peek() -> Any:
    """The ledger's read-only queries for completion (``adapters/ledger/peek.py``)."""
    from .context import ledger_peek

    return ledger_peek()


# --- the candidates ---------------------------------------------------------------------------


def job_types(config: Config, incomplete: str) -> Names:
    return [(name, t.description or None) for name, t in config.policy().job_types.items()]


def sources(config: Config, incomplete: str) -> Names:
    return [(name, s.description or None) for name, s in config.policy().sources.items()]


def schedules(config: Config, incomplete: str) -> Names:
    found = config.policy().schedules.items()
    return [(name, f"{s.job_type} at {s.cron} {s.timezone}") for name, s in found]


def origins(config: Config, incomplete: str) -> Names:
    """Every site this site knows, itself first."""
    found: list[tuple[str, str]] = peek().sites(config.ledger_path)
    return found


def peers(config: Config, incomplete: str) -> Names:
    """The other sites this site knows: trusted, exchanged bundles with, or holds events of."""
    return [(site, how) for site, how in origins(config, incomplete) if how != "this site"]


def key_ids(config: Config, incomplete: str) -> Names:
    found: list[tuple[str, str]] = peek().key_ids(config.ledger_path)
    return found


def job_ids(config: Config, incomplete: str) -> Names:
    """The newest jobs' ids and their short forms, then the ids that start with what is typed;
    the job type is each one's help."""
    prefix = ids.typed(incomplete)
    typed = prefix if ids.could_be(prefix) else ""
    rows: list[tuple[str, str]] = peek().job_ids(config.ledger_path, RECENT_JOBS, typed)
    shorts = [(ids.short(job_id), job_type) for job_id, job_type in rows[:RECENT_JOBS]]
    return list(dict.fromkeys([*rows, *shorts]))


def completer(names: Callable[[Config, str], Names], *, fold_case: bool = False) -> Completer:
    """A click completer of the ``names`` that start with what is typed (in either case with
    ``fold_case``); any error completes nothing, and says nothing."""

    def complete(
        ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        typed = incomplete.upper() if fold_case else incomplete
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = list(names(config_of(ctx), incomplete))
            return [
                CompletionItem(value, help=help_)
                for value, help_ in found
                if (value.upper() if fold_case else value).startswith(typed)
            ]
        except Exception:  # completion is best effort: a broken policy or ledger offers nothing
            return []

    complete.__name__ = complete.__qualname__ = f"complete_{names.__name__}"
    return complete


complete_job_types = completer(job_types)
complete_sources = completer(sources)
complete_schedules = completer(schedules)
complete_peers = completer(peers)
complete_origins = completer(origins)
complete_key_ids = completer(key_ids)
complete_job_ids = completer(job_ids, fold_case=True)


# --- attaching them ---------------------------------------------------------------------------

BY_NAME: dict[str, Completer] = {  # a parameter's name -> its completer, on every command
    "job_type": complete_job_types,  # jobs submit JOB_TYPE, jobs list --type, replay --type
    "source": complete_sources,  # jobs submit/list --source, sources pause/resume SOURCE
    "schedule": complete_schedules,  # backfill SCHEDULE
    "peer": complete_peers,  # bundle export --peer
    "for_site": complete_peers,  # jobs submit --site, quota set/reset --site
    "origin": complete_origins,  # jobs list, status, audit tail --origin
    "key_id": complete_key_ids,  # keys revoke KEY_ID
    "job_id": complete_job_ids,  # jobs show/cancel/logs JOB_ID
    "job_ids": complete_job_ids,  # replay JOB_IDS
    "after": complete_job_ids,  # jobs list --after
}
ARGUMENTS_BY_NAME: dict[str, Completer] = {  # only as an argument: init's --site-id is new
    "site_id": complete_peers,  # keys trust SITE_ID
}


def completer_of(param: click.Parameter) -> Completer | None:
    """The completer ``attach`` sets on ``param``, if any."""
    found = BY_NAME.get(param.name or "")
    if found is None and isinstance(param, click.Argument):
        found = ARGUMENTS_BY_NAME.get(param.name or "")
    return found


def attach(command: click.Command) -> None:
    """Set the completers on ``command``'s parameters by their names, and on those of a group's
    subcommands, recursively (a group's ``get_command`` may import them: on the root, every
    command's module). A parameter that completes itself already keeps its own; attaching
    twice changes nothing."""
    for param in command.params:
        found = completer_of(param)
        if found is not None and param._custom_shell_complete is None:
            param._custom_shell_complete = found
    if isinstance(command, click.Group):
        ctx = click.Context(command, resilient_parsing=True)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and sub is not command:
                attach(sub)
