"""``orchd sources``: pause and resume a source on this site (entry layer)."""

from __future__ import annotations

import click

from orchd.adapters import policy_files
from orchd.ops import sources as source_ops

from . import cli
from .context import Site, with_site

REASON = click.option("--reason", required=True, help="Why (1-256 printable characters).")


@cli.group()
def sources() -> None:
    """Pause and resume sources (paused sources start no runs here)."""


@sources.command()
@click.argument("source")
@REASON
@with_site(write=True)
def pause(site: Site, source: str, reason: str) -> None:
    """Stop starting runs for SOURCE (one the policy declares) on this site until resumed."""
    actor = site.actor(source_ops.SCOPE)
    policy = policy_files.load(site.config.policy_dir)
    paused = source_ops.pause(site.ledger, site.clock, site.entropy, actor, policy, source, reason)
    click.echo(f"paused {source} at {paused.paused_at}", err=True)


@sources.command()
@click.argument("source")
@REASON
@with_site(write=True)
def resume(site: Site, source: str, reason: str) -> None:
    """Let SOURCE start runs again."""
    actor = site.actor(source_ops.SCOPE)
    ended = source_ops.resume(site.ledger, site.clock, site.entropy, actor, source, reason)
    click.echo(f"resumed {source} (paused since {ended.paused_at})", err=True)
