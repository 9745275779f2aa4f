"""``orchd metrics``: the site's metrics in Prometheus text format (entry layer)."""

from __future__ import annotations

from typing import Any

import click

from orchd.core import metrics as families
from orchd.ops import metrics as metrics_ops

from . import cli
from .actions import Request, action, flag, perform
from .context import Config
from .output import emit_json


@cli.command()
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print a JSON array of samples: name, type, labels, value.",
)
@click.pass_obj
def metrics(config: Config, as_json: bool) -> None:
    """Print the metrics a Prometheus server scrapes (the daemon serves the same text at
    GET /metrics on its socket, and on metrics_listen when configured)."""
    if as_json:
        emit_json(perform(config, "metrics", {"json": True})["samples"])
        return
    click.echo(perform(config, "metrics", {})["text"], nl=False)


@action("metrics", metrics_ops.SCOPE, writes=False)
def _metrics(call: Request) -> dict[str, Any]:
    found = metrics_ops.collect(
        call.site.ledger,
        call.site.clock,
        degraded=call.degraded,
        file_ok=call.file_ok,
        longest_tick_ms=call.longest_tick_ms,
        longest_record_delay_ms=call.longest_record_delay_ms,
    )
    if flag(call.body, "json"):
        return {"samples": families.samples(found)}
    return {"text": families.render(found)}
