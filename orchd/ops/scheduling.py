"""Turning schedules into jobs: due slots, misfires, skipped slots (ops layer).

``fire`` is called whenever the daemon's timer (or its periodic check) wakes it. Which slots are
due comes from the ledger's last dealt-with slot per schedule and the clock port, never from the
timer itself, so each slot yields one job with the key ``{schedule}@{slot}`` whoever creates it
(the daemon or ``orchd backfill``), and a restart or a clock jump never runs a slot twice.
"""

from __future__ import annotations

import hashlib

from orchd.core import drafts, ids, schedule, timefmt
from orchd.core.events import Actor, Draft
from orchd.core.policy import Policy, Schedule, slot_key
from orchd.core.ports import Clock, Entropy, JobLog, SlotCounter, SlotLister

from .jobs import initial_state

SCOPE = "orch:operate"
HOUR_MS = 3_600_000


def jitter_ms(sched: Schedule, slot_ms: int) -> int:
    """A slot's fixed delay within the schedule's jitter (the same on every run and site)."""
    if sched.jitter_s <= 0:
        return 0
    digest = hashlib.sha256(slot_key(sched.name, slot_ms).encode()).digest()
    return int.from_bytes(digest[:8], "big") % (sched.jitter_s * 1000 + 1)


def fire(
    ledger: JobLog,
    clock: Clock,
    entropy: Entropy,
    actor: Actor,
    policy: Policy,
    slots: SlotLister,
    count: SlotCounter,
    *,
    grace_ms: int,
) -> int:
    """Create the jobs of every due slot and record the missed ones; return the jobs created."""
    now_ms = clock.now_ms()
    state = ledger.schedule_state()
    batch: list[Draft] = []
    created = 0
    for name, sched in sorted(policy.schedules.items()):
        last = state.get(name)
        if last is None:
            batch.append(
                drafts.schedule_armed(actor, schedule=name, slot_at=timefmt.format_ms(now_ms))
            )
            continue
        margin_ms = grace_ms + sched.jitter_s * 1000
        newest, total, first_ms = _window(
            sched,
            slots,
            count,
            timefmt.parse_canonical(last),
            now_ms,
            sched.catch_up_limit + 1,
            margin_ms,
        )
        if total == 0:
            continue
        due = schedule.due(
            newest,
            total=total,
            first_ms=first_ms,
            now_ms=now_ms,
            grace_ms=grace_ms,
            misfire=sched.misfire,
            catch_up_limit=sched.catch_up_limit,
        )
        for skipped in due.skipped:
            batch.append(
                drafts.schedule_skipped(
                    actor,
                    schedule=name,
                    first_slot=timefmt.format_ms(skipped.first_ms),
                    last_slot=timefmt.format_ms(skipped.last_ms),
                    count=skipped.count,
                )
            )
        batch += [_job(policy, sched, slot, clock, entropy, actor) for slot in due.run]
        created += len(due.run)
    if batch:
        ledger.append(batch)
    return created


def _window(
    sched: Schedule,
    slots: SlotLister,
    count: SlotCounter,
    last_ms: int,
    now_ms: int,
    need: int,
    margin_ms: int,
) -> tuple[list[int], int, int]:
    """(the newest due slots, how many are due in all, the first of them) after ``last_ms``:
    the newest hold at least ``need`` slots older than ``margin_ms``, or every due slot. A slot
    waits out its jitter, and the ones after it wait with it."""
    cron, zone = sched.cron, sched.timezone
    total = count(cron, zone, last_ms, now_ms)
    if total == 0:
        return [], 0, 0
    span_ms = HOUR_MS + 2 * margin_ms
    while True:
        start_ms = max(last_ms, now_ms - span_ms)
        newest = slots(cron, zone, start_ms, now_ms, limit=total)
        if start_ms == last_ms or sum(now_ms - s > margin_ms for s in newest) >= need:
            break
        span_ms *= 4
    first_ms = slots(cron, zone, last_ms, now_ms, limit=1)[0]
    for at, slot in enumerate(newest):
        if slot + jitter_ms(sched, slot) > now_ms:
            total -= len(newest) - at
            newest = newest[:at]
            break
    return newest, total, first_ms


def _job(
    policy: Policy, sched: Schedule, slot_ms: int, clock: Clock, entropy: Entropy, actor: Actor
) -> Draft:
    job_type = policy.job_types[sched.job_type]
    return drafts.job_submitted(
        actor,
        job_id=ids.new_id(clock.now_ms(), entropy.token(ids.ENTROPY_BYTES)),
        job_type=job_type.name,
        key=slot_key(sched.name, slot_ms),
        params=dict(sched.params),
        priority=job_type.priority,
        state=initial_state(job_type),
        source=sched.source,
        schedule=sched.name,
        slot_at=timefmt.format_ms(slot_ms),
    )


def next_wake_ms(policy: Policy, slots: SlotLister, now_ms: int) -> int | None:
    """The earliest instant at which some schedule's next slot (with its jitter) comes due."""
    wakes = []
    for sched in policy.schedules.values():
        upcoming = slots(sched.cron, sched.timezone, now_ms, now_ms + 400 * 86_400_000, limit=1)
        if upcoming:
            wakes.append(upcoming[0] + jitter_ms(sched, upcoming[0]))
    return min(wakes) if wakes else None
