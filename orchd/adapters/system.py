"""The real clock, entropy and caller identity (adapters layer)."""

from __future__ import annotations

import os
import pwd
import time
from pathlib import Path

from orchd.core.events import Actor
from orchd.core.names import check_name
from orchd.errors import InvalidName


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic_ms(self) -> int:
        return time.monotonic_ns() // 1_000_000


class OffsetClock(SystemClock):
    """Test-only (``ORCHD_TEST_HOOKS=1``): the wall clock moved by the number of milliseconds in
    ``offset_file`` (re-read at most every 50 ms), so tests can jump a real daemon's clock. The
    monotonic clock is never moved, exactly as when an administrator sets the time."""

    def __init__(self, offset_file: Path) -> None:
        self.offset_file = offset_file
        self.offset_ms, self.read_at = 0, -(10**12)

    def now_ms(self) -> int:
        mono = self.monotonic_ms()
        if mono - self.read_at >= 50:
            self.read_at = mono
            try:
                self.offset_ms = int(self.offset_file.read_text().strip() or 0)
            except (FileNotFoundError, ValueError):
                self.offset_ms = 0
        return super().now_ms() + self.offset_ms


def site_clock(state_dir: Path) -> SystemClock:
    """The real clock, or with ``ORCHD_TEST_HOOKS=1`` one that tests may move through
    ``STATE_DIR/test-clock-offset``."""
    if os.environ.get("ORCHD_TEST_HOOKS") == "1":
        return OffsetClock(state_dir / "test-clock-offset")
    return SystemClock()


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
