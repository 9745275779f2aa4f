"""UTC instants as canonical RFC 3339 strings, millisecond precision, ``Z`` (core layer)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache

from orchd.errors import InvalidTime, UnreadableTime

_CANONICAL = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last instant the text form holds


def to_ms(at: datetime) -> int:
    """Milliseconds since the Unix epoch of an aware datetime (sub-millisecond part dropped)."""
    if at.tzinfo is None:
        raise InvalidTime(value=str(at))
    return (at - _EPOCH) // timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


@lru_cache(maxsize=4096)
def format_ms(ms: int) -> str:
    """``2026-01-31T12:00:00.000Z``: the one way orchd writes an instant."""
    at = from_ms(ms)
    return (
        f"{at.year:04d}-{at.month:02d}-{at.day:02d}T"
        f"{at.hour:02d}:{at.minute:02d}:{at.second:02d}.{ms % 1000:03d}Z"
    )


def format_at(at: datetime) -> str:
    return format_ms(to_ms(at))


def is_canonical(text: str) -> bool:
    """``text`` is written as orchd writes an instant (``format_ms``)."""
    return _CANONICAL.fullmatch(text) is not None


def parse_canonical(text: object) -> int:
    """Parse a canonical instant to epoch milliseconds; anything else is an error."""
    if type(text) is not str:  # a str subclass could hash and compare in its own way
        raise InvalidTime(value=text)
    return _parse(text)


@lru_cache(maxsize=4096)
def _parse(text: str) -> int:
    if not _CANONICAL.fullmatch(text):
        raise InvalidTime(value=text)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidTime(value=text) from None
    return to_ms(at)


_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_AGO = re.compile(r"-([0-9]{1,9})([smhdw])")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def parse_operator(text: str, now_ms: int, zone: tzinfo = UTC, *, upper: bool = False) -> int:
    """An instant an operator typed, to epoch milliseconds: RFC 3339 with its zone, a date,
    ``now``, ``today``, ``yesterday`` or a time ago (``-2h``; ``UnreadableTime`` lists them).

    ``now_ms`` is the caller's clock (``now``, ``today``, ``-2h``); ``zone`` the zone a date
    and ``today`` are read in (UTC unless the operator asked for local time). A time without
    a zone is refused rather than guessed. A time finer than a millisecond is rounded toward
    the inside of the window it bounds: up for a start, down for an end (``upper``).
    """
    if not isinstance(text, str):
        raise UnreadableTime(value=text, why="")
    typed = text.strip()
    word = typed.lower()
    if word == "now":
        return now_ms
    if word in ("today", "yesterday"):
        back = 1 if word == "yesterday" else 0
        day = from_ms(now_ms).astimezone(zone).date() - timedelta(days=back)
        return _within(to_ms(datetime(day.year, day.month, day.day, tzinfo=zone)), text)
    ago = _AGO.fullmatch(word)
    if ago is not None:
        return _within(now_ms - int(ago[1]) * _UNIT_MS[ago[2]], text)
    return _iso(text, zone, upper)


def parse_given(text: str, *, upper: bool = False) -> int:
    """An instant a request carries: RFC 3339 (ISO 8601) with its zone, no other form; the CLI
    has read what the operator typed into one (``parse_operator``, on the operator's clock)."""
    if not isinstance(text, str):
        raise UnreadableTime(value=text, why="")
    if _DATE.fullmatch(text.strip()):
        raise UnreadableTime(value=text, why=": it has no time of day and zone")
    return _iso(text, UTC, upper)


def _iso(text: str, zone: tzinfo, upper: bool) -> int:
    typed = text.strip()
    try:
        at = datetime.fromisoformat(typed)
    except ValueError:
        raise UnreadableTime(value=text, why="") from None
    if _DATE.fullmatch(typed):
        at = at.replace(tzinfo=zone)
    if at.tzinfo is None:
        raise UnreadableTime(value=text, why=": it has no zone (add Z for UTC, or +01:00)")
    inside = 1 if at.microsecond % 1000 and not upper else 0  # to_ms rounds down
    return _within(to_ms(at) + inside, text)


def _within(ms: int, text: str) -> int:
    if not 0 <= ms <= MAX_MS:
        raise UnreadableTime(value=text, why=": it is before 1970 or after 9999")
    return ms
