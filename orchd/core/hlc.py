"""Hybrid logical clock (Kulkarni et al., 2014) with the physical time passed in (core layer).

A timestamp is ``(wall_ms, logical)``: it never goes backwards on a site even when the wall clock
does, and it stays close to real time. Encoded as ``WWWWWWWWWWWWW-LLLLLL`` (13 + 6 digits), so the
text form sorts like the value. When ``logical`` would pass 999999 the wall part moves on by one
millisecond instead, which keeps the order and the fixed width.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from orchd.errors import MalformedEvent

_TEXT = re.compile(r"([0-9]{13})-([0-9]{6})")
_MAX_LOGICAL = 999_999
MAX_WALL_MS = 10**13 - 1  # 13 digits: until the year 2286


@dataclass(frozen=True, slots=True, order=True)
class Hlc:
    wall_ms: int
    logical: int

    def encode(self) -> str:
        if not (0 <= self.wall_ms <= MAX_WALL_MS and 0 <= self.logical <= _MAX_LOGICAL):
            raise MalformedEvent(where="", detail=f"hlc {self} is outside its text form")
        return f"{self.wall_ms:013d}-{self.logical:06d}"


ZERO = Hlc(wall_ms=0, logical=0)


def _bump(wall_ms: int, logical: int) -> Hlc:
    if logical > _MAX_LOGICAL:
        return Hlc(wall_ms=wall_ms + 1, logical=0)
    return Hlc(wall_ms=wall_ms, logical=logical)


def tick(last: Hlc, now_ms: int) -> Hlc:
    """The timestamp of a local event, given the site's last timestamp and the wall clock."""
    if now_ms > last.wall_ms:
        return Hlc(wall_ms=now_ms, logical=0)
    return _bump(last.wall_ms, last.logical + 1)


def ticks(last: Hlc, now_ms: int, count: int) -> list[str]:
    """The text forms of ``count`` local events' timestamps in a row from ``last``: what
    ``tick`` then ``encode`` give event by event, without building each ``Hlc``."""
    if count < 1:
        return []
    first = tick(last, now_ms)
    wall, logical, texts = first.wall_ms, first.logical, [first.encode()]  # bounds all below
    prefix = f"{wall:013d}-"
    for _ in range(count - 1):  # the first is at or past now_ms: the rest only count on
        if logical < _MAX_LOGICAL:
            logical += 1
        else:
            wall, logical = wall + 1, 0
            prefix = f"{wall:013d}-"
        texts.append(f"{prefix}{logical:06d}")
    Hlc(wall_ms=wall, logical=logical).encode()  # the wall part only grows: this bounds it above
    return texts


def receive(last: Hlc, remote: Hlc, now_ms: int) -> Hlc:
    """The local timestamp after observing ``remote`` (an imported event)."""
    wall = max(last.wall_ms, remote.wall_ms, now_ms)
    if wall == last.wall_ms == remote.wall_ms:
        return _bump(wall, max(last.logical, remote.logical) + 1)
    if wall == last.wall_ms:
        return _bump(wall, last.logical + 1)
    if wall == remote.wall_ms:
        return _bump(wall, remote.logical + 1)
    return Hlc(wall_ms=wall, logical=0)


def check(text: object) -> None:
    """Raise as ``parse`` does unless ``text`` is an HLC's text form (builds nothing)."""
    if not isinstance(text, str) or _TEXT.fullmatch(text) is None:
        parse(text)


def parse(text: object) -> Hlc:
    match = _TEXT.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise MalformedEvent(where="", detail=f"hlc {text!r} is not WWWWWWWWWWWWW-LLLLLL")
    return Hlc(wall_ms=int(match[1]), logical=int(match[2]))
