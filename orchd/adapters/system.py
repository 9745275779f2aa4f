"""The real clock, entropy and caller identity (adapters layer)."""

from __future__ import annotations

import os
import pwd
import time

from orchd.core.events import Actor
from orchd.core.names import check_name
from orchd.errors import InvalidName


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic_ms(self) -> int:
        return time.monotonic_ns() // 1_000_000


class OsEntropy:
    def token(self, size: int) -> bytes:
        return os.urandom(size)


def local_actor(*scopes: str) -> Actor:
    """The user running this process, acting with ``scopes`` on a site it may write directly."""
    return actor_for_uid(os.getuid(), *scopes)


def actor_for_uid(uid: int, *scopes: str) -> Actor:
    """The user with ``uid`` (e.g. the owner of a spool file), acting with ``scopes``."""
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = f"uid{uid}"
    try:
        check_name("user", user)
    except InvalidName:
        user = f"uid{uid}"
    return Actor(uid=uid, user=user, scopes=tuple(sorted(scopes)))
