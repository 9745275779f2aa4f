"""The folds from events to a site's side tables (core layer): source pauses, quota overrides,
requests between sites and their answers, and each schedule's last dealt-with slot.

Each takes one event and the row it touches and returns the new row, like ``projection.apply``.
"""

from __future__ import annotations

from typing import NamedTuple

from orchd.core import canonical, limits
from orchd.core.events import Event
from orchd.core.names import check_name
from orchd.core.payloads import ID, TIME, check_fields, malformed, shape


class PauseView(NamedTuple):
    """A row of ``source_pauses``: a source an origin's operators paused, and why."""

    origin: str
    source: str
    paused_at: str
    reason: str


PAUSE_TYPES = frozenset({"source.paused", "source.resumed"})


_PAUSE = shape({"source": "source"}, {})


def apply_pause(event: Event, paused: PauseView | None) -> PauseView | None:
    """The pause of ``(event.origin, source)`` after a ``source.paused`` or ``.resumed`` event."""
    check_fields(event, _PAUSE)
    source = event.payload["source"]
    if event.reason is None:
        raise malformed(event, "pausing or resuming a source needs a reason")
    if event.type == "source.paused":
        if paused is not None:
            raise malformed(event, f"source {source} is already paused")
        return PauseView(event.origin, source, event.occurred_at, event.reason)
    if paused is None:
        raise malformed(event, f"source {source} is not paused")
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
_QUOTA_RESET = shape({"kind": str, "name": str, "site": str}, {})
_QUOTA_SET = shape(_QUOTA_RESET.kinds, _QUOTA_FIELDS)


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
            raise malformed(event, f"quota {name} {p[name]} is outside {low} to {high}")


def apply_override(event: Event, current: OverrideView | None) -> OverrideView | None:
    """The override after ``event``: between events for the same target and site, the highest
    ``(hlc, origin)`` wins whatever order they arrive in. None: ``current`` stays."""
    check_fields(event, _QUOTA_SET if event.type == "quota.set" else _QUOTA_RESET)
    kind, name, site = override_key(event)
    if kind not in ("source", "job_type"):
        raise malformed(event, f"quota target kind {kind!r} is not source or job_type")
    check_name(kind.replace("_", " "), name)
    if site != "*":
        check_name("site id", site)
    if event.reason is None or event.ticket is None:
        raise malformed(event, "a quota change needs a reason and a ticket")
    if event.type == "quota.set" and not set(_QUOTA_FIELDS) & set(event.payload):
        raise malformed(event, "quota.set sets none of rate, burst, concurrency, daily")
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


_JOB_REQUESTED = shape(
    {"request_id": ID, "site": "site id", "job_type": "job type", "params": dict},
    {"source": "source", "key": "job key", "priority": int},
)
_REQUEST_ANSWERED = shape(
    {"request_id": ID, "requester": "site id", "outcome": str}, {"job_id": ID, "reason": str}
)


def apply_request(event: Event) -> RequestView | AnswerView:
    """The row a ``job.requested`` or ``job.request_answered`` adds. Each is added once and
    never changed, so the rows do not depend on the order the events arrive in."""
    p = event.payload
    if event.type == "job.requested":
        check_fields(event, _JOB_REQUESTED)
        if p["site"] == event.origin:
            raise malformed(event, "a site asks another site; its own jobs are submitted")
        for name, value in p["params"].items():
            check_name("parameter name", name)
            if not isinstance(value, str):
                raise malformed(event, f"param {name} must be text")
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
    check_fields(event, _REQUEST_ANSWERED)
    if p["outcome"] not in ("accepted", "refused"):
        raise malformed(event, "outcome must be accepted or refused")
    if (p["outcome"] == "accepted") != ("job_id" in p):
        raise malformed(event, "an accepted request names its job_id, a refused one does not")
    return AnswerView(
        p["request_id"],
        event.origin,
        p["outcome"],
        p.get("job_id"),
        p.get("reason"),
        event.occurred_at,
    )


SCHEDULE_TYPES = frozenset({"schedule.armed", "schedule.skipped"})


_SCHEDULE_ARMED = shape({"schedule": "job key", "slot_at": TIME}, {})
_SCHEDULE_SKIPPED = shape(
    {"schedule": "job key", "first_slot": TIME, "last_slot": TIME, "count": int}, {}
)


def apply_schedule(event: Event, last: str | None) -> str | None:
    """A schedule's last dealt-with slot after ``event`` (``schedule.armed``/``.skipped``, or a
    job of one of its slots); None when it does not change."""
    p = event.payload
    if event.type == "schedule.armed":
        check_fields(event, _SCHEDULE_ARMED)
        slot = p["slot_at"]
    elif event.type == "schedule.skipped":
        check_fields(event, _SCHEDULE_SKIPPED)
        if p["count"] < 1 or p["first_slot"] > p["last_slot"]:
            raise malformed(event, "a skipped range needs count >= 1 and first_slot <= last_slot")
        slot = p["last_slot"]
    else:
        slot = p["slot_at"]
    return slot if last is None or slot > last else None
