"""What a line of the audit trail says of an event: its subject and its outcome (core layer).

``audit tail`` (and the console later) shows, beside time, place, type and actor, what the event
is about (the job and its type, the run, the quota target, the peer, the key) and how it came
out (a run's outcome and the job's fate, a quota's values, a bundle's size). Both are read from
the payload alone; a job's type, which only ``job.submitted`` carries, is given by the caller
(``job_types``: job id -> type). A type this orchd does not know says nothing. A job is
named by its short form (``ids.short``), as every table names it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from orchd.core import ids

Payload = Mapping[str, Any]


def _job(p: Payload, job_types: Mapping[str, str]) -> str:
    job_id = p["job_id"]
    job_type = p.get("job_type") or job_types.get(job_id)
    shown = ids.short(job_id)  # as every table shows a job
    return f"job {shown} {job_type}" if job_type else f"job {shown}"


def _values(p: Payload, names: tuple[str, ...]) -> str:
    return " ".join(f"{name}={p[name]}" for name in names if p.get(name) is not None)


def _run_ended(p: Payload) -> str:
    code = f" (exit {p['exit_code']})" if p.get("exit_code") is not None else ""
    fate = f", job {p['job_state']}" if p.get("job_state") else ""
    return f"{p['outcome']}{code}{fate}" + (f": {p['cause']}" if p.get("cause") else "")


def _moved(p: Payload) -> str:
    return f"{p['from']} -> {p['to']}" + (f": {p['cause']}" if p.get("cause") else "")


def _quota(p: Payload) -> str:
    return f"quota {p['kind']} {p['name']} at {p['site']}"


def _answered(p: Payload) -> str:
    made = f" as job {ids.short(p['job_id'])}" if p.get("job_id") else ""
    return f"{p['outcome']}{made}" + (f": {p['reason']}" if p.get("reason") else "")


def _started(p: Payload) -> str:
    where = f"on worker {p['worker']}" if "worker" in p else f"pid {p.get('pid', '?')}"
    return f"run {p['run_id']} started, {where}"


# event type -> (subject, outcome); no subject: the payload's job and its type
_SAID: dict[str, tuple[Callable[[Payload], str] | None, Callable[[Payload], str]]] = {
    "job.submitted": (None, lambda p: p["state"]),
    "job.transitioned": (None, _moved),
    "run.leased": (None, lambda p: f"run {p['run_id']} leased, attempt {p['attempt']}"),
    "run.started": (None, _started),
    "run.ended": (None, _run_ended),
    "job.requested": (
        lambda p: f"request {p['request_id']} of {p['site']}",
        lambda p: f"asks for {p['job_type']}",
    ),
    "job.request_answered": (
        lambda p: f"request {p['request_id']} of {p['requester']}",
        _answered,
    ),
    "quota.set": (
        _quota,
        lambda p: _values(p, ("concurrency", "rate", "burst", "daily")) or "set",
    ),
    "quota.reset": (_quota, lambda p: "reset"),
    "remote.refused": (
        lambda p: f"worker {p['worker']}",
        lambda p: (
            f"{p['what']} refused"
            + (f" (run {p['run_id']})" if p.get("run_id") else "")
            + f": {p['reason']}"
        ),
    ),
    "source.paused": (lambda p: f"source {p['source']}", lambda p: "paused"),
    "source.resumed": (lambda p: f"source {p['source']}", lambda p: "resumed"),
    "bundle.exported": (
        lambda p: f"bundle {p['bundle_id']} to {p['recipient']}",
        lambda p: f"{p['kind']}, {p['size']} bytes",
    ),
    "bundle.imported": (
        lambda p: f"bundle {p['bundle_id']} from {p['exporter']}",
        lambda p: (
            f"{p['events']} events" + (", vouched by the relay only" if p.get("relay_only") else "")
        ),
    ),
    "bundle.quarantined": (lambda p: f"file {p['file']}", lambda p: f"quarantined: {p['reason']}"),
    "bundle.forked": (
        lambda p: f"origin {p['origin']} seq {p['seq']}",
        lambda p: f"fork in bundle {p['bundle_id']}",
    ),
    "key.created": (lambda p: f"key {p['key_id']}", lambda p: "created"),
    "key.trusted": (
        lambda p: f"key {p['key_id']} of {p['site']}",
        lambda p: f"trusted, vouched by {p['vouched_by']}" if p.get("vouched_by") else "trusted",
    ),
    "key.revoked": (lambda p: f"key {p['key_id']}", lambda p: "revoked"),
    "key.rotated": (
        lambda p: f"key {p['old_key_id']}",
        lambda p: f"rotated to {p['new_key_id']}",
    ),
    "schedule.armed": (lambda p: f"schedule {p['schedule']}", lambda p: f"slot {p['slot_at']}"),
    "schedule.skipped": (
        lambda p: f"schedule {p['schedule']}",
        lambda p: f"{p['count']} slots skipped, {p['first_slot']} to {p['last_slot']}",
    ),
    "spool.rejected": (lambda p: f"file {p['file']}", lambda p: f"rejected: {p['reason']}"),
    "policy.reloaded": (
        lambda p: "policy",
        lambda p: f"reloaded: {p['job_types']} job types, {p['schedules']} schedules",
    ),
    "policy.reload_failed": (lambda p: "policy", lambda p: f"reload failed: {p['error']}"),
    "daemon.started": (lambda p: f"daemon pid {p['pid']}", lambda p: f"started, {p['version']}"),
    "daemon.stopped": (lambda p: f"daemon pid {p['pid']}", lambda p: "stopped"),
    "clock.jumped": (lambda p: "clock", lambda p: f"jumped {p['jump_ms']} ms"),
    "api.denied": (
        lambda p: f"uid {p['uid']} pid {p['pid']}",
        lambda p: f"denied {p['request']}: needs {p['scope']}",
    ),
    "ledger.pruned": (lambda p: "ledger", lambda p: f"{p['events']} events pruned"),
    "site.initialized": (lambda p: f"site {p['site_id']}", lambda p: "initialized"),
    "site.restored": (lambda p: "site", lambda p: f"restored from {p['from']}"),
}


def said(event_type: str, payload: Payload, job_types: Mapping[str, str]) -> tuple[str, str]:
    """(subject, outcome) of an event; both empty for a type this orchd does not know."""
    found = _SAID.get(event_type)
    if found is None:
        return "", ""
    subject, outcome = found
    about = _job(payload, job_types) if subject is None else subject(payload)
    return about, outcome(payload)
