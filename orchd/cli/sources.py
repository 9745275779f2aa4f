"""``orchd sources``: pause and resume a source on this site (entry layer)."""

from __future__ import annotations

import click

from orchd.ops import sources as source_ops

from . import cli
from .actions import Request, action, perform, text
from .context import Config

REASON = click.option("--reason", required=True, help="Why (1-256 printable characters).")


@cli.group()
def sources() -> None:
    """Pause and resume sources (paused sources start no runs here)."""


@sources.command()
@click.argument("source")
@REASON
@click.pass_obj
def pause(config: Config, source: str, reason: str) -> None:
    """Stop starting runs for SOURCE (one the policy declares) on this site until resumed."""
    paused = perform(config, "sources.pause", {"source": source, "reason": reason})
    click.echo(f"paused {source} at {paused['paused_at']}", err=True)


@sources.command()
@click.argument("source")
@REASON
@click.pass_obj
def resume(config: Config, source: str, reason: str) -> None:
    """Let SOURCE start runs again."""
    ended = perform(config, "sources.resume", {"source": source, "reason": reason})
    click.echo(f"resumed {source} (paused since {ended['paused_at']})", err=True)


@action("sources.pause", source_ops.SCOPE, writes=True)
def _pause(call: Request) -> dict[str, object]:
    site, body = call.site, call.body
    source, reason = text(body, "source", required=True) or "", text(body, "reason") or ""
    paused = source_ops.pause(site.ledger, site.clock, site.entropy, call.actor, call.policy(),
                              source, reason)  # fmt: skip
    return paused._asdict()


@action("sources.resume", source_ops.SCOPE, writes=True)
def _resume(call: Request) -> dict[str, object]:
    site, body = call.site, call.body
    source, reason = text(body, "source", required=True) or "", text(body, "reason") or ""
    ended = source_ops.resume(site.ledger, site.clock, site.entropy, call.actor, source, reason)
    return ended._asdict()
