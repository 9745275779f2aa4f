"""What an operator asks first: queues, running, throttled, failures, freshness (ops layer)."""

from __future__ import annotations

from dataclasses import dataclass

from orchd.core import timefmt
from orchd.core.machines import JOB
from orchd.core.ports import Clock, Ledger
from orchd.core.projection import JobView, PauseView, RunView

SCOPE = "orch:read"
RECENT = 10


@dataclass(frozen=True, slots=True, kw_only=True)
class Freshness:
    source: str | None
    job_type: str
    last_success_at: str
    age_s: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    site_id: str
    now: str
    states: dict[str, int]  # every job state, zero included
    running: list[JobView]
    throttled: list[JobView]  # with eligible_at and cause
    dead: list[JobView]  # the most recently dead first, at most RECENT
    failures: list[RunView]  # the most recent failed or timed-out runs, at most RECENT
    paused: list[PauseView]
    freshness: list[Freshness]


def status(ledger: Ledger, clock: Clock) -> Status:
    now_ms = clock.now_ms()
    counts = ledger.state_counts()
    dead = sorted(ledger.jobs(state="dead", source=None), key=lambda j: j.updated_at)
    return Status(
        site_id=ledger.site_id,
        now=timefmt.format_ms(now_ms),
        states={state: counts.get(state, 0) for state in sorted(JOB.states)},
        running=list(ledger.jobs(state="running", source=None)),
        throttled=sorted(
            ledger.jobs(state="throttled", source=None),
            key=lambda j: (j.eligible_at or "", j.job_id),
        ),
        dead=dead[::-1][:RECENT],
        failures=ledger.recent_runs(("failed", "timed_out"), RECENT),
        freshness=[_freshness(row, now_ms) for row in ledger.last_successes()],
        paused=ledger.pauses(),
    )


def _freshness(row: tuple[str | None, str, str], now_ms: int) -> Freshness:
    source, job_type, at = row
    age_s = max(0, (now_ms - timefmt.parse_canonical(at)) // 1000)
    return Freshness(source=source, job_type=job_type, last_success_at=at, age_s=age_s)
