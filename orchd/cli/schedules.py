"""``orchd schedules``: what runs next, as ``systemctl list-timers`` says it (entry layer)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import click

from orchd.core import timefmt
from orchd.ops import schedule_views

from . import cli
from .actions import Request, action, perform
from .context import Config
from .output import emit_json, short, table


@cli.group()
def schedules() -> None:
    """What runs next: each schedule's next and last slot."""


@schedules.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print the schedules as a JSON array.")
@click.pass_obj
def list_(config: Config, as_json: bool) -> None:
    """Each schedule of the policy: its next slot (UTC, and in its own time zone), the time
    left until its job is made (the slot plus its jitter), its last slot and that job's state
    now, the slots due and not yet made (the daemon was down), the slots its misfire rule
    skipped, and whether its source is paused here (its jobs then wait, throttled)."""
    rows = perform(config, "schedules.list", {})
    if as_json:
        emit_json(rows)
        return
    table(
        ("SCHEDULE", "NEXT", "LEFT", "LOCAL", "LAST", "JOB", "STATE", "DUE", "SKIPPED", "PAUSED"),
        [
            (
                row["name"],
                row["next_slot"],
                _left(row["left_s"]),
                _local(row["next_slot"], row["timezone"]),
                row["last_slot"],
                short(row["last_job"]),
                row["last_state"],
                row["due"],
                row["skipped"],
                "paused" if row["paused"] else "-",
            )
            for row in rows
        ],
    )


@action("schedules.list", "orch:read", writes=False)
def _list(call: Request) -> list[dict[str, Any]]:
    site = call.site
    found = schedule_views.schedules(
        site.ledger, call.policy(), site.clock, site.first_slots, site.count_slots
    )
    return [dataclasses.asdict(row) for row in found]


def _left(seconds: int | None) -> str | None:
    """The time left as ``systemctl list-timers`` says it: ``4h 12min``, ``12min 5s``."""
    if seconds is None:
        return None
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d", f"{hours}h", f"{minutes}min", f"{secs}s"]
    values = [days, hours, minutes, secs]
    first = next((i for i, v in enumerate(values) if v), len(values) - 1)
    return " ".join(parts[first : first + 2])


def _local(slot: str | None, zone: str) -> str | None:
    """``slot`` as the wall time of the schedule's zone (None for a UTC schedule)."""
    if slot is None or zone == "UTC":
        return None
    at = datetime.fromtimestamp(timefmt.parse_canonical(slot) / 1000, UTC)
    return at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")
