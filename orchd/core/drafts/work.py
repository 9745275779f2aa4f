"""Drafts of the work: jobs, runs, requests between sites, the spool, schedules (core layer)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchd.core.events import Actor, Draft

from .common import keyed, present

# --- jobs and runs ---------------------------------------------------------------------------


def job_submitted(
    actor: Actor,
    *,
    job_id: str,
    job_type: str,
    key: str,
    params: dict[str, str],
    priority: int,
    state: str = "queued",
    reason: str | None = None,
    ticket: str | None = None,
    **optional: str | None,
) -> Draft:
    """A new job, once per idempotency ``key`` (the submitter's or one made up); ``optional``
    fields that are None are left out."""
    payload = {
        "job_id": job_id,
        "job_type": job_type,
        "key": key,
        "params": params,
        "priority": priority,
        "state": state,
        **present(**optional),
    }
    return Draft(
        type="job.submitted",
        actor=actor,
        idempotency_key=keyed("job.submitted", key),
        payload=payload,
        reason=reason,
        ticket=ticket,
    )


def job_transitioned(
    actor: Actor, *, job_id: str, from_state: str, to: str, attempts: int, extra: Mapping[str, str]
) -> Draft:
    """The engine moving a job (once per move from a state at an attempt)."""
    return Draft(
        type="job.transitioned",
        actor=actor,
        idempotency_key=keyed("job.transitioned", job_id, from_state, to, attempts),
        payload={"job_id": job_id, "from": from_state, "to": to, **extra},
    )


def job_throttled(
    actor: Actor, *, job_id: str, from_state: str, decision: str, extra: Mapping[str, str]
) -> Draft:
    """The engine holding a job back; each hold is a new ``decision`` (an id)."""
    return Draft(
        type="job.transitioned",
        actor=actor,
        idempotency_key=keyed("job.throttled", job_id, decision),
        payload={"job_id": job_id, "from": from_state, "to": "throttled", **extra},
    )


def job_cancelled(
    actor: Actor, *, job_id: str, from_state: str, reason: str, ticket: str | None
) -> Draft:
    """An operator's cancel (once per job)."""
    return Draft(
        type="job.transitioned",
        actor=actor,
        idempotency_key=keyed("job.cancelled", job_id),
        payload={"job_id": job_id, "from": from_state, "to": "cancelled", "cause": "operator"},
        reason=reason,
        ticket=ticket,
    )


def run_leased(
    actor: Actor, *, run_id: str, job_id: str, attempt: int, lease_expires_at: str
) -> Draft:
    payload = {
        "run_id": run_id,
        "job_id": job_id,
        "attempt": attempt,
        "lease_expires_at": lease_expires_at,
    }
    return Draft(
        type="run.leased", actor=actor, idempotency_key=keyed("run.leased", run_id), payload=payload
    )


def run_started(
    actor: Actor,
    *,
    run_id: str,
    job_id: str,
    pid: int | None,
    worker: str | None = None,
    log: str | None = None,
) -> Draft:
    """A run's process started: here (``pid``), or on the remote ``worker`` that claimed it
    (``log``: the run's log on that worker's host)."""
    payload = present(run_id=run_id, job_id=job_id, pid=pid, worker=worker, log=log)
    return Draft(
        type="run.started",
        actor=actor,
        idempotency_key=keyed("run.started", run_id),
        payload=payload,
    )


def run_ended(
    actor: Actor,
    *,
    run_id: str,
    job_id: str,
    outcome: str,
    exit_code: int | None,
    output: str | None,
    job_state: str | None,
    cause: str | None,
    eligible_at: str | None,
) -> Draft:
    """A run's end; ``job_state`` (and ``eligible_at``) when it decided its job's fate."""
    payload = present(
        run_id=run_id,
        job_id=job_id,
        outcome=outcome,
        exit_code=exit_code,
        output=output,
        job_state=job_state,
        cause=cause,
        eligible_at=eligible_at,
    )
    return Draft(
        type="run.ended", actor=actor, idempotency_key=keyed("run.ended", run_id), payload=payload
    )


# --- requests between sites, the spool -------------------------------------------------------


def job_requested(
    actor: Actor,
    *,
    site: str,
    request_id: str,
    job_type: str,
    params: Mapping[str, Any],
    source: str | None,
    key: str | None,
    priority: int | None,
) -> Draft:
    """A job asked of ``site``; once per requester's ``key``, or per request without one."""
    payload = present(
        site=site,
        job_type=job_type,
        params=dict(params),
        source=source,
        key=key,
        priority=priority,
        request_id=request_id,
    )
    return Draft(
        type="job.requested",
        actor=actor,
        idempotency_key=keyed("job.requested", site, key or request_id),
        payload=payload,
    )


def request_answered(
    actor: Actor,
    *,
    request_id: str,
    requester: str,
    outcome: str,
    job_id: str | None,
    refusal: str | None,
) -> Draft:
    """The answer to another site's request: the job made for it, or why there is none."""
    payload = present(
        request_id=request_id,
        requester=requester,
        outcome=outcome,
        job_id=job_id,
        reason=refusal,
    )
    return Draft(
        type="job.request_answered",
        actor=actor,
        idempotency_key=keyed("job.request_answered", request_id),
        payload=payload,
    )


def spool_rejected(actor: Actor, *, file: str, identity: str, reason: str) -> Draft:
    """A spool file refused (once per file: ``identity`` is its inode and change time)."""
    return Draft(
        type="spool.rejected",
        actor=actor,
        idempotency_key=keyed("spool.rejected", file, identity),
        payload={"file": file, "reason": reason},
    )


# --- schedules and retention -----------------------------------------------------------------


def schedule_armed(actor: Actor, *, schedule: str, slot_at: str) -> Draft:
    """A schedule seen for the first time: its slots count from ``slot_at``."""
    return Draft(
        type="schedule.armed",
        actor=actor,
        idempotency_key=keyed("schedule.armed", schedule, slot_at),
        payload={"schedule": schedule, "slot_at": slot_at},
    )


def schedule_skipped(
    actor: Actor, *, schedule: str, first_slot: str, last_slot: str, count: int
) -> Draft:
    """Slots a misfire policy did not run."""
    return Draft(
        type="schedule.skipped",
        actor=actor,
        idempotency_key=keyed("schedule.skipped", schedule, first_slot),
        payload={
            "schedule": schedule,
            "first_slot": first_slot,
            "last_slot": last_slot,
            "count": count,
        },
    )


def remote_refused(
    actor: Actor, *, decision: str, worker: str, what: str, reason: str, run_id: str | None
) -> Draft:
    """A worker's message refused (``what``: claim, hb or results), audited; ``decision`` (a
    new id) keys each refusal apart."""
    payload = present(worker=worker, what=what, reason=reason[:4096], run_id=run_id)
    return Draft(
        type="remote.refused",
        actor=actor,
        idempotency_key=keyed("remote.refused", decision),
        payload=payload,
    )
