"""What the daemon's parts share (entry layer): the JSON log, the daemon's own events, and its
health as systemd is told it (the last error, degraded storage)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from orchd.core import timefmt
from orchd.core.events import Actor, Draft
from orchd.core.ports import Clock, EventLog
from orchd.errors import OrchdError

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class Log(Protocol):
    def __call__(self, level: str, message: str, **fields: Any) -> None: ...


class JsonLog:
    """One JSON object per line on stderr (journald adds time, host and unit)."""

    def __init__(self, level: str) -> None:
        self.level = LEVELS[level]

    def __call__(self, level: str, message: str, **fields: Any) -> None:
        if LEVELS[level] >= self.level:
            record = {"level": level, "msg": message, **fields}
            sys.stderr.write(json.dumps(record, sort_keys=True, default=str) + "\n")
            sys.stderr.flush()


@dataclass
class Health:
    """The daemon's state as its systemd status line says it."""

    last_error: str = ""
    degraded: bool = False  # storage failing: writes fail and wait, reads and the API go on
    file_ok: bool | None = None  # the last whole-file check of the ledger (None: none done yet)
    longest_tick_ms: int = 0  # the loop's longest tick since the start (the engine's tally)
    longest_record_delay_ms: int = 0  # the longest an engine record waited (the engine's tally)
    # the remote workers as the engine last heard from them (None: no NATS configured)
    workers: Callable[[], list[dict[str, Any]]] | None = None


class Audit:
    """Records an event of the daemon's own; returns its id for the log ("" if it failed)."""

    def __init__(self, ledger: EventLog, clock: Clock, actor: Actor, log: Log) -> None:
        self.ledger, self.clock, self.actor, self.log = ledger, clock, actor, log

    def __call__(self, build: Callable[..., Draft], **fields: Any) -> str:
        """Record ``build(actor, at=now, daemon_pid=pid, **fields)``, a ``drafts`` constructor."""
        now = timefmt.format_ms(self.clock.now_ms())
        draft = build(self.actor, at=now, daemon_pid=os.getpid(), **fields)
        try:
            return self.ledger.append([draft])[0].event_id
        except OrchdError as exc:
            self.log("error", "could not record", event_type=draft.type, error=exc.message)
            return ""
