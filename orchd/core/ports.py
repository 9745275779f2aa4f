"""The interfaces the use cases need from the outside world (core layer).

Adapters implement them; ops and tests depend only on these Protocols.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from orchd.core.events import Draft, Event
from orchd.core.projection import JobView, OverrideView, PauseView, RunView


class Clock(Protocol):
    def now_ms(self) -> int:
        """Wall-clock milliseconds since the Unix epoch."""
        ...


class Entropy(Protocol):
    def token(self, size: int) -> bytes:
        """``size`` unpredictable bytes."""
        ...


class SlotLister(Protocol):
    def __call__(
        self, expression: str, timezone: str, after_ms: int, until_ms: int, *, limit: int
    ) -> list[int]:
        """Every slot t (epoch ms) of the schedule with after_ms < t <= until_ms, in order."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyReport:
    origins: dict[str, int]  # origin -> verified head seq
    events: int
    projection_digest: str


class Ledger(Protocol):
    """The event log of one site and its projections."""

    @property
    def site_id(self) -> str: ...

    def append(self, drafts: Sequence[Draft]) -> list[Event]:
        """Seal and record ``drafts`` in one transaction, all or nothing.

        A draft whose idempotency key this site already recorded is not appended again; the
        recorded event is returned in its place.
        """
        ...

    def job(self, job_id: str) -> JobView | None: ...

    def job_by_key(self, key: str) -> JobView | None: ...

    def jobs_with_prefix(self, prefix: str, limit: int) -> list[JobView]: ...

    def jobs(
        self,
        *,
        state: str | None,
        source: str | None,
        job_type: str | None = None,
        updated_since: str | None = None,
    ) -> Iterator[JobView]: ...

    def replays_of(self, job_id: str) -> list[JobView]: ...

    def pauses(self) -> list[PauseView]: ...

    def overrides(self) -> list[OverrideView]: ...

    def state_counts(self) -> dict[str, int]: ...

    def last_successes(self) -> list[tuple[str | None, str, str]]: ...

    def recent_runs(self, states: Sequence[str], limit: int) -> list[RunView]: ...

    def runs_of(self, job_id: str) -> list[RunView]: ...

    def events_of(self, job_id: str) -> list[Event]: ...

    def verify(self) -> VerifyReport:
        """Check every chain and that the projections equal a rebuild; raise on the first fault."""
        ...

    def rebuild(self) -> str:
        """Re-derive every projection from the event log; return the projection digest."""
        ...
