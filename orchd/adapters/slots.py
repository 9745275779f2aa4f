"""The slots of a cron schedule between two instants (adapters layer, over APScheduler 3.x).

A slot is an instant at which the schedule's zone shows a wall-clock time that the five-field
expression matches; its idempotency key is ``{schedule}@{slot in UTC}``. Daylight saving follows
from that definition, whichever window a slot is found from (e.g. Europe/Berlin):

- spring forward: a wall time inside the gap never shows, so it has no slot; a daily 02:30 is
  skipped that day, and ``*/15 2 * * *`` has none from 02:00 to 02:45.
- fall back: a wall time in the repeated hour shows twice, so it has two slots an hour apart with
  distinct keys; a daily 02:30 fires at 00:30Z and 01:30Z that day.
- so hourly or more frequent schedules keep an even pace in real time across both changes.
  A schedule that must fire once every day should avoid the changing hour, or use UTC.

APScheduler 3.11's ``CronTrigger`` is not run in the schedule's zone, because there it is wrong
around the changes: it adds wall-clock differences as real time, so from 2026-03-28 in Berlin
``0 0 1 * *`` next fires on 1 May (not 1 April) and, from 00:30 on the 29th, ``0 0 * * *`` on the
31st; it fires a gap time shifted by the gap (02:30 CET = 03:30 CEST) or not, depending on where
its search starts; and it can skip the second pass of a repeat longer than an hour. Here the
trigger runs in UTC, where it is exact, over wall-clock time, and each stretch of one UTC offset
maps wall-clock times to instants. The stretches are found by probing the offset every 6 hours
and bisecting to the millisecond; the tz database has no two changes closer than 7 days since 1970.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from typing import NoReturn
from zoneinfo import ZoneInfo, available_timezones

from apscheduler.triggers.cron import CronTrigger

from orchd.core import timefmt
from orchd.core.policy import slot_key
from orchd.errors import BadInput, InvalidName

__all__ = [
    "check_cron",
    "count_slots",
    "first_slots",
    "slot_key",
    "slots",
]  # slot_key lives in the core

_PROBE_MS = 6 * 3_600_000
_DAY_MS = 86_400_000
_ONE_MS = timedelta(milliseconds=1)
_FIRST_MS = -86_400_000  # 1969-12-31T00:00:00.000Z: APScheduler's years are 1970 to 9999
_LAST_MS = 253_402_128_000_000  # 9999-12-30T00:00:00.000Z
_NUMBERS = r"\*(?:/[0-9]+)?|[0-9]+(?:-[0-9]+)?(?:/[0-9]+)?"
_NAMES = r"[a-z]{3}(?:-[a-z]{3})?"
_EXAMPLE = "e.g. '30 2 * * mon-fri'"
# (CronTrigger's name, the operator's name, accepted tokens, what is expected): APScheduler matches
# some tokens without anchors ('mon-fri/2' reads as 'mon-fri'), so each field is checked here first.
_FIELDS = (
    ("minute", "minute", _NUMBERS, "0-59, *, a-b, a,b or a step such as */5"),
    ("hour", "hour", _NUMBERS, "0-23, *, a-b, a,b or a step such as */2"),
    ("day", "day of month", rf"{_NUMBERS}|last", "1-31, last, *, a-b, a,b or a step"),
    ("month", "month", rf"{_NUMBERS}|{_NAMES}", "1-12 or jan-dec, *, a-b, a,b or a step"),
    (
        "day_of_week",
        "day of week",
        rf"\*|{_NAMES}",
        "* or names mon-sun such as mon-fri or sat,sun (no numbers or steps: crontab counts "
        "0 as sunday, APScheduler 3 as monday)",
    ),
)


def check_cron(expression: str, timezone: str) -> None:
    """Refuse an expression or zone that :func:`slots` could not use, saying what is expected."""
    _zone(timezone)
    _trigger(expression)


def slots(expression: str, timezone: str, after_ms: int, until_ms: int, *, limit: int) -> list[int]:
    """Every slot t (epoch ms) with ``after_ms < t <= until_ms``, in order; at most ``limit``."""
    found: list[int] = []
    for at_ms in _slots(expression, timezone, after_ms, until_ms):
        found.append(at_ms)
        if len(found) > limit:
            raise _too_many(expression, timezone, after_ms, until_ms, limit, at_ms)
    return found


def first_slots(
    expression: str, timezone: str, after_ms: int, until_ms: int, *, limit: int
) -> list[int]:
    """The first ``limit`` slots t with ``after_ms < t <= until_ms`` (fewer if there are not
    that many): for the daemon, which works through long windows in pieces."""
    found: list[int] = []
    for at_ms in _slots(expression, timezone, after_ms, until_ms):
        found.append(at_ms)
        if len(found) >= limit:
            break
    return found


def count_slots(expression: str, timezone: str, after_ms: int, until_ms: int) -> int:
    """How many slots t have ``after_ms < t <= until_ms``: whole days are counted a matching day
    at a time (a cron day holds the same slots whichever day matches), so a decade of minutes
    costs a few thousand steps, not millions."""
    zone = _zone(timezone)
    trigger = _trigger(expression)
    return sum(
        _count_wall(trigger, start_ms + offset_ms, end_ms + offset_ms)
        for start_ms, end_ms, offset_ms in _stretches(
            zone, max(after_ms + 1, _FIRST_MS), min(until_ms, _LAST_MS)
        )
    )


def _count_wall(trigger: CronTrigger, low_ms: int, high_ms: int) -> int:
    """The trigger's times in [low_ms, high_ms] of wall-clock time (read as UTC)."""
    first_day = -(-low_ms // _DAY_MS) * _DAY_MS  # the first midnight at or after low_ms
    end_day = (high_ms + 1) // _DAY_MS * _DAY_MS  # days in [first_day, end_day) are whole
    if first_day >= end_day:
        return _count(trigger, low_ms, high_ms)
    total = _count(trigger, low_ms, first_day - 1) + _count(trigger, end_day, high_ms)
    per_day = None
    day = first_day
    while (at := trigger.get_next_fire_time(None, timefmt.from_ms(day))) is not None:
        day = timefmt.to_ms(at) // _DAY_MS * _DAY_MS  # the next day with a slot
        if day >= end_day:
            break
        if per_day is None:
            per_day = _count(trigger, day, day + _DAY_MS - 1)
        total += per_day
        day += _DAY_MS
    return total


def _count(trigger: CronTrigger, low_ms: int, high_ms: int) -> int:
    return sum(1 for _ in _fire_times(trigger, low_ms, high_ms, 0)) if low_ms <= high_ms else 0


def _slots(expression: str, timezone: str, after_ms: int, until_ms: int) -> Iterator[int]:
    zone = _zone(timezone)
    trigger = _trigger(expression)
    for start_ms, end_ms, offset_ms in _stretches(
        zone, max(after_ms + 1, _FIRST_MS), min(until_ms, _LAST_MS)
    ):
        yield from _fire_times(trigger, start_ms, end_ms, offset_ms)


def _fire_times(trigger: CronTrigger, start_ms: int, end_ms: int, offset_ms: int) -> Iterator[int]:
    """The slots in [start_ms, end_ms], a stretch where the zone's clock is UTC + offset_ms."""
    wall_ms = start_ms + offset_ms
    while (at := trigger.get_next_fire_time(None, timefmt.from_ms(wall_ms))) is not None:
        wall_ms = timefmt.to_ms(at)
        if wall_ms - offset_ms > end_ms:
            return
        yield wall_ms - offset_ms
        wall_ms += 1


def _stretches(zone: ZoneInfo, first_ms: int, last_ms: int) -> Iterator[tuple[int, int, int]]:
    """Cut [first_ms, last_ms] where the zone's UTC offset changes: (start, end, offset) each."""
    start_ms = first_ms
    while start_ms <= last_ms:
        offset_ms = _offset_ms(zone, start_ms)
        end_ms = _offset_end_ms(zone, start_ms, last_ms, offset_ms)
        yield start_ms, end_ms, offset_ms
        start_ms = end_ms + 1


def _offset_end_ms(zone: ZoneInfo, low_ms: int, last_ms: int, offset_ms: int) -> int:
    """The last instant, up to last_ms, of the run of ``offset_ms`` that ``low_ms`` is in."""
    while low_ms < last_ms:
        high_ms = min(low_ms + _PROBE_MS, last_ms)
        if _offset_ms(zone, high_ms) != offset_ms:
            while high_ms - low_ms > 1:
                middle_ms = (low_ms + high_ms) // 2
                if _offset_ms(zone, middle_ms) == offset_ms:
                    low_ms = middle_ms
                else:
                    high_ms = middle_ms
            return low_ms
        low_ms = high_ms
    return last_ms


def _offset_ms(zone: ZoneInfo, at_ms: int) -> int:
    """The zone's UTC offset at ``at_ms`` (offsets change on whole seconds; never None here)."""
    return (datetime.fromtimestamp(at_ms // 1000, zone).utcoffset() or timedelta()) // _ONE_MS


@lru_cache(maxsize=256)
def _trigger(expression: str) -> CronTrigger:
    """A trigger in UTC, which reads wall-clock time as if it were UTC (no daylight saving)."""
    fields = expression.split()
    if len(fields) != len(_FIELDS):
        _refuse(expression, f"5 fields (minute hour day month weekday), not {len(fields)}")
    for value, (name, label, tokens, expected) in zip(fields, _FIELDS, strict=True):
        if not re.fullmatch(rf"(?:{tokens})(?:,(?:{tokens}))*", value, re.IGNORECASE | re.ASCII):
            _refuse(expression, f"{label} {value!r}: expected {expected}")
        try:
            CronTrigger(timezone=UTC, **{name: value})
        except ValueError as e:
            reason = re.sub(r"^Error validating expression '[^']*': ", "", str(e))
            _refuse(expression, f"{label} {value!r}: {reason}; expected {expected}")
    if not fields[2].startswith("*") and not fields[4].startswith("*"):
        _refuse(expression, "day of month or day of week, not both (crontab fires on either)")
    trigger = CronTrigger.from_crontab(expression, timezone=UTC)
    if trigger.get_next_fire_time(None, timefmt.from_ms(0)) is None:
        _refuse(expression, "a day that exists (this one never fires)")
    return trigger


def _zone(timezone: str) -> ZoneInfo:
    if timezone == "localtime" or timezone not in _zone_names():
        raise InvalidName(
            what="time zone", value=timezone, expected="an IANA name such as Europe/Berlin or UTC"
        )
    return ZoneInfo(timezone)


@cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def _refuse(expression: str, expected: str) -> NoReturn:
    raise InvalidName(what="cron expression", value=expression, expected=f"{expected}; {_EXAMPLE}")


def _too_many(
    expression: str, timezone: str, after_ms: int, until_ms: int, limit: int, at_ms: int
) -> BadInput:
    return BadInput(
        detail=f"more than {limit} slots of {expression!r} ({timezone}) fall in the window "
        f"({timefmt.format_ms(after_ms)}, {timefmt.format_ms(until_ms)}]; narrow the window "
        f"to end before {timefmt.format_ms(at_ms)}, slot number {limit + 1}"
    )
