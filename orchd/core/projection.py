"""The fold from events to the ``jobs`` and ``runs`` projections (core layer).

``apply`` takes one event and the current rows it touches and returns the new rows. The ledger
runs it when it appends and again when it rebuilds; both must give the same rows. A job and its
runs are changed only by events of the job's own origin, and only as the state machines allow.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, TypeVar

from orchd.core import canonical, ids, limits, timefmt
from orchd.core.events import Event
from orchd.core.machines import JOB, RUN
from orchd.core.names import check_name, check_repeated
from orchd.errors import MalformedEvent, OrchdError, StateConflict

_TIME = object()  # payload kinds beside names and Python types
_ID = object()


class _Shape(NamedTuple):
    """A payload's keys: those it must have, and the kind of each key it may have."""

    required: frozenset[str]
    kinds: Mapping[str, Any]


def _shape(required: Mapping[str, Any], optional: Mapping[str, Any]) -> _Shape:
    return _Shape(frozenset(required), {**required, **optional})


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


_Row = TypeVar("_Row", JobView, RunView)
_POSITIONS = {view: {name: n for n, name in enumerate(view._fields)} for view in (JobView, RunView)}


def _with(row: _Row, **changes: Any) -> _Row:
    """``row._replace(**changes)``, visiting only the changed columns (the fold's hot path)."""
    values, positions = list(row), _POSITIONS[type(row)]
    for name, value in changes.items():
        values[positions[name]] = value
    return tuple.__new__(type(row), values)


class PauseView(NamedTuple):
    """A row of ``source_pauses``: a source an origin's operators paused, and why."""

    origin: str
    source: str
    paused_at: str
    reason: str


PAUSE_TYPES = frozenset({"source.paused", "source.resumed"})


_PAUSE = _shape({"source": "source"}, {})


def apply_pause(event: Event, paused: PauseView | None) -> PauseView | None:
    """The pause of ``(event.origin, source)`` after a ``source.paused`` or ``.resumed`` event."""
    _fields(event, _PAUSE)
    source = event.payload["source"]
    if event.reason is None:
        raise _bad(event, "pausing or resuming a source needs a reason")
    if event.type == "source.paused":
        if paused is not None:
            raise _bad(event, f"source {source} is already paused")
        return PauseView(event.origin, source, event.occurred_at, event.reason)
    if paused is None:
        raise _bad(event, f"source {source} is not paused")
    return None


class OverrideView(NamedTuple):
    """A row of ``quota_overrides``: the winning set or reset for one target and site."""

    kind: str  # "source" or "job_type"
    name: str
    site: str  # a site id, or "*" for every site
    action: str  # "set" or "reset"
    hlc: str
    origin: str
    rate: str | None
    burst: int | None
    concurrency: int | None
    daily: int | None
    changed_at: str
    reason: str
    ticket: str


QUOTA_TYPES = frozenset({"quota.set", "quota.reset"})
_QUOTA_FIELDS = {"rate": str, "burst": int, "concurrency": int, "daily": int}
_QUOTA_RESET = _shape({"kind": str, "name": str, "site": str}, {})
_QUOTA_SET = _shape(_QUOTA_RESET.kinds, _QUOTA_FIELDS)


def override_key(event: Event) -> tuple[str, str, str]:
    p = event.payload
    return (str(p.get("kind")), str(p.get("name")), str(p.get("site")))


QUOTA_LIMITS = {"burst": (1, 1_000_000), "concurrency": (0, 10_000), "daily": (0, 10_000_000)}


def _check_quota_values(event: Event) -> None:
    p = event.payload
    if "rate" in p:
        limits.parse_rate(p["rate"])
    for name, (low, high) in QUOTA_LIMITS.items():
        if name in p and not low <= p[name] <= high:
            raise _bad(event, f"quota {name} {p[name]} is outside {low} to {high}")


def apply_override(event: Event, current: OverrideView | None) -> OverrideView | None:
    """The override after ``event``: between events for the same target and site, the highest
    ``(hlc, origin)`` wins whatever order they arrive in. None: ``current`` stays."""
    _fields(event, _QUOTA_SET if event.type == "quota.set" else _QUOTA_RESET)
    kind, name, site = override_key(event)
    if kind not in ("source", "job_type"):
        raise _bad(event, f"quota target kind {kind!r} is not source or job_type")
    check_name(kind.replace("_", " "), name)
    if site != "*":
        check_name("site id", site)
    if event.reason is None or event.ticket is None:
        raise _bad(event, "a quota change needs a reason and a ticket")
    if event.type == "quota.set" and not set(_QUOTA_FIELDS) & set(event.payload):
        raise _bad(event, "quota.set sets none of rate, burst, concurrency, daily")
    _check_quota_values(event)
    if current is not None and (event.hlc, event.origin) <= (current.hlc, current.origin):
        return None
    p = event.payload
    return OverrideView(
        kind,
        name,
        site,
        event.type.split(".")[1],
        event.hlc,
        event.origin,
        p.get("rate"),
        p.get("burst"),
        p.get("concurrency"),
        p.get("daily"),
        event.occurred_at,
        event.reason,
        event.ticket,
    )


_HASH = re.compile("[0-9a-f]{64}")
MAX_OUTPUT_CHARS = 65536  # the tail of a run's output kept in run.ended


class BundleView(NamedTuple):
    """A row of ``bundles``: a bundle this site exported or imported."""

    bundle_id: str
    direction: str  # "export" or "import"
    site: str  # the recipient ("*": any) of an export, the exporter of an import
    at: str
    ranges: str  # canonical JSON {origin: [from_seq, to_seq]}


class ReceiptView(NamedTuple):
    """A row of ``receipts``: the newest receipt a peer recorded for a bundle of this site's,
    saying what the peer held once it was imported (its watermarks)."""

    peer: str
    bundle_id: str
    at: str  # when the peer imported it (its clock)
    seq: int  # the receipt's seq in the peer's chain: a newer receipt has a higher one
    watermarks: str  # canonical JSON {origin: [seq, hash]}


BUNDLE_TYPES = frozenset({"bundle.exported", "bundle.imported"})
_BUNDLE_FIELDS = {
    "bundle.exported": _shape(
        {
            "bundle_id": str,
            "recipient": str,
            "kind": str,
            "ranges": dict,
            "sha256": str,
            "size": int,
        },
        {},
    ),
    "bundle.imported": _shape(
        {"bundle_id": str, "exporter": "site id", "ranges": dict, "events": int},
        {"watermarks": dict},
    ),
}


def apply_bundle(event: Event, local: str) -> BundleView | None:
    """The record of a bundle this site exported or imported; None for another site's."""
    _fields(event, _BUNDLE_FIELDS[event.type])
    p = event.payload
    for origin, span in p["ranges"].items():
        check_name("site id", origin)
        if not (
            isinstance(span, list)
            and len(span) == 2
            and all(type(n) is int for n in span)
            and 1 <= span[0] <= span[1]
        ):
            raise _bad(event, f"range of {origin} must be [from_seq, to_seq]")
    for origin, mark in p.get("watermarks", {}).items():
        check_name("site id", origin)
        if not (
            isinstance(mark, list)
            and len(mark) == 2
            and type(mark[0]) is int
            and mark[0] >= 1
            and isinstance(mark[1], str)
            and _HASH.fullmatch(mark[1])
        ):
            raise _bad(event, f"watermark of {origin} must be [seq, hash]")
    if event.origin != local:
        return None
    if event.type == "bundle.exported":
        return BundleView(
            p["bundle_id"],
            "export",
            p["recipient"],
            event.occurred_at,
            canonical.dump(p["ranges"]).decode(),
        )
    return BundleView(
        p["bundle_id"],
        "import",
        p["exporter"],
        event.occurred_at,
        canonical.dump(p["ranges"]).decode(),
    )


def receipt_of(event: Event, local: str) -> ReceiptView | None:
    """A peer's receipt for a bundle of ``local``'s: its ``bundle.imported`` of one exported
    here, with watermarks (checked by ``apply_bundle``); None for any other event."""
    p = event.payload
    if event.type != "bundle.imported" or p["exporter"] != local or event.origin == local:
        return None
    if "watermarks" not in p:
        return None
    marks = canonical.dump(p["watermarks"]).decode()
    return ReceiptView(event.origin, p["bundle_id"], event.occurred_at, event.seq, marks)


JOB_COLUMNS = JobView._fields
RUN_COLUMNS = RunView._fields
# the columns a fold may change in a row that exists; the others are fixed when it is created
JOB_MUTABLE = ("state", "attempts", "updated_at", "eligible_at", "cause", "last_run_id")
RUN_MUTABLE = ("state", "started_at", "ended_at", "exit_code", "pid")
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
        raise _bad(event, "unknown event type; a newer orchd may know it")
    if not checked:
        check_payload(event)
    try:
        return handler[1](event, job, run)
    except (MalformedEvent, StateConflict):
        raise
    except OrchdError as exc:
        raise _bad(event, exc.message) from None


def check_payload(event: Event) -> None:
    """``apply``'s checks that need no rows: the payload's keys, their kinds and limits. A
    bundle's reader runs them beside the process that folds (docs/ARCHITECTURE.md)."""
    handler = _HANDLERS.get(event.type)
    if handler is None:
        return  # not folded by ``apply`` (or unknown, which ``apply`` says)
    try:
        handler[0](event)
    except MalformedEvent:
        raise
    except OrchdError as exc:
        raise _bad(event, exc.message) from None


def _bad(event: Event, detail: str) -> MalformedEvent:
    return MalformedEvent(where=f" {event.origin!r}/{event.seq} ({event.type})", detail=detail)


def _fields(event: Event, shape: _Shape) -> None:
    """Check the payload has exactly the keys of ``shape`` with values of their kinds."""
    payload, kinds = event.payload, shape.kinds
    if not payload.keys() >= shape.required:
        raise _bad(event, f"payload lacks {', '.join(sorted(shape.required - payload.keys()))}")
    for name, value in payload.items():
        kind = kinds.get(name)
        if kind is None:
            raise _bad(event, f"payload has unknown {name}")
        if kind is _ID:  # the commonest kinds first
            ids.check_id(value, name)
        elif type(kind) is type:
            if type(value) is not kind:
                raise _bad(event, f"payload {name} must be {kind.__name__}")
        elif kind is _TIME:
            timefmt.parse_canonical(value)
        else:
            check_repeated(kind, value)


def _owned(event: Event, job: JobView | None) -> JobView:
    if job is None:
        raise _bad(event, f"unknown job {event.payload['job_id']}")
    if job.origin != event.origin:
        raise _bad(event, f"job {job.job_id} belongs to {job.origin!r}")
    return job


_SITE_INITIALIZED = _shape({"site_id": "site id", "orchd_version": str}, {})


def _check_site_initialized(event: Event) -> None:
    _fields(event, _SITE_INITIALIZED)
    if event.payload["site_id"] != event.origin:
        raise _bad(event, "site_id differs from the event's origin")


def _nothing(event: Event, job: JobView | None, run: RunView | None) -> Rows:
    return None, None


_JOB_SUBMITTED = _shape(
    {
        "job_id": _ID,
        "job_type": "job type",
        "key": "idempotency key",
        "params": dict,
        "priority": int,
        "state": str,
    },
    {"source": "source", "schedule": "job key", "slot_at": _TIME, "replay_of": _ID},
)


def _check_job_submitted(event: Event) -> None:
    _fields(event, _JOB_SUBMITTED)
    for name, value in event.payload["params"].items():
        check_repeated("parameter name", name)
        if not isinstance(value, str):
            raise _bad(event, f"parameter {name} must be a string")


def _job_submitted(event: Event, job: JobView | None, run: RunView | None) -> Rows:
    p = event.payload
    if job is not None:
        raise _bad(event, f"job {p['job_id']} already exists")
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


_JOB_TRANSITIONED = _shape(
    {"job_id": _ID, "from": str, "to": str}, {"cause": "parameter name", "eligible_at": _TIME}
)


def _check_job_transitioned(event: Event) -> None:
    _fields(event, _JOB_TRANSITIONED)


def _job_transitioned(event: Event, job: JobView | None, run: RunView | None) -> Rows:
    job = _owned(event, job)
    if event.payload["from"] != job.state:
        raise _bad(event, f"job {job.job_id} is {job.state}, not {event.payload['from']}")
    p = event.payload
    moved = _move_job(event, job, p["to"], cause=p.get("cause"), eligible_at=p.get("eligible_at"))
    return moved, None


def _move_job(event: Event, job: JobView, to_state: str, **changes: Any) -> JobView:
    """The job in ``to_state`` as the table allows, with ``changes`` to its other columns."""
    state = JOB.advance(job.job_id, job.state, to_state)
    return _with(job, state=state, updated_at=event.occurred_at, **changes)


_RUN_LEASED = _shape({"run_id": _ID, "job_id": _ID, "attempt": int, "lease_expires_at": _TIME}, {})


def _check_run_leased(event: Event) -> None:
    _fields(event, _RUN_LEASED)


def _run_leased(event: Event, job: JobView | None, run: RunView | None) -> Rows:
    p = event.payload
    job = _owned(event, job)
    if run is not None:
        raise _bad(event, f"run {p['run_id']} already exists")
    if p["attempt"] != job.attempts + 1:
        raise _bad(event, f"attempt {p['attempt']} does not follow {job.attempts}")
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
        raise _bad(event, f"unknown run {event.payload['run_id']} of this job")
    if run.origin != event.origin:
        raise _bad(event, f"run {run.run_id} belongs to {run.origin!r}")
    return run


_RUN_STARTED = _shape({"run_id": _ID, "job_id": _ID}, {"pid": int})


def _check_run_started(event: Event) -> None:
    _fields(event, _RUN_STARTED)


def _run_started(event: Event, job: JobView | None, run: RunView | None) -> Rows:
    run = _owned_run(event, run)
    state = RUN.advance(run.run_id, run.state, "running")
    return None, _with(run, state=state, started_at=event.occurred_at, pid=event.payload.get("pid"))


_RUN_ENDED = _shape(
    {"run_id": _ID, "job_id": _ID, "outcome": str},
    {
        "job_state": str,
        "exit_code": int,
        "eligible_at": _TIME,
        "cause": "parameter name",
        "output": str,
    },
)


def _check_run_ended(event: Event) -> None:
    _fields(event, _RUN_ENDED)
    if len(event.payload.get("output", "")) > MAX_OUTPUT_CHARS:
        raise _bad(event, f"output is longer than {MAX_OUTPUT_CHARS} characters")


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
        "site.restored",
        "ledger.pruned",
    }
)


def _check_audit(event: Event) -> None:
    """Events that only record what happened: their payload is flat text and numbers."""
    for name, value in event.payload.items():
        check_name("parameter name", name)
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise _bad(event, f"payload {name} must be text or a number")
        if isinstance(value, str) and len(value) > 4096:
            raise _bad(event, f"payload {name} is longer than 4096 characters")


class RequestView(NamedTuple):
    """A row of ``requests``: a job one site asked another (``site``) to run."""

    request_id: str
    origin: str  # the site that asks
    site: str  # the site asked to run it
    job_type: str
    source: str | None
    params: str  # canonical JSON
    key: str | None
    priority: int | None
    requested_at: str


class AnswerView(NamedTuple):
    """A row of ``request_answers``: what the asked site did with a request."""

    request_id: str
    origin: str  # the site that answered; it counts only if it is the request's ``site``
    outcome: str  # "accepted" or "refused"
    job_id: str | None  # the job it runs, when accepted
    reason: str | None  # why, when refused
    answered_at: str


REQUEST_TYPES = frozenset({"job.requested", "job.request_answered"})


_JOB_REQUESTED = _shape(
    {"request_id": _ID, "site": "site id", "job_type": "job type", "params": dict},
    {"source": "source", "key": "job key", "priority": int},
)
_REQUEST_ANSWERED = _shape(
    {"request_id": _ID, "requester": "site id", "outcome": str}, {"job_id": _ID, "reason": str}
)


def apply_request(event: Event) -> RequestView | AnswerView:
    """The row a ``job.requested`` or ``job.request_answered`` adds. Each is added once and
    never changed, so the rows do not depend on the order the events arrive in."""
    p = event.payload
    if event.type == "job.requested":
        _fields(event, _JOB_REQUESTED)
        if p["site"] == event.origin:
            raise _bad(event, "a site asks another site; its own jobs are submitted")
        for name, value in p["params"].items():
            check_name("parameter name", name)
            if not isinstance(value, str):
                raise _bad(event, f"param {name} must be text")
        return RequestView(
            p["request_id"],
            event.origin,
            p["site"],
            p["job_type"],
            p.get("source"),
            canonical.dump(p["params"]).decode(),
            p.get("key"),
            p.get("priority"),
            event.occurred_at,
        )
    _fields(event, _REQUEST_ANSWERED)
    if p["outcome"] not in ("accepted", "refused"):
        raise _bad(event, "outcome must be accepted or refused")
    if (p["outcome"] == "accepted") != ("job_id" in p):
        raise _bad(event, "an accepted request names its job_id, a refused one does not")
    return AnswerView(
        p["request_id"],
        event.origin,
        p["outcome"],
        p.get("job_id"),
        p.get("reason"),
        event.occurred_at,
    )


SCHEDULE_TYPES = frozenset({"schedule.armed", "schedule.skipped"})


_SCHEDULE_ARMED = _shape({"schedule": "job key", "slot_at": _TIME}, {})
_SCHEDULE_SKIPPED = _shape(
    {"schedule": "job key", "first_slot": _TIME, "last_slot": _TIME, "count": int}, {}
)


def apply_schedule(event: Event, last: str | None) -> str | None:
    """A schedule's last dealt-with slot after ``event`` (``schedule.armed``/``.skipped``, or a
    job of one of its slots); None when it does not change."""
    p = event.payload
    if event.type == "schedule.armed":
        _fields(event, _SCHEDULE_ARMED)
        slot = p["slot_at"]
    elif event.type == "schedule.skipped":
        _fields(event, _SCHEDULE_SKIPPED)
        if p["count"] < 1 or p["first_slot"] > p["last_slot"]:
            raise _bad(event, "a skipped range needs count >= 1 and first_slot <= last_slot")
        slot = p["last_slot"]
    else:
        slot = p["slot_at"]
    return slot if last is None or slot > last else None


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
