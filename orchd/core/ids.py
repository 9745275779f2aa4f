"""Sortable identifiers (ULID layout) built from a given time and given entropy (core layer).

26 characters of Crockford base32: 48 bits of milliseconds since the epoch, then 80 bits of
entropy. Ids sort by creation time as plain strings; equal milliseconds sort by entropy.
"""

from __future__ import annotations

import re

from orchd.errors import InvalidName

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ENTROPY_BYTES = 10
_ID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")
_MAX_MS = (1 << 48) - 1


def new_id(at_ms: int, entropy: bytes) -> str:
    """An id for the instant ``at_ms`` from exactly ten bytes of caller-supplied entropy."""
    if not 0 <= at_ms <= _MAX_MS:
        raise ValueError(f"time {at_ms} ms is outside the id range")
    if len(entropy) != ENTROPY_BYTES:
        raise ValueError(f"ids need {ENTROPY_BYTES} bytes of entropy, got {len(entropy)}")
    number = (at_ms << 80) | int.from_bytes(entropy, "big")
    chars = []
    for _ in range(26):
        chars.append(ALPHABET[number & 31])
        number >>= 5
    return "".join(reversed(chars))


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
