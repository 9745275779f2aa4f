"""One fixture, every ledger: each test of this folder runs on the memory ledger
(``tests/memory_ledger.py``) and on ``SqliteLedger`` in tmp_path (APScheduler 4's pattern)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

import pytest

from orchd.adapters.ledger import SqliteLedger
from orchd.core.events import Actor, Draft, Event
from orchd.core.ports import JobLog, StatementStore, TrustQueries, VerifyReport
from orchd.core.progress import OnProgress
from orchd.core.statements import HeadStatement
from orchd.ops import site
from tests.fakes import CountingEntropy, FakeClock
from tests.memory_ledger import MemoryLedger

SITE = "hq"
ACTOR = Actor(uid=1000, user="alice", scopes=("orch:operate",))


class ContractLedger(JobLog, TrustQueries, StatementStore, Protocol):
    """What both ledgers implement (and what this suite checks)."""

    def append(
        self, drafts: Sequence[Draft], *, statements: Sequence[HeadStatement] = ()
    ) -> list[Event]: ...

    def import_events(
        self,
        batches: Iterable[Sequence[Event]],
        then: Callable[[], Sequence[Draft]],
        *,
        dry_run: bool = False,
        restoring: bool = False,
        payloads_checked: bool = False,
        statements: Sequence[HeadStatement] = (),
    ) -> int: ...

    def own_event(self, idempotency_key: str) -> Event | None: ...

    def events_of_type(self, event_type: str) -> list[Event]: ...

    def verify(self, progress: OnProgress = ...) -> VerifyReport: ...

    def close(self) -> None: ...


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "sqlite"])
def ledger(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> Iterator[ContractLedger]:
    entropy = CountingEntropy()
    first = site.initialized(SITE, ACTOR, "test")
    made: ContractLedger
    if request.param == "memory":
        made = MemoryLedger.create(SITE, clock, entropy, first)
    else:
        made = SqliteLedger.create(tmp_path / "ledger.db", SITE, clock, entropy, first)
    yield made
    made.verify()  # every test leaves chains that verify and rows equal to a fold from scratch
    made.close()
