"""What runs next: each schedule's next and last slot, its last job's outcome, the slots due and
the slots skipped (ops layer). ``orchd schedules list`` shows it as ``systemctl list-timers``
shows timers; the console will show the same rows.

A schedule's last slot is the last one the ledger dealt with (its job created, or skipped, or the
slot it was first armed at); the slots due are those after it that have come (the daemon was
down, or takes them at its next wake); the slots skipped are those its misfire rule skipped, in
all. A schedule whose source is paused still creates its jobs; they wait throttled.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchd.core import timefmt
from orchd.core.policy import Policy, slot_key
from orchd.core.ports import Clock, JobQueries, SlotCounter, SlotLister

from .scheduling import jitter_ms

AHEAD_MS = 400 * 86_400_000  # the next slot is looked for this far ahead (a yearly cron's)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleRow:
    name: str
    job_type: str
    source: str | None
    cron: str
    timezone: str
    next_slot: str | None  # None: none within AHEAD_MS
    next_run: str | None  # the next slot with its jitter: when its job is created
    left_s: int | None  # seconds from now to next_run
    last_slot: str | None  # None: never armed yet (the daemon arms it at its first wake)
    last_job: str | None  # the last slot's job, if it made one
    last_state: str | None  # that job's state now
    due: int
    skipped: int
    paused: bool  # its source is paused here


def schedules(
    ledger: JobQueries, policy: Policy, clock: Clock, slots: SlotLister, count: SlotCounter
) -> list[ScheduleRow]:
    """Every schedule of the policy, by name."""
    now_ms = clock.now_ms()
    last = ledger.schedule_state()
    skipped = ledger.skipped_slots()
    paused = {pause.source for pause in ledger.pauses() if pause.origin == ledger.site_id}
    found = []
    for name, sched in sorted(policy.schedules.items()):
        upcoming = slots(sched.cron, sched.timezone, now_ms, now_ms + AHEAD_MS, limit=1)
        next_ms = upcoming[0] if upcoming else None
        run_ms = None if next_ms is None else next_ms + jitter_ms(sched, next_ms)
        last_at = last.get(name)
        job = None
        due = 0
        if last_at is not None:
            last_ms = timefmt.parse_canonical(last_at)
            job = ledger.job_by_key(slot_key(name, last_ms))
            due = count(sched.cron, sched.timezone, last_ms, now_ms)
        found.append(
            ScheduleRow(
                name=name,
                job_type=sched.job_type,
                source=sched.source,
                cron=sched.cron,
                timezone=sched.timezone,
                next_slot=None if next_ms is None else timefmt.format_ms(next_ms),
                next_run=None if run_ms is None else timefmt.format_ms(run_ms),
                left_s=None if run_ms is None else max(0, (run_ms - now_ms) // 1000),
                last_slot=last_at,
                last_job=None if job is None else job.job_id,
                last_state=None if job is None else job.state,
                due=due,
                skipped=skipped.get(name, 0),
                paused=sched.source in paused,
            )
        )
    return found
