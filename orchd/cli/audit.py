"""``orchd audit``: the event log is the audit trail (entry layer)."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import click

from orchd.core import audit_views, timefmt
from orchd.errors import BadInput
from orchd.ops import lookup

from . import cli
from .actions import Request, action, number, perform, text
from .context import Config, Site, open_site
from .ledger import verify as ledger_verify
from .output import event_json
from .times import Instant

POLL_S = 0.5
MAX_LINES = 100_000
MAX_CELL = 60  # a column is as wide as its widest cell up to this; longer cells overflow


@cli.group()
def audit() -> None:
    """Read and check the audit trail: who changed what, why, under which ticket."""


# a copy, so that each name's help ends with its own examples (``dress`` sets them)
audit.add_command(copy.copy(ledger_verify), name="verify")


def _columns(item: dict[str, Any]) -> list[str]:
    """An event's cells: time, place, type, subject, outcome, who, and why (reason and ticket)."""
    event = item["event"]
    actor = event["actor"]
    why = f"reason={event['reason']!r}" if event.get("reason") else ""
    ticket = f"ticket={event['ticket']}" if event.get("ticket") else ""
    return [
        event["occurred_at"],
        f"{event['origin']}/{event['seq']}",
        event["type"],
        item.get("subject") or "-",
        item.get("outcome") or "-",
        f"by {actor['user']}({actor['uid']})",
        " ".join(filter(None, (why, ticket))),
    ]


def _lines(items: list[dict[str, Any]], widths: list[int]) -> list[str]:
    """Each item as a line of aligned columns, ``widths`` widened to fit them (a followed
    stream keeps the widths of what it printed before)."""
    rows = [_columns(item) for item in items]
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], min(len(cell), MAX_CELL))
    return [
        "  ".join([*(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)), row[-1]]).rstrip()
        for row in rows
    ]


@audit.command()
@click.option(
    "-n",
    "--limit",
    "--lines",
    "count",
    type=click.IntRange(1, MAX_LINES),
    default=20,
    show_default=True,
    help="How many of the newest events to show first.",
)
@click.option("--type", "event_type", help="Only events of this type, e.g. quota.set.")
@click.option("--origin", metavar="SITE", help="Only events of this origin.")
@click.option("--since", type=Instant(), help="Only events that occurred at or after this time.")
@click.option("--actor", metavar="USER", help="Only events recorded by this user.")
@click.option("--ticket", help="Only events recorded under this ticket.")
@click.option("--follow", is_flag=True, help="Keep printing events as they are recorded.")
@click.option("--json", "as_json", is_flag=True, help="One JSON envelope (with its hash) per line.")
@click.pass_obj
def tail(
    config: Config,
    count: int,
    event_type: str | None,
    origin: str | None,
    since: str | None,
    actor: str | None,
    ticket: str | None,
    follow: bool,
    as_json: bool,
) -> None:
    """Print the newest events, in the order this site recorded them (its own and imported);
    --follow keeps going (from the daemon's NDJSON stream while it runs, else reading the ledger;
    Ctrl-C ends it). Each line: time, origin/seq, type, what it is about (the job and its type,
    the quota target, the peer, the key), how it came out, who, why. --type, --origin, --since,
    --actor and --ticket choose which."""
    given = {"type": event_type, "origin": origin, "since": since, "actor": actor, "ticket": ticket}
    chosen = {key: value for key, value in given.items() if value is not None}
    cutoff = _since(since)
    widths = [0] * 6  # every column but the last (why), which is not padded

    def emit(found: list[dict[str, Any]]) -> None:
        # a followed stream carries every event
        kept = [i for i in found if _matches(i["event"], chosen, cutoff)]
        if as_json:
            for item in kept:
                click.echo(json.dumps(item["event"], sort_keys=True))
        else:
            for line in _lines(kept, widths):
                click.echo(line)

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
    lookup.check_event_type(text(body, "type"))
    found = site.ledger.tail(
        after,
        limit,
        event_type=text(body, "type"),
        origin=text(body, "origin"),
        since=_since(text(body, "since")),
        actor=text(body, "actor"),
        ticket=text(body, "ticket"),
    )
    named = {e.payload["job_id"] for _, e in found if isinstance(e.payload.get("job_id"), str)}
    job_types = {j: view.job_type for j, view in site.ledger.jobs_by_id(named).items()}
    items = []
    for position, event in found:
        subject, outcome = audit_views.said(event.type, event.payload, job_types)
        item = {"position": position, "event": event_json(event)}
        items.append({**item, "subject": subject, "outcome": outcome})
    return items


def _since(text_: str | None) -> str | None:
    """An operator's instant, as the ledger writes times (or None)."""
    return None if text_ is None else timefmt.format_ms(timefmt.parse_given(text_))


def _matches(event: dict[str, Any], chosen: dict[str, str], cutoff: str | None) -> bool:
    return (
        chosen.get("type", event["type"]) == event["type"]
        and chosen.get("origin", event["origin"]) == event["origin"]
        and (cutoff is None or event["occurred_at"] >= cutoff)
        and chosen.get("actor", event["actor"]["user"]) == event["actor"]["user"]
        and ("ticket" not in chosen or event.get("ticket") == chosen["ticket"])
    )
