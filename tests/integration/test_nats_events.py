"""The event feed (adapters/nats/events.py) over a fake JetStream: a failure to open or read the
ledger or to save the position is logged and the feed goes on, from the last position saved."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from orchd.errors import StorageError

events = pytest.importorskip("orchd.adapters.nats.events")


@dataclass(frozen=True)
class FakeEvent:
    type: str
    body: bytes
    event_id: str


@dataclass
class FlakyReader:
    """Three events; the first ``fail`` reads fail as a failing disk does."""

    fail: int
    reads: int = 0

    def tail(self, after: int | None, limit: int) -> list[tuple[int, FakeEvent]]:
        self.reads += 1
        if self.reads <= self.fail:
            raise StorageError(path=Path("ledger.db"), detail="Input/output error")
        start = after or 0
        return [(n, FakeEvent("job.submitted", b"{}", f"e{n}")) for n in range(start + 1, 4)]

    def close(self) -> None:
        pass


@dataclass
class FakeJetStream:
    published: list[str] = field(default_factory=list)

    async def publish(self, subject: str, body: bytes, headers: dict[str, str], **_: Any) -> None:
        self.published.append(headers["Nats-Msg-Id"])


def test_a_read_or_a_save_that_fails_is_logged_and_the_feed_goes_on(tmp_path: Path) -> None:
    logged: list[dict[str, Any]] = []
    folder = tmp_path / "state"
    position = events.Position(folder / "events.position", "instance-1")
    opened: list[FlakyReader] = []

    def open_reader() -> FlakyReader:  # the first opening fails, as a ledger out of reach does
        if not logged:
            raise StorageError(path=Path("ledger.db"), detail="cannot open")
        opened.append(FlakyReader(fail=1))
        return opened[-1]

    feed = events.EventFeed("hq", open_reader, position, logged.append)
    feed.retry_s = 0.05
    js = FakeJetStream()

    async def run_a_while() -> None:
        task = asyncio.create_task(feed.run(js))
        while position.load() != 3:
            await asyncio.sleep(0.05)
            if len(logged) == 3:
                folder.mkdir(exist_ok=True)  # the position's folder is there from now on
        task.cancel()

    asyncio.run(asyncio.wait_for(run_a_while(), 20))
    assert "cannot open" in logged[0]["error"]  # the ledger could not be opened
    assert "Input/output error" in logged[1]["error"]  # then not read
    assert "events.position" in logged[2]["error"]  # the position could not be saved
    assert len(opened) == 1  # opened once it could be, and kept
    assert js.published[-3:] == ["e1", "e2", "e3"]  # then from the last position saved
