"""``orchd ledger``: verify and rebuild (entry layer)."""

from __future__ import annotations

from typing import Any

import click

from orchd.ops import ledger as ledger_ops

from . import cli
from .actions import Request, action, perform
from .context import Config, Site, with_site
from .output import emit_json


@cli.group()
def ledger() -> None:
    """Check and maintain the event log and its projections."""


@ledger.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def verify(config: Config, as_json: bool) -> None:
    """Check every chain end to end and that the projections equal a rebuild."""
    report = perform(config, "ledger.verify", {})
    if as_json:
        emit_json(report)
        return
    for origin, seq in sorted(report["origins"].items()):
        click.echo(f"chain {origin}: seq 1..{seq} ok")
    click.echo(f"projections: equal to a rebuild (digest {report['projection_digest']})")
    click.echo(f"ok: {report['events']} events verified")


@action("ledger.verify", ledger_ops.VERIFY_SCOPE, writes=False)
def _verify(call: Request) -> dict[str, Any]:
    report = ledger_ops.verify(call.site.ledger)
    return {"ok": True, "events": report.events, "origins": report.origins,
            "projection_digest": report.projection_digest}  # fmt: skip


@ledger.command()
@with_site(write=True, repair=True)
def rebuild(site: Site) -> None:
    """Re-derive every projection from the event log (the events are not touched)."""
    digest = ledger_ops.rebuild(site.ledger)
    click.echo(digest)
    click.echo("projections rebuilt from the event log", err=True)
