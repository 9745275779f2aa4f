"""Sortable identifiers (ULID layout) built from a given time and given entropy (core layer).

26 characters of Crockford base32: 48 bits of milliseconds since the epoch, then 80 bits of
entropy. Ids sort by creation time as plain strings; equal milliseconds sort by entropy.

An id's **short form** is its last ``SHORT`` characters: 40 bits of its entropy. Its first
characters are its time, the same for every id made within minutes of it (a backfill makes
hundreds in one millisecond), so a prefix short enough to type is rarely unique; 40 random bits
are, in practice: among a million ids a given one shares its short form with another at odds
of about one in a million, and then the candidates are listed. ``typed`` reads what an operator
typed (Crockford's rules: any case, I and L for 1, O for 0).
"""

from __future__ import annotations

import re
from functools import lru_cache

from orchd.errors import InvalidName

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ENTROPY_BYTES = 10
_CHARS = frozenset(ALPHABET)
_ID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")
_MAX_MS = (1 << 48) - 1
SHORT = 8  # the short form: the last characters
MIN_PREFIX = 6  # the fewest first characters taken for an id
_TYPED = str.maketrans("ILO", "110")
_PAIRS = [first + second for first in ALPHABET for second in ALPHABET]  # by 10-bit value


def new_id(at_ms: int, entropy: bytes) -> str:
    """An id for the instant ``at_ms`` from exactly ten bytes of caller-supplied entropy."""
    if len(entropy) != ENTROPY_BYTES:
        raise ValueError(f"ids need {ENTROPY_BYTES} bytes of entropy, got {len(entropy)}")
    return new_ids(at_ms, entropy)[0]


def new_ids(at_ms: int, entropy: bytes) -> list[str]:
    """One id for the instant ``at_ms`` per ten bytes of ``entropy``, in order."""
    if not 0 <= at_ms <= _MAX_MS:
        raise ValueError(f"time {at_ms} ms is outside the id range")
    if len(entropy) % ENTROPY_BYTES:
        raise ValueError(f"ids need {ENTROPY_BYTES} bytes of entropy each, got {len(entropy)}")
    prefix, p, made = _time_part(at_ms), _PAIRS, []
    for start in range(0, len(entropy), ENTROPY_BYTES):
        r = int.from_bytes(entropy[start : start + ENTROPY_BYTES], "big")  # 8 pairs, from the top
        made.append(
            prefix
            + p[r >> 70]
            + p[r >> 60 & 1023]
            + p[r >> 50 & 1023]
            + p[r >> 40 & 1023]
            + p[r >> 30 & 1023]
            + p[r >> 20 & 1023]
            + p[r >> 10 & 1023]
            + p[r & 1023]
        )
    return made


@lru_cache(maxsize=64)
def _time_part(at_ms: int) -> str:
    """The first ten characters: the 48-bit time with two leading zero bits, 5 bits a char."""
    return "".join(ALPHABET[(at_ms >> shift) & 31] for shift in range(45, -1, -5))


def id_time_ms(value: str) -> int:
    """The millisecond timestamp an id was built from."""
    check_id(value)
    number = 0
    for char in value:
        number = (number << 5) | ALPHABET.index(char)
    return number >> 80


def is_id(value: object) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def check_id(value: object, what: str = "id") -> str:
    if isinstance(value, str) and _ID.fullmatch(value):
        return value
    raise InvalidName(what=what, value=value, expected="26 characters of Crockford base32 (a ULID)")


def short(value: str) -> str:
    """The short form of an id (its last ``SHORT`` characters) that tables show."""
    return value[-SHORT:]


def typed(text: str) -> str:
    """What an operator typed for an id, as ids are written: upper case, I and L read as 1 and
    O as 0 (Crockford base32 has none of them)."""
    return text.upper().translate(_TYPED)


def could_be(text: str) -> bool:
    """``text`` (as ``typed`` gives it) is made of id characters: it may start or end an id."""
    return bool(text) and set(text) <= _CHARS
