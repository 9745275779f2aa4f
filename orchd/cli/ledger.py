"""``orchd ledger``: verify and rebuild (entry layer)."""

from __future__ import annotations

import click

from orchd.ops import ledger as ledger_ops

from . import cli
from .context import Site, with_site
from .output import emit_json


@cli.group()
def ledger() -> None:
    """Check and maintain the event log and its projections."""


@ledger.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@with_site(write=False)
def verify(site: Site, as_json: bool) -> None:
    """Check every chain end to end and that the projections equal a rebuild."""
    report = ledger_ops.verify(site.ledger)
    if as_json:
        emit_json(
            {
                "ok": True,
                "events": report.events,
                "origins": report.origins,
                "projection_digest": report.projection_digest,
            }
        )
        return
    for origin, seq in sorted(report.origins.items()):
        click.echo(f"chain {origin}: seq 1..{seq} ok")
    click.echo(f"projections: equal to a rebuild (digest {report.projection_digest})")
    click.echo(f"ok: {report.events} events verified")


@ledger.command()
@with_site(write=True, repair=True)
def rebuild(site: Site) -> None:
    """Re-derive every projection from the event log (the events are not touched)."""
    digest = ledger_ops.rebuild(site.ledger)
    click.echo(digest)
    click.echo("projections rebuilt from the event log", err=True)
