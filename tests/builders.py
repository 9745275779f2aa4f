"""Drafts of ordinary events for the tests: ``orchd.core.drafts`` with defaults for the rest.

The idempotency keys are the constructors' own. An event a test makes odd on purpose (an unknown
type, a bad payload, a key reused or changed) is built as a plain ``Draft`` where the test is.
"""

from __future__ import annotations

from orchd.core import drafts, ids
from orchd.core.events import Actor, Draft

ACTOR = Actor(uid=1000, user="alice", scopes=("orch:operate",))
LEASE_END = "2026-11-27T00:00:00.000Z"  # the lease of ``one_run``: long run out
_FATE = {"succeeded": "succeeded", "failed": "dead"}  # a run's outcome: its job's state


def submitted(
    job_id: str,
    *,
    key: str | None = None,
    source: str | None = None,
    job_type: str = "feed-refresh",
    params: dict[str, str] | None = None,
    priority: int = 0,
    actor: Actor = ACTOR,
    **optional: str,
) -> Draft:
    """A queued job whose id the test chooses (orchd draws them at random), keyed by its id
    unless ``key`` is given; ``optional`` payload fields such as ``replay_of`` or ``schedule``."""
    return drafts.job_submitted(
        actor,
        job_id=job_id,
        job_type=job_type,
        key=key or job_id,
        params=params or {},
        priority=priority,
        source=source,
        **optional,
    )


def padded_jobs(count: int) -> list[Draft]:
    """``count`` queued jobs, ids ``01KB`` and their number, each with some 200 bytes of params:
    a ledger or a bundle of some size."""
    return [
        submitted(f"01KB{n:022d}", params={"n": str(n), "pad": "x" * 200}) for n in range(count)
    ]


def moved(job_id: str, from_state: str, to: str, *, attempts: int = 0, **extra: str) -> Draft:
    """A job moved; ``extra`` payload fields such as ``cause`` and ``eligible_at``. The key holds
    ``attempts``: a job that makes the same move twice needs it."""
    return drafts.job_transitioned(
        ACTOR, job_id=job_id, from_state=from_state, to=to, attempts=attempts, extra=extra
    )


def leased(run_id: str, job_id: str, expires: str, attempt: int = 1) -> Draft:
    return drafts.run_leased(
        ACTOR, run_id=run_id, job_id=job_id, attempt=attempt, lease_expires_at=expires
    )


def started(run_id: str, job_id: str, *, pid: int | None = None) -> Draft:
    return drafts.run_started(ACTOR, run_id=run_id, job_id=job_id, pid=pid)


def ended(
    run_id: str,
    job_id: str,
    outcome: str = "succeeded",
    *,
    job_state: str | None = None,
    exit_code: int | None = None,
    cause: str | None = None,
    eligible_at: str | None = None,
) -> Draft:
    """A run's end; unless given, its job is ``succeeded`` or ``dead`` with it, and it exited
    0 on success, else 1."""
    return drafts.run_ended(
        ACTOR,
        run_id=run_id,
        job_id=job_id,
        outcome=outcome,
        exit_code=(0 if outcome == "succeeded" else 1) if exit_code is None else exit_code,
        output=None,
        job_state=job_state or _FATE.get(outcome),
        cause=cause,
        eligible_at=eligible_at,
    )


def run_id_of(job_id: str) -> str:
    """A run id made from its job's id: one of its own for each job, with no clock."""
    return ids.new_id(1_764_201_600_000, job_id.encode()[-10:])


def one_run(job_id: str, outcome: str) -> list[Draft]:
    """The job's one run (``run_id_of`` it), leased until ``LEASE_END``, started and ended."""
    run_id = run_id_of(job_id)
    return [
        leased(run_id, job_id, LEASE_END),
        started(run_id, job_id),
        ended(run_id, job_id, outcome),
    ]
