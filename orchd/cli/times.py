"""Times as operators type and read them (entry layer): the time options' type, which reads
every form ``timefmt.parse_operator`` knows on this process's clock, and the zone tables show
times in (UTC, or the local zone with ``orchd --local`` or the config's ``display_time``).

What a command sends on, to the daemon or to its action, is canonical RFC 3339 in UTC: the
operator's clock and zone are read here, where the operator is, never by the daemon.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any

import click

from orchd.core import timefmt
from orchd.errors import ConfigInvalid, UnreadableTime

LOCAL_KEY = "orchd.local"  # ctx.meta: the zone a date is read in and tables show (None: UTC)
LOCALTIME = Path("/etc/localtime")


class Instant(click.ParamType[str]):
    """A time option: any form ``parse_operator`` reads, given on as canonical UTC text.
    ``upper``: it ends a window (a time finer than a millisecond is rounded down, not up)."""

    name = "time"

    def __init__(self, *, upper: bool = False) -> None:
        self.upper = upper

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        zone = shown_zone(ctx) or UTC
        now_ms = time.time_ns() // 1_000_000
        try:
            return timefmt.format_ms(timefmt.parse_operator(value, now_ms, zone, upper=self.upper))
        except UnreadableTime as error:
            option = f" for {param.opts[0]}" if param is not None and param.opts else ""
            raise UnreadableTime(value=value, why=option + error.fields["why"]) from None


def shown_zone(ctx: click.Context | None) -> tzinfo | None:
    """The local zone when the operator asked for local time (``--local``, or the config's
    ``display_time: local``), else None: UTC."""
    root = None if ctx is None else ctx.find_root()
    if root is None:
        return None
    if LOCAL_KEY not in root.meta:
        root.meta[LOCAL_KEY] = system_zone() if _wants_local(root) else None
    zone: tzinfo | None = root.meta[LOCAL_KEY]
    return zone


def _wants_local(root: click.Context) -> bool:
    if root.params.get("local"):
        return True
    settings = getattr(root.obj, "settings", None)  # None while a shell completes
    try:
        return settings is not None and settings().display_time == "local"
    except ConfigInvalid:  # the command that reads the config says so; times stay UTC
        return False


def system_zone() -> tzinfo:
    """This host's zone: TZ's, else /etc/localtime's, else UTC."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    named = os.environ.get("TZ", "").removeprefix(":")
    if named:
        try:
            return ZoneInfo(named)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    try:
        with LOCALTIME.open("rb") as handle:
            return ZoneInfo.from_file(handle, key="localtime")
    except (OSError, ValueError):
        return UTC


def local_text(value: str, zone: tzinfo) -> str:
    """A canonical instant in ``zone``, with its offset: ``2026-11-20T09:00:00.000+01:00``."""
    at = timefmt.from_ms(timefmt.parse_canonical(value)).astimezone(zone)
    return at.isoformat(timespec="milliseconds")


def shown(value: object) -> object:
    """A value as the operator reads it: ``in_zone`` of the zone asked for."""
    return in_zone(value, shown_zone(click.get_current_context(silent=True)))


def in_zone(value: object, zone: tzinfo | None) -> object:
    """A canonical instant in ``zone`` (None: as it is, UTC), anything else as it is."""
    if zone is None or not (isinstance(value, str) and timefmt.is_canonical(value)):
        return value
    return local_text(value, zone)
