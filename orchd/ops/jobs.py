"""Submitting, listing and showing jobs (ops layer)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from orchd.core import drafts, ids, outcomes, timefmt
from orchd.core.events import Actor, Event
from orchd.core.machines import JOB
from orchd.core.names import check_name
from orchd.core.policy import JobType, Policy, check_change
from orchd.core.ports import Clock, Entropy, JobLog, JobQueries
from orchd.core.projection import JobView, RunView
from orchd.errors import (
    BadInput,
    ForeignJob,
    IdempotencyConflict,
    InvalidName,
    InvalidParam,
    JobNotFound,
    NotInPolicy,
)

from . import lookup

SUBMIT_SCOPE = "orch:operate"
READ_SCOPE = "orch:read"
MAX_PARAMS = 64
MAX_PARAM_VALUE = 1024
PRIORITY_RANGE = range(-1000, 1001)


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitRequest:
    job_type: str
    source: str | None
    params: dict[str, str]
    key: str | None
    priority: int | None = None  # None: the job type's priority


@dataclass(frozen=True, slots=True, kw_only=True)
class Submitted:
    job: JobView
    created: bool  # False: the key was already used for this same request
    event_id: str = ""  # the job.submitted event recorded now ("" when nothing was)


@dataclass(frozen=True, slots=True, kw_only=True)
class JobDetail:
    job: JobView
    runs: list[RunView]
    history: list[Event]


def parse_params(pairs: Sequence[str]) -> dict[str, str]:
    """``["k=v", ...]`` to a dict; names checked, values printable, no name given twice."""
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise InvalidParam(value=pair, expected="key=value")
        try:
            check_name("parameter name", name)
        except InvalidName as exc:
            raise InvalidParam(value=pair, expected=exc.fields["expected"]) from None
        if name in params:
            raise InvalidParam(value=pair, expected=f"{name} is given more than once")
        if len(value) > MAX_PARAM_VALUE or not value.isprintable():
            raise InvalidParam(
                value=pair, expected=f"a value of at most {MAX_PARAM_VALUE} printable characters"
            )
        params[name] = value
    if len(params) > MAX_PARAMS:
        raise InvalidParam(value=pairs[-1], expected=f"at most {MAX_PARAMS} parameters")
    return params


def check(request: SubmitRequest, policy: Policy) -> JobType:
    """The request's job type, once the request is well formed and fits the policy: what every
    way in (submit, the spool, replay) checks against this site's policy."""
    check_name("job type", request.job_type)
    if request.source is not None:
        check_name("source", request.source)
    if request.key is not None:
        check_name("job key", request.key)
        if request.key.startswith("replay:"):
            raise InvalidName(
                what="job key",
                value=request.key,
                expected="a key not starting with replay: (orchd's own keys)",
            )
    if request.priority is not None and request.priority not in PRIORITY_RANGE:
        raise InvalidName(
            what="priority", value=request.priority, expected="an integer from -1000 to 1000"
        )
    job_type = policy.job_types.get(request.job_type)
    if job_type is None:
        known = ", ".join(sorted(policy.job_types)) or "none (the policy defines no job types)"
        raise NotInPolicy(what="job type", value=request.job_type, expected=f"one of {known}")
    if request.source is not None and request.source not in policy.sources:
        known = ", ".join(sorted(policy.sources)) or "none (the policy declares no sources)"
        raise NotInPolicy(what="source", value=request.source, expected=f"one of {known}")
    outcomes.resolve_params(job_type, request.params)
    return job_type


def initial_state(job_type: JobType) -> str:
    """A job whose type runs ``after:`` others starts ``waiting``; any other, ``queued``."""
    return "waiting" if job_type.after else "queued"


def _same_request(job: JobView, request: SubmitRequest, priority: int) -> list[str]:
    differences = []
    if job.job_type != request.job_type:
        differences.append(f"type {job.job_type}")
    if job.source != request.source:
        differences.append(f"source {job.source or '(none)'}")
    if json.loads(job.params) != request.params:
        differences.append(f"params {job.params}")
    if job.priority != priority:
        differences.append(f"priority {job.priority}")
    return differences


def submit(
    ledger: JobLog,
    clock: Clock,
    entropy: Entropy,
    actor: Actor,
    policy: Policy,
    request: SubmitRequest,
) -> Submitted:
    """Record a new job, or return the job this key already made for the same request.

    The job type must be one the policy defines, the source one it declares, and the params
    those the type declares (its required ones given); the rest of the defaults are filled in
    when a run starts, from the policy then in force.
    """
    job_type = check(request, policy)
    priority = job_type.priority if request.priority is None else request.priority
    if request.key is not None and (known := ledger.job_by_key(request.key)) is not None:
        if differences := _same_request(known, request, priority):
            raise IdempotencyConflict(
                key=request.key, detail=f"job {known.job_id} has " + ", ".join(differences)
            )
        return Submitted(job=known, created=False)
    job_id = ids.new_id(clock.now_ms(), entropy.token(ids.ENTROPY_BYTES))
    key = request.key or job_id
    draft = drafts.job_submitted(
        actor,
        job_id=job_id,
        job_type=request.job_type,
        key=key,
        params=request.params,
        priority=priority,
        state=initial_state(job_type),
        source=request.source,
    )
    [event] = ledger.append([draft])
    job = ledger.job(job_id)
    if job is None:  # the append succeeded, so the projection must hold it
        raise JobNotFound(job_id=job_id)
    return Submitted(job=job, created=True, event_id=event.event_id)


def whose(ledger: JobQueries, *, origin: str | None, all_origins: bool) -> str | None:
    """The origin whose jobs a listing shows: ``origin`` if given, every origin (None) with
    ``all_origins``, else this site's own. Other sites' jobs held here are their history (from
    bundles), not this site's queue."""
    if all_origins:
        if origin is not None:
            raise BadInput(detail="give an origin or all origins, not both")
        return None
    return ledger.site_id if origin is None else check_name("site id", origin)


def list_jobs(
    ledger: JobQueries,
    *,
    state: str | None,
    source: str | None,
    origin: str | None = None,
    all_origins: bool = False,
    job_type: str | None = None,
    since: str | None = None,
    after: str | None = None,
    limit: int = -1,
) -> Iterator[JobView]:
    """Jobs by id, of this site unless ``origin`` or ``all_origins`` says otherwise; a page of
    them by keyset: ids above ``after`` (any form ``find`` takes), submitted at or after
    ``since`` (ids are time-ordered, so it is an id bound on the primary key), at most
    ``limit``."""
    if state is not None and state not in JOB.states:
        raise InvalidName(what="state", value=state, expected=", ".join(sorted(JOB.states)))
    if source is not None:
        check_name("source", source)
    if job_type is not None:
        check_name("job type", job_type)
    if after is not None and not ids.is_id(after):  # a short form or a prefix: that job's id
        after = find(ledger, after).job_id
    if since is not None:  # its time part alone: below every id of that millisecond and later
        floor = ids.new_id(timefmt.parse_given(since), bytes(ids.ENTROPY_BYTES))[:10]
        after = floor if after is None else max(after, floor)
    chosen = whose(ledger, origin=origin, all_origins=all_origins)
    return ledger.jobs(
        state=state, source=source, origin=chosen, job_type=job_type, after=after, limit=limit
    )


def find(ledger: JobQueries, ident: str) -> JobView:
    """A job by its id, its short form or a unique prefix of ``ids.MIN_PREFIX`` or more
    characters (``lookup.resolve``)."""
    job_id = lookup.resolve(ledger, "jobs", ident)
    job = None if job_id is None else ledger.job(job_id)
    if job is None:
        raise JobNotFound(job_id=ident)
    return job


def find_run(ledger: JobQueries, ident: str) -> RunView | None:
    """A run by its id, its short form or a unique prefix (``lookup.resolve``); None if none."""
    run_id = lookup.resolve(ledger, "runs", ident)
    return None if run_id is None else ledger.run_by_id(run_id)


def show(ledger: JobQueries, ident: str) -> JobDetail:
    job = find(ledger, ident)
    return JobDetail(job=job, runs=ledger.runs_of(job.job_id), history=ledger.events_of(job.job_id))


def refuse_foreign(ledger: JobQueries, job: JobView, action: str) -> None:
    """Only the site a job belongs to changes it: another site's job is its history here."""
    if job.origin != ledger.site_id:
        raise ForeignJob(job_id=job.job_id, origin=job.origin, action=action)


CANCEL_SCOPE = "orch:operate"


@dataclass(frozen=True, slots=True, kw_only=True)
class Cancelled:
    job: JobView
    changed: bool  # False: the job was cancelled already; nothing was recorded


def cancel(
    ledger: JobLog, actor: Actor, policy: Policy, ident: str, reason: str, ticket: str | None = None
) -> Cancelled:
    """Cancel a job of this site that has not finished; the reason (and ticket) are kept in the
    event. A cancelled job stays as it is; one that succeeded or is dead cannot be cancelled."""
    check_change(policy, "cancel", reason, ticket)
    job = find(ledger, ident)
    refuse_foreign(ledger, job, "cancel")
    if job.state == "cancelled":
        return Cancelled(job=job, changed=False)
    draft = drafts.job_cancelled(
        actor, job_id=job.job_id, from_state=job.state, reason=reason, ticket=ticket
    )
    ledger.append([draft])
    cancelled = ledger.job(job.job_id)
    if cancelled is None:  # the append succeeded, so the projection must hold it
        raise JobNotFound(job_id=job.job_id)
    return Cancelled(job=cancelled, changed=True)
