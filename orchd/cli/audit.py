"""``orchd audit``: the event log is the audit trail (entry layer)."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from orchd.core import timefmt
from orchd.errors import BadInput

from . import cli
from .actions import Request, action, number, perform, text
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
@click.option("--type", "event_type", help="Only events of this type, e.g. quota.set.")
@click.option("--origin", metavar="SITE", help="Only events of this origin.")
@click.option("--since", help="Only events that occurred at or after this instant, with its zone.")
@click.option("--follow", is_flag=True, help="Keep printing events as they are recorded.")
@click.option("--json", "as_json", is_flag=True, help="One JSON envelope (with its hash) per line.")
@click.pass_obj
def tail(
    config: Config,
    count: int,
    event_type: str | None,
    origin: str | None,
    since: str | None,
    follow: bool,
    as_json: bool,
) -> None:
    """Print the newest events, in the order this site recorded them (its own and imported);
    --follow keeps going (from the daemon's NDJSON stream while it runs, else reading the ledger;
    Ctrl-C ends it). --type, --origin and --since choose which."""
    chosen = {"type": event_type, "origin": origin, "since": since}
    chosen = {key: value for key, value in chosen.items() if value is not None}
    cutoff = _since(since)

    def emit(found: list[dict[str, Any]]) -> None:
        for item in found:
            event = item["event"]
            if not _matches(event, event_type, origin, cutoff):
                continue  # a followed stream carries every event
            click.echo(json.dumps(event, sort_keys=True) if as_json else _line(event))

    first = perform(config, "audit.tail", {"limit": count, **chosen})
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
    found = site.ledger.tail(
        after,
        limit,
        event_type=text(body, "type"),
        origin=text(body, "origin"),
        since=_since(text(body, "since")),
    )
    return [{"position": p, "event": event_json(e)} for p, e in found]


def _since(text_: str | None) -> str | None:
    """An operator's instant, as the ledger writes times (or None)."""
    return None if text_ is None else timefmt.format_ms(timefmt.parse_operator(text_))


def _matches(
    event: dict[str, Any], kind: str | None, origin: str | None, cutoff: str | None
) -> bool:
    return (
        (kind is None or event["type"] == kind)
        and (origin is None or event["origin"] == origin)
        and (cutoff is None or event["occurred_at"] >= cutoff)
    )
