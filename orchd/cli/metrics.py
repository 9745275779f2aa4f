"""``orchd metrics``: the site's metrics in Prometheus text format (entry layer)."""

from __future__ import annotations

from typing import Any

import click

from orchd.ops import metrics as metrics_ops

from . import cli
from .actions import Request, action, perform
from .context import Config


@cli.command()
@click.pass_obj
def metrics(config: Config) -> None:
    """Print the metrics a Prometheus server scrapes (the daemon serves the same text at
    GET /metrics on its socket, and on metrics_listen when configured)."""
    click.echo(perform(config, "metrics", {})["text"], nl=False)


@action("metrics", metrics_ops.SCOPE, writes=False)
def _metrics(call: Request) -> dict[str, Any]:
    text = metrics_ops.collect(
        call.site.ledger,
        call.site.clock,
        degraded=call.degraded,
        file_ok=call.file_ok,
        longest_tick_ms=call.longest_tick_ms,
        longest_record_delay_ms=call.longest_record_delay_ms,
    )
    return {"text": text}
