"""The fold from events to the ``jobs`` and ``runs`` projections (core layer).

``apply`` takes one event and the current rows it touches and returns the new rows. The ledger
runs it when it appends and again when it rebuilds; both must give the same rows. A job and its
runs are changed only by events of the job's own origin, and only as the state machines allow.
The other tables' folds are ``site_views`` and ``bundle_views``; payload shapes are ``payloads``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from orchd.core import canonical
from orchd.core.events import Event
from orchd.core.machines import JOB, RUN
from orchd.core.names import check_name, check_repeated
from orchd.core.payloads import ID, TIME, check_fields, malformed, shape
from orchd.core.vocabulary import check_known
from orchd.errors import MalformedEvent, OrchdError


class JobView(NamedTuple):
    """A row of the ``jobs`` projection (a tuple in column order, as SQLite returns it)."""

    job_id: str
    origin: str
    key: str
    job_type: str
    source: str | None
    params: str  # canonical JSON object of str -> str
    priority: int
    state: str
    attempts: int
    submitted_at: str
    updated_at: str
    eligible_at: str | None
    cause: str | None
    last_run_id: str | None
    schedule: str | None = None  # the schedule and slot a scheduled or backfilled job is for
    slot_at: str | None = None
    replay_of: str | None = None  # the finished job this one runs again


class RunView(NamedTuple):
    """A row of the ``runs`` projection."""

    run_id: str
    job_id: str
    origin: str
    attempt: int
    state: str
    leased_at: str
    lease_expires_at: str
    started_at: str | None
    ended_at: str | None
    exit_code: int | None
    pid: int | None
    worker: str | None = None  # a remote run: the worker that claimed it
    worker_log: str | None = None  # and its log's path on that worker's host


_Row = TypeVar("_Row", JobView, RunView)
_POSITIONS = {view: {name: n for n, name in enumerate(view._fields)} for view in (JobView, RunView)}


def _with(row: _Row, **changes: Any) -> _Row:
    """``row._replace(**changes)``, visiting only the changed columns (the fold's hot path)."""
    values, positions = list(row), _POSITIONS[type(row)]
    for name, value in changes.items():
        values[positions[name]] = value
    return tuple.__new__(type(row), values)


MAX_OUTPUT_CHARS = 65536  # the tail of a run's output kept in run.ended

JOB_COLUMNS = JobView._fields
RUN_COLUMNS = RunView._fields
# the columns a fold may change in a row that exists; the others are fixed when it is created
JOB_MUTABLE = ("state", "attempts", "updated_at", "eligible_at", "cause", "last_run_id")
RUN_MUTABLE = ("state", "started_at", "ended_at", "exit_code", "pid", "worker", "worker_log")
Rows = tuple[JobView | None, RunView | None]


def subjects(event: Event) -> tuple[str | None, str | None]:
    """The job id and run id an event touches, so the caller can load their rows."""
    job_id, run_id = event.payload.get("job_id"), event.payload.get("run_id")
    return (
        job_id if isinstance(job_id, str) else None,
        run_id if isinstance(run_id, str) else None,
    )


def apply(event: Event, job: JobView | None, run: RunView | None, *, checked: bool = False) -> Rows:
    """The rows after ``event``: ``(job, run)``, each None where the event does not change it.
    ``checked``: the caller ran ``check_payload`` on this event already."""
    handler = _HANDLERS.get(event.type)
    if handler is None:
        check_known(event)  # a type this orchd does not know is a newer orchd's
        raise malformed(event, "its type is not folded into jobs and runs")
    if not checked:
        check_payload(event)
    return handler[1](event, job, run)  # on a checked payload: MalformedEvent, InvalidTransition


def check_payload(event: Event) -> None:
    """``apply``'s checks that need no rows: the payload's keys, their kinds and limits. A
    bundle's reader runs them beside the process that folds (docs/ARCHITECTURE.md). A type or
    payload key outside the vocabulary is a newer orchd's (``vocabulary.check_known``)."""
    check_known(event)
    handler = _HANDLERS.get(event.type)
    if handler is None:
        return  # not folded by ``apply``
    try:
        handler[0](event)
    except MalformedEvent:
        raise
    except OrchdError as exc:
        raise malformed(event, exc.message) from None


def _owned(event: Event, job: JobView | None) -> JobView:
    if job is None:
        raise malformed(event, f"unknown job {event.payload['job_id']}")
    if job.origin != event.origin:
        raise malformed(event, f"job {job.job_id} belongs to {job.origin!r}")
    return job


_SITE_INITIALIZED = shape({"site_id": "site id", "orchd_version": str}, {})


def _check_site_initialized(event: Event) -> None:
    check_fields(event, _SITE_INITIALIZED)
    if event.payload["site_id"] != event.origin:
        raise malformed(event, "site_id differs from the event's origin")


def _nothing(event: Event, job: JobView | None, run: RunView | None) -> Rows:
    return None, None


_JOB_SUBMITTED = shape(
    {
        "job_id": ID,
        "job_type": "job type",
        "key": "idempotency key",
        "params": dict,
        "priority": int,
        "state": str,
    },
    {"source": "source", "schedule": "job key", "slot_at": TIME, "replay_of": ID},
)


def _check_job_submitted(event: Event) -> None:
    check_fields(event, _JOB_SUBMITTED)
    for name, value in event.payload["params"].items():
        check_repeated("parameter name", name)
        if not isinstance(value, str):
            raise malformed(event, f"parameter {name} must be a string")


def _job_submitted(event: Event, job: JobView | None, run: RunView | None) -> Rows:
    p = event.payload
    if job is not None:
        raise malformed(event, f"job {p['job_id']} already exists")
    new = JobView(
        job_id=p["job_id"],
        origin=event.origin,
        key=p["key"],
        job_type=p["job_type"],
        source=p.get("source"),
        params=canonical.dump(p["params"]).decode(),
        priority=p["priority"],
        state=JOB.begin(p["job_id"], p["state"]),
        attempts=0,
        submitted_at=event.occurred_at,
        updated_at=event.occurred_at,
        eligible_at=None,
        cause=None,
        last_run_id=None,
        schedule=p.get("schedule"),
        slot_at=p.get("slot_at"),
        replay_of=p.get("replay_of"),
    )
    return new, None


_JOB_TRANSITIONED = shape(
    {"job_id": ID, "from": str, "to": str}, {"cause": "parameter name", "eligible_at": TIME}
)


def _check_job_transitioned(event: Event) -> None:
    check_fields(event, _JOB_TRANSITIONED)


def _job_transitioned(event: Event, job: JobView | None, run: RunView | None) -> Rows:
    job = _owned(event, job)
    if event.payload["from"] != job.state:
        raise malformed(event, f"job {job.job_id} is {job.state}, not {event.payload['from']}")
    p = event.payload
    moved = _move_job(event, job, p["to"], cause=p.get("cause"), eligible_at=p.get("eligible_at"))
    return moved, None


def _move_job(event: Event, job: JobView, to_state: str, **changes: Any) -> JobView:
    """The job in ``to_state`` as the table allows, with ``changes`` to its other columns."""
    state = JOB.advance(job.job_id, job.state, to_state)
    return _with(job, state=state, updated_at=event.occurred_at, **changes)


_RUN_LEASED = shape({"run_id": ID, "job_id": ID, "attempt": int, "lease_expires_at": TIME}, {})


def _check_run_leased(event: Event) -> None:
    check_fields(event, _RUN_LEASED)


def _run_leased(event: Event, job: JobView | None, run: RunView | None) -> Rows:
    p = event.payload
    job = _owned(event, job)
    if run is not None:
        raise malformed(event, f"run {p['run_id']} already exists")
    if p["attempt"] != job.attempts + 1:
        raise malformed(event, f"attempt {p['attempt']} does not follow {job.attempts}")
    job = _move_job(
        event,
        job,
        "running",
        attempts=p["attempt"],
        last_run_id=p["run_id"],
        cause=None,
        eligible_at=None,
    )
    new_run = RunView(
        run_id=p["run_id"],
        job_id=job.job_id,
        origin=event.origin,
        attempt=p["attempt"],
        state=RUN.begin(p["run_id"], "leased"),
        leased_at=event.occurred_at,
        lease_expires_at=p["lease_expires_at"],
        started_at=None,
        ended_at=None,
        exit_code=None,
        pid=None,
    )
    return job, new_run


def _owned_run(event: Event, run: RunView | None) -> RunView:
    if run is None or run.job_id != event.payload["job_id"]:
        raise malformed(event, f"unknown run {event.payload['run_id']} of this job")
    if run.origin != event.origin:
        raise malformed(event, f"run {run.run_id} belongs to {run.origin!r}")
    return run


_RUN_STARTED = shape({"run_id": ID, "job_id": ID}, {"pid": int, "worker": str, "log": str})


def _check_run_started(event: Event) -> None:
    check_fields(event, _RUN_STARTED)


def _run_started(event: Event, job: JobView | None, run: RunView | None) -> Rows:
    run = _owned_run(event, run)
    state = RUN.advance(run.run_id, run.state, "running")
    p = event.payload
    return None, _with(
        run,
        state=state,
        started_at=event.occurred_at,
        pid=p.get("pid"),
        worker=p.get("worker"),
        worker_log=p.get("log"),
    )


_RUN_ENDED = shape(
    {"run_id": ID, "job_id": ID, "outcome": str},
    {
        "job_state": str,
        "exit_code": int,
        "eligible_at": TIME,
        "cause": "parameter name",
        "output": str,
    },
)


def _check_run_ended(event: Event) -> None:
    check_fields(event, _RUN_ENDED)
    if len(event.payload.get("output", "")) > MAX_OUTPUT_CHARS:
        raise malformed(event, f"output is longer than {MAX_OUTPUT_CHARS} characters")


def _run_ended(event: Event, job: JobView | None, run: RunView | None) -> Rows:
    p = event.payload
    run = _owned_run(event, run)
    ended = _with(
        run,
        state=RUN.advance(run.run_id, run.state, p["outcome"]),
        ended_at=event.occurred_at,
        exit_code=p.get("exit_code"),
    )
    job = _owned(event, job)
    if "job_state" not in p:  # the job already moved on (e.g. cancelled while running)
        return None, ended
    changes = {"eligible_at": p.get("eligible_at"), "cause": p.get("cause")}
    return _move_job(event, job, p["job_state"], **changes), ended


AUDIT_TYPES = frozenset(
    {
        "spool.rejected",
        "policy.reloaded",
        "policy.reload_failed",
        "clock.jumped",
        "daemon.started",
        "daemon.stopped",
        "api.denied",
        "bundle.quarantined",
        "bundle.forked",
        "site.restored",
        "ledger.pruned",
        "remote.refused",
    }
)


def _check_audit(event: Event) -> None:
    """Events that only record what happened: their payload is flat text and numbers."""
    for name, value in event.payload.items():
        check_name("parameter name", name)
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise malformed(event, f"payload {name} must be text or a number")
        if isinstance(value, str) and len(value) > 4096:
            raise malformed(event, f"payload {name} is longer than 4096 characters")


Fold = Callable[[Event, JobView | None, RunView | None], Rows]
# event type -> (its payload checks, which need no rows; its fold)
_HANDLERS: dict[str, tuple[Callable[[Event], None], Fold]] = {
    **dict.fromkeys(AUDIT_TYPES, (_check_audit, _nothing)),
    "site.initialized": (_check_site_initialized, _nothing),
    "job.submitted": (_check_job_submitted, _job_submitted),
    "job.transitioned": (_check_job_transitioned, _job_transitioned),
    "run.leased": (_check_run_leased, _run_leased),
    "run.started": (_check_run_started, _run_started),
    "run.ended": (_check_run_ended, _run_ended),
}
