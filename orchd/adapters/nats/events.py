"""The event stream for incident response (adapters layer; imports ``nats``, the
``orchd[workers]`` extra): every event this site commits, its envelope as bundles carry it (the
canonical body), published on ``orchd.SITE.events.TYPE`` to the stream ``ORCHD_SITE_EVENTS``.

- In local commit order (the ledger's position), one at a time, each acknowledged by the stream
  before the next: a subscriber reads them in the order this site recorded them.
- At least once, never skipped: the position of the last event the stream acknowledged is kept
  in ``STATE_DIR/events.position`` (outside the chain: a counter of this host's, not history),
  written after each batch; after a crash or a lost connection the feed starts again from it,
  and an event published twice is stored once (``Nats-Msg-Id``: its event id, within the
  stream's duplicate window).
- A ledger restored or rebuilt (another instance in ``site.json``) starts from its first event.

The feed runs on the dispatcher's thread (``dispatch.py``) with a read-only connection of its
own, opened there; it never writes the ledger.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import api
from nats.js.errors import NotFoundError

from orchd.core.events import Event
from orchd.errors import OrchdError

from .. import files

BATCH = 256  # events read and published between two saves of the position
IDLE_S = 0.2  # how often an idle feed looks for new events
RETENTION_S = 30 * 86_400.0  # the stream keeps a month; the ledger keeps everything
DUPLICATE_WINDOW_S = 3600.0
POSITION_FILE = "events.position"

Log = Callable[[dict[str, Any]], None]


class Reader(Protocol):
    def tail(self, after: int | None, limit: int) -> list[tuple[int, Event]]: ...

    def close(self) -> None: ...


def events_stream(site: str) -> str:
    return f"ORCHD_{site.upper().replace('-', '_')}_EVENTS"


def subject(site: str, event_type: str) -> str:
    return f"orchd.{site}.events.{event_type}"


@dataclass(frozen=True, slots=True)
class Position:
    """Where the feed is: the last position the stream acknowledged, for one ledger instance."""

    path: Path
    instance: str

    def load(self) -> int:
        try:
            said = json.loads(self.path.read_text())
        except FileNotFoundError:
            return 0
        except (OSError, ValueError):
            return 0  # unreadable: from the start again (at least once, never skipped)
        if not isinstance(said, dict) or said.get("instance") != self.instance:
            return 0
        position = said.get("position")
        return position if isinstance(position, int) and position >= 0 else 0

    def save(self, position: int) -> None:
        data = json.dumps({"instance": self.instance, "position": position}).encode()
        fresh = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        fresh.unlink(missing_ok=True)
        files.write_new(fresh, data, 0o640)
        fresh.replace(self.path)  # a crash loses at most this save: sent again, stored once


async def ensure(js: Any, site: str) -> None:
    config = api.StreamConfig(
        name=events_stream(site),
        subjects=[f"orchd.{site}.events.>"],
        retention=api.RetentionPolicy.LIMITS,
        storage=api.StorageType.FILE,
        max_age=RETENTION_S,
        duplicate_window=DUPLICATE_WINDOW_S,
    )
    try:
        await js.stream_info(config.name)
    except NotFoundError:
        await js.add_stream(config)
    else:
        await js.update_stream(config)


class EventFeed:
    retry_s = 1.0  # after a failure, before the feed goes on

    def __init__(self, site: str, open_reader: Callable[[], Reader], position: Position, log: Log):
        self.site, self.open_reader, self.position, self.log = site, open_reader, position, log

    async def run(self, js: Any) -> None:
        """Publish until cancelled; a failure (NATS, reading the ledger, saving the position)
        is logged and the feed goes on from the last position the stream acknowledged."""
        reader: Reader | None = None
        try:
            while True:
                try:
                    reader = reader or self.open_reader()
                    await self._publish_all(js, reader)
                except (NatsError, NatsTimeout, TimeoutError, OrchdError, OSError) as exc:
                    error = exc.message if isinstance(exc, OrchdError) else str(exc)
                    self.log({"message": "event stream behind, trying again", "error": error})
                    await asyncio.sleep(self.retry_s)  # NATS, the ledger's disk or the position's
        finally:
            if reader is not None:
                reader.close()

    async def _publish_all(self, js: Any, reader: Reader) -> None:
        position = self.position.load()
        while True:
            batch = reader.tail(position, BATCH)
            if not batch:
                await asyncio.sleep(IDLE_S)
                continue
            for at, event in batch:
                await js.publish(
                    subject(self.site, event.type),
                    event.body,
                    headers={"Nats-Msg-Id": event.event_id},
                    timeout=2,
                )
                position = at
            self.position.save(position)
