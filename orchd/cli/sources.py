"""``orchd sources``: pause and resume a source on this site (entry layer)."""

from __future__ import annotations

import click

from orchd.ops import sources as source_ops

from . import cli
from .actions import Request, action, perform, text
from .changes import audited, unchanged
from .context import Config
from .output import emit_json, json_flag


@cli.group()
def sources() -> None:
    """Pause and resume sources (paused sources start no runs here)."""


@sources.command()
@click.argument("source")
@audited
@json_flag("the pause and whether it changed")
@click.pass_obj
def pause(config: Config, source: str, reason: str, ticket: str | None, as_json: bool) -> None:
    """Stop starting runs for SOURCE (one the policy declares) on this site until resumed.

    Pausing a paused source records nothing and says so."""
    body = {"source": source, "reason": reason, "ticket": ticket}
    paused = perform(config, "sources.pause", body)
    if as_json:
        emit_json(paused)
    elif paused["changed"]:
        click.echo(f"paused {source} at {paused['paused_at']}", err=True)
    else:
        since = f"since {paused['paused_at']} ({paused['reason']})"
        unchanged(f"source {source} is already paused {since}")


@sources.command()
@click.argument("source")
@audited
@json_flag("the ended pause and whether it changed")
@click.pass_obj
def resume(config: Config, source: str, reason: str, ticket: str | None, as_json: bool) -> None:
    """Let SOURCE start runs again. Resuming a source that is not paused records nothing and
    says so."""
    ended = perform(
        config, "sources.resume", {"source": source, "reason": reason, "ticket": ticket}
    )
    if as_json:
        emit_json(ended)
    elif ended["changed"]:
        click.echo(f"resumed {source} (paused since {ended['paused_at']})", err=True)
    else:
        unchanged(f"source {source} is not paused")


@action("sources.pause", source_ops.SCOPE, writes=True)
def _pause(call: Request) -> dict[str, object]:
    site, body = call.site, call.body
    source = text(body, "source", required=True) or ""
    paused = source_ops.pause(
        site.ledger,
        site.clock,
        site.entropy,
        call.actor,
        call.policy(),
        source,
        text(body, "reason") or "",
        text(body, "ticket"),
    )
    return {**paused.pause._asdict(), "changed": paused.changed}


@action("sources.resume", source_ops.SCOPE, writes=True)
def _resume(call: Request) -> dict[str, object]:
    site, body = call.site, call.body
    source = text(body, "source", required=True) or ""
    ended = source_ops.resume(
        site.ledger,
        site.clock,
        site.entropy,
        call.actor,
        call.policy(),
        source,
        text(body, "reason") or "",
        text(body, "ticket"),
    )
    return {"changed": False} if ended is None else {**ended._asdict(), "changed": True}
