"""UTC instants as canonical RFC 3339 strings, millisecond precision, ``Z`` (core layer)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from orchd.errors import InvalidTime

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


def parse_operator(text: str) -> int:
    """An instant an operator typed: ISO 8601 with a zone (``Z`` or ``+02:00``), to epoch ms.

    Seconds and fractions are optional; a time without a zone is refused rather than guessed.
    """
    try:
        at = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise InvalidTime(value=text) from None
    if at.tzinfo is None:
        raise InvalidTime(value=text)
    ms = to_ms(at)
    if not 0 <= ms <= MAX_MS:
        raise InvalidTime(value=text)
    return ms
