"""``orchd audit``: the event log is the audit trail (entry layer)."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from orchd.errors import BadInput

from . import cli
from .actions import Request, action, number, perform
from .context import Config, Site, open_site
from .ledger import verify as ledger_verify
from .output import event_json

POLL_S = 0.5
MAX_LINES = 100_000


@cli.group()
def audit() -> None:
    """Read and check the audit trail: who changed what, why, under which ticket."""


audit.add_command(ledger_verify, name="verify")


def _line(event: dict[str, Any]) -> str:
    actor = event["actor"]
    who = f"{actor['user']}({actor['uid']})"
    why = f" reason={event['reason']!r}" if event.get("reason") else ""
    ticket = f" ticket={event['ticket']}" if event.get("ticket") else ""
    return (
        f"{event['occurred_at']}  {event['origin']}/{event['seq']}  {event['type']}"
        f"  by {who}{why}{ticket}"
    )


@audit.command()
@click.option(
    "-n",
    "--lines",
    "count",
    type=click.IntRange(1, MAX_LINES),
    default=20,
    show_default=True,
    help="How many of the newest events to show first.",
)
@click.option("--follow", is_flag=True, help="Keep printing events as they are recorded.")
@click.option("--json", "as_json", is_flag=True, help="One JSON envelope (with its hash) per line.")
@click.pass_obj
def tail(config: Config, count: int, follow: bool, as_json: bool) -> None:
    """Print the newest events, in the order this site recorded them (its own and imported);
    --follow keeps going (from the daemon's NDJSON stream while it runs, else reading the ledger;
    Ctrl-C ends it)."""

    def emit(found: list[dict[str, Any]]) -> None:
        for item in found:
            event = item["event"]
            click.echo(json.dumps(event, sort_keys=True) if as_json else _line(event))

    first = perform(config, "audit.tail", {"limit": count})
    emit(first)
    position = first[-1]["position"] if first else 0
    try:
        while follow:
            streamed = config.stream("audit.tail", position)
            if streamed is not None:  # the daemon runs: its stream, until it stops
                for item in streamed:
                    emit([item])
                    position = item["position"]
                time.sleep(POLL_S)
                continue
            with open_site(config, write=False) as site:
                while config.stream_path() is None:
                    newer = _tail(site, {"after": position, "limit": 1000})
                    emit(newer)
                    position = newer[-1]["position"] if newer else position
                    time.sleep(POLL_S)
    except KeyboardInterrupt:
        return


@action("audit.tail", "orch:read", writes=False)
def _tail_action(call: Request) -> list[dict[str, Any]]:
    return _tail(call.site, call.body)


def _tail(site: Site, body: dict[str, Any]) -> list[dict[str, Any]]:
    after, limit = number(body, "after"), number(body, "limit") or 1000
    if not 1 <= limit <= MAX_LINES:
        raise BadInput(detail=f"'limit' must be 1 to {MAX_LINES}")
    return [{"position": p, "event": event_json(e)} for p, e in site.ledger.tail(after, limit)]
