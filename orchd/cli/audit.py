"""``orchd audit``: the event log is the audit trail (entry layer)."""

from __future__ import annotations

import json
import time

import click

from orchd.core.events import Event

from . import cli
from .context import Site, with_site
from .ledger import verify as ledger_verify
from .output import event_json

POLL_S = 0.5


@cli.group()
def audit() -> None:
    """Read and check the audit trail: who changed what, why, under which ticket."""


audit.add_command(ledger_verify, name="verify")


def _line(event: Event) -> str:
    who = f"{event.actor.user}({event.actor.uid})"
    why = f" reason={event.reason!r}" if event.reason else ""
    ticket = f" ticket={event.ticket}" if event.ticket else ""
    return f"{event.occurred_at}  {event.origin}/{event.seq}  {event.type}  by {who}{why}{ticket}"


@audit.command()
@click.option(
    "-n",
    "--lines",
    "count",
    type=click.IntRange(1, 100_000),
    default=20,
    show_default=True,
    help="How many of the newest events to show first.",
)
@click.option("--follow", is_flag=True, help="Keep printing events as they are recorded.")
@click.option("--json", "as_json", is_flag=True, help="One JSON envelope (with its hash) per line.")
@with_site(write=False)
def tail(site: Site, count: int, follow: bool, as_json: bool) -> None:
    """Print the newest events, in the order this site recorded them (its own and imported);
    --follow keeps going (reading the ledger while the daemon writes it; Ctrl-C ends it)."""

    def emit(found: list[tuple[int, Event]]) -> int | None:
        for _position, event in found:
            text = json.dumps(event_json(event), sort_keys=True) if as_json else _line(event)
            click.echo(text)
        return found[-1][0] if found else None

    last = emit(site.ledger.tail(None, count))
    position = 0 if last is None else last
    while follow:
        try:
            time.sleep(POLL_S)
        except KeyboardInterrupt:
            return
        newer = emit(site.ledger.tail(position, 1000))
        position = position if newer is None else newer
