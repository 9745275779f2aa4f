"""Backfill: create the jobs of a schedule's past slots, audited (ops layer).

Every slot of the window gets the job it would have had, keyed ``{schedule}@{slot}``, so a slot
the ledger already holds (run by the scheduler or by an earlier backfill) is left alone. All new
jobs are one append: the whole window is recorded or none of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchd.core import drafts, ids, timefmt
from orchd.core.events import Actor, Draft
from orchd.core.policy import Policy, Schedule, check_change, slot_key
from orchd.core.ports import Clock, Entropy, JobLog, JobQueries, SlotLister
from orchd.core.progress import Meter, OnProgress, quiet
from orchd.core.projection import JobView
from orchd.errors import BadInput, InvalidName

SCOPE = "orch:backfill"
MAX_SLOTS = 10_000
EVERY_SLOTS = 500  # slots looked up between two progress reports


@dataclass(frozen=True, slots=True, kw_only=True)
class Slot:
    at_ms: int
    key: str
    job: JobView | None  # the job the ledger already holds for this slot


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    schedule: str
    from_ms: int
    to_ms: int
    reason: str
    ticket: str | None = None


def plan(
    ledger: JobQueries,
    policy: Policy,
    list_slots: SlotLister,
    request: Request,
    progress: OnProgress = quiet,
) -> list[Slot]:
    """Every slot of the window (both ends included) and the job it already has, if any; a dry
    run is refused what the backfill would be refused (a reason, the ticket the policy asks).
    ``progress`` hears of the slots looked up (``backfill``, step ``slots``)."""
    check_change(policy, "backfill", request.reason, request.ticket)
    schedule = _schedule(policy, request.schedule)
    if request.to_ms < request.from_ms:
        raise BadInput(detail="--to is before --from")
    found = list_slots(
        schedule.cron, schedule.timezone, request.from_ms - 1, request.to_ms, limit=MAX_SLOTS
    )
    meter = Meter("backfill", "slots", len(found), progress, every=EVERY_SLOTS, unit="slots")
    planned = []
    for at_ms in found:
        planned.append(_slot(ledger, schedule.name, at_ms))
        meter.add(1)
    meter.end()
    return planned


def _slot(ledger: JobQueries, schedule: str, at_ms: int) -> Slot:
    key = slot_key(schedule, at_ms)
    return Slot(at_ms=at_ms, key=key, job=ledger.job_by_key(key))


def backfill(
    ledger: JobLog,
    clock: Clock,
    entropy: Entropy,
    actor: Actor,
    policy: Policy,
    list_slots: SlotLister,
    request: Request,
    progress: OnProgress = quiet,
) -> tuple[list[Slot], list[JobView]]:
    """Create the missing jobs of the window in one transaction; return the plan and them (none
    when every slot has its job already: nothing is recorded then)."""
    slots = plan(ledger, policy, list_slots, request, progress)
    schedule = policy.schedules[request.schedule]
    drafts = [
        _draft(policy, schedule, slot, clock, entropy, actor, request)
        for slot in slots
        if slot.job is None
    ]
    created = ledger.append(drafts) if drafts else []
    return slots, [job for e in created if (job := ledger.job(e.payload["job_id"])) is not None]


def _schedule(policy: Policy, name: str) -> Schedule:
    schedule = policy.schedules.get(name)
    if schedule is None:
        known = ", ".join(sorted(policy.schedules)) or "none in the policy"
        raise InvalidName(what="schedule", value=name, expected=f"one of: {known}")
    return schedule


def _draft(
    policy: Policy,
    schedule: Schedule,
    slot: Slot,
    clock: Clock,
    entropy: Entropy,
    actor: Actor,
    request: Request,
) -> Draft:
    job_type = policy.job_types[schedule.job_type]
    defaults = {k: v for k, v in job_type.params.items() if v is not None}
    return drafts.job_submitted(
        actor,
        job_id=ids.new_id(clock.now_ms(), entropy.token(ids.ENTROPY_BYTES)),
        job_type=job_type.name,
        key=slot.key,
        params={**defaults, **schedule.params},
        priority=job_type.priority,
        state="waiting" if job_type.after else "queued",
        reason=request.reason,
        ticket=request.ticket,
        source=schedule.source,
        schedule=schedule.name,
        slot_at=timefmt.format_ms(slot.at_ms),
    )
