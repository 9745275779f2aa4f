"""What a name of each kind may look like (core layer): one table, used by every input check."""

from __future__ import annotations

import re
from functools import lru_cache

from orchd.errors import InvalidName

_NAMES: dict[str, tuple[re.Pattern[str], str]] = {
    "site id": (
        re.compile(r"[a-z][a-z0-9-]{0,62}"),
        "1-63 characters: a lower-case letter, then a-z, 0-9 or -",
    ),
    "worker": (  # a NATS user's name, the last token of its subjects (no dot, no wildcard)
        re.compile(r"[a-z][a-z0-9-]{0,62}"),
        "1-63 characters: a lower-case letter, then a-z, 0-9 or -",
    ),
    "job type": (
        re.compile(r"[a-z][a-z0-9_-]{0,62}"),
        "1-63 characters: a lower-case letter, then a-z, 0-9, _ or -",
    ),
    "source": (
        re.compile(r"[a-z][a-z0-9_.-]{0,62}"),
        "1-63 characters: a lower-case letter, then a-z, 0-9, _, . or -",
    ),
    "parameter name": (
        re.compile(r"[a-z][a-z0-9_]{0,63}"),
        "1-64 characters: a lower-case letter, then a-z, 0-9 or _",
    ),
    "idempotency key": (
        re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@+=/-]{0,199}"),
        "1-200 characters: letters, digits and _ . : @ + = / -, starting with a letter or digit",
    ),
    "job key": (
        re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+=/-]{0,127}"),
        "1-128 characters: letters, digits and _ . : + = / -, starting with a letter or digit "
        "(@ and a replay: prefix are kept for the keys orchd makes)",
    ),
    "event type": (
        re.compile(r"[a-z][a-z_]{0,31}\.[a-z][a-z_]{0,31}"),
        "two dotted lower-case words, e.g. job.submitted",
    ),
    "scope": (
        re.compile(r"[a-z][a-z0-9_-]{0,31}(:[a-z][a-z0-9_-]{0,31})?"),
        "a word or word:word in lower case, e.g. orch:operate",
    ),
    "ticket": (
        re.compile(r"[^\s\x00-\x1f\x7f-\x9f]{1,128}"),
        "1-128 printable characters without spaces, e.g. SEC-1234",
    ),
    "user": (
        re.compile(r"[A-Za-z0-9_.@-][A-Za-z0-9_.@$-]{0,63}"),
        "a login name of up to 64 characters",
    ),
}

MAX_TEXT = 256


def check_name(kind: str, value: object) -> str:
    """Return ``value`` if it is a valid name of ``kind``; otherwise raise InvalidName."""
    pattern, expected = _NAMES[kind]
    if isinstance(value, str) and pattern.fullmatch(value) and value.isprintable():
        return value
    raise InvalidName(what=kind, value=value, expected=expected)


def check_repeated(kind: str, value: object) -> str:
    """``check_name`` for the names events repeat (an origin, an event type, a job type, a
    source): each one checked once, then remembered; a bad one raises every time."""
    if type(value) is str:
        return _known(kind, value)
    return check_name(kind, value)


@lru_cache(maxsize=4096)
def _known(kind: str, value: str) -> str:
    return check_name(kind, value)


def check_text(kind: str, value: object, max_chars: int = MAX_TEXT) -> str:
    """Free text (a reason, a parameter value): printable, one line, non-empty, bounded."""
    if (
        isinstance(value, str)
        and 0 < len(value) <= max_chars
        and value.isprintable()
        and value.strip() == value
    ):
        return value
    raise InvalidName(
        what=kind,
        value=value,
        expected=f"1-{max_chars} printable characters on one line, no leading or trailing space",
    )
