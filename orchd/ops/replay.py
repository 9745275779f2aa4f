"""Replay: run finished or dead-lettered jobs again, as new jobs, audited (ops layer).

A replay is a new job of the same type, source and params with ``replay_of`` naming the original,
one priority step higher, for the same schedule slot (so that jobs which run ``after:`` it find
it); it is queued at once and does not wait on dependencies again. The original is never moved
(terminal states absorb). A job whose earlier replay has not finished is not replayed again, so
repeating a command is harmless: it records nothing while the replay is pending. Once that has
finished, replaying again is a new decision and makes a new job. Only this site's own jobs are
replayed (another site's are its history here), and each replay is checked against this site's
policy exactly as a submission is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from orchd.core import drafts, ids, timefmt
from orchd.core.events import Actor, Draft
from orchd.core.machines import JOB
from orchd.core.names import check_name
from orchd.core.policy import Policy, check_change
from orchd.core.ports import Clock, Entropy, JobLog, JobQueries
from orchd.core.projection import JobView
from orchd.errors import BadInput, InvalidName

from .jobs import PRIORITY_RANGE, SubmitRequest, check, find, refuse_foreign

SCOPE = "orch:operate"


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    original: JobView
    replay: JobView | None  # None: skipped, see ``skipped``
    skipped: str | None = None


def select(ledger: JobQueries, *, job_type: str, state: str, since: str) -> list[JobView]:
    """This site's finished jobs of a type and state whose last change was at or after
    ``since``."""
    check_name("job type", job_type)
    if state not in JOB.terminal:
        expected = "a finished state: " + ", ".join(sorted(JOB.terminal))
        raise InvalidName(what="state", value=state, expected=expected)
    since_text = timefmt.format_ms(timefmt.parse_given(since))
    chosen = ledger.jobs(
        state=state, source=None, job_type=job_type, updated_since=since_text, origin=ledger.site_id
    )
    return list(chosen)


def replay(
    ledger: JobLog,
    clock: Clock,
    entropy: Entropy,
    actor: Actor,
    policy: Policy,
    idents: Sequence[str],
    reason: str,
    ticket: str | None = None,
) -> list[Outcome]:
    """Replay each job (ids or unique prefixes) in one transaction; skip pending replays.

    Nothing is recorded if one of the jobs is another site's, or if one to replay no longer
    fits this site's policy (its type, source or params): the error is a submission's."""
    check_change(policy, "replay", reason, ticket)
    if not idents:
        raise BadInput(detail="no job to replay")
    originals = [find(ledger, ident) for ident in idents]
    for job in originals:
        refuse_foreign(ledger, job, "replay")
    plans = [_plan(ledger, job) for job in originals]
    for job, number, _ in plans:
        if number:
            check(_as_request(job), policy)
    drafts = [_draft(job, n, clock, entropy, actor, reason, ticket) for job, n, _ in plans if n]
    appended = ledger.append(drafts) if drafts else []
    created = {e.payload["replay_of"]: e.payload["job_id"] for e in appended}
    return [
        Outcome(original=job, replay=ledger.job(created[job.job_id]) if n else None, skipped=why)
        for job, n, why in plans
    ]


def _plan(ledger: JobQueries, job: JobView) -> tuple[JobView, int, str | None]:
    """(job, number of this replay or 0 to skip, why skipped)."""
    if job.state not in JOB.terminal:
        return job, 0, f"still {job.state}; only finished jobs are replayed"
    earlier = ledger.replays_of(job.job_id)
    pending = [r.job_id for r in earlier if r.state not in JOB.terminal]
    if pending:
        return job, 0, f"its replay {pending[0]} has not finished"
    return job, len(earlier) + 1, None


def _as_request(job: JobView) -> SubmitRequest:
    """The submission a replay amounts to, for the policy check (its key and priority are
    orchd's own, so they are not the operator's to check)."""
    return SubmitRequest(
        job_type=job.job_type, source=job.source, params=json.loads(job.params), key=None
    )


def _draft(
    job: JobView,
    number: int,
    clock: Clock,
    entropy: Entropy,
    actor: Actor,
    reason: str,
    ticket: str | None,
) -> Draft:
    key = f"replay:{job.job_id}:{number}"
    return drafts.job_submitted(
        actor,
        job_id=ids.new_id(clock.now_ms(), entropy.token(ids.ENTROPY_BYTES)),
        job_type=job.job_type,
        key=key,
        params=json.loads(job.params),
        priority=min(job.priority + 1, PRIORITY_RANGE.stop - 1),
        reason=reason,
        ticket=ticket,
        source=job.source,
        schedule=job.schedule,
        slot_at=job.slot_at,
        replay_of=job.job_id,
    )
