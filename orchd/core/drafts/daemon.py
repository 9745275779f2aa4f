"""Drafts of the daemon's own events: start, stop, policy reloads, clock jumps, quarantined
bundles, denied API calls (core layer)."""

from __future__ import annotations

import hashlib
from typing import Any

from orchd.core.events import Actor, Draft

from .common import keyed

# --- the daemon's own: each once per daemon process and moment ----------------------------


def daemon_started(actor: Actor, *, at: str, daemon_pid: int, version: str) -> Draft:
    payload = {"version": version, "pid": daemon_pid}
    return _daemon("daemon.started", actor, at, daemon_pid, payload)


def daemon_stopped(actor: Actor, *, at: str, daemon_pid: int) -> Draft:
    return _daemon("daemon.stopped", actor, at, daemon_pid, {"pid": daemon_pid})


def policy_reloaded(
    actor: Actor, *, at: str, daemon_pid: int, job_types: int, schedules: int
) -> Draft:
    payload = {"job_types": job_types, "schedules": schedules}
    return _daemon("policy.reloaded", actor, at, daemon_pid, payload)


def policy_reload_failed(actor: Actor, *, at: str, daemon_pid: int, error: str) -> Draft:
    return _daemon("policy.reload_failed", actor, at, daemon_pid, {"error": error[:4000]})


def clock_jumped(
    actor: Actor, *, at: str, daemon_pid: int, before: str, after: str, jump_ms: int
) -> Draft:
    """The wall clock moved ``jump_ms`` more (or less) than the monotonic clock."""
    payload = {"from": before, "to": after, "jump_ms": jump_ms}
    return _daemon("clock.jumped", actor, at, daemon_pid, payload)


def bundle_quarantined(
    actor: Actor, *, at: str, daemon_pid: int, file: str, problem: str, error: str
) -> Draft:
    """An inbox bundle moved aside, and why."""
    payload = {"file": file, "reason": problem[:4000], "error": error}
    return _daemon("bundle.quarantined", actor, at, daemon_pid, payload, file)


def api_denied(
    actor: Actor,
    *,
    at: str,
    daemon_pid: int,
    uid: int,
    gid: int,
    pid: int,
    request: str,
    scope: str,
) -> Draft:
    """A control API call refused: the caller (``uid``, ``gid``, ``pid``) lacked ``scope``."""
    payload = {"uid": uid, "gid": gid, "pid": pid, "request": request, "scope": scope}
    return _daemon("api.denied", actor, at, daemon_pid, payload, pid, request)


def _daemon(
    kind: str, actor: Actor, at: str, pid: int, payload: dict[str, Any], *distinct: object
) -> Draft:
    """An event of the daemon's own, keyed by its time and pid and, where one millisecond may
    see several (a tick quarantining an inbox's files, denied calls), by a digest of what tells
    them apart (a file name may hold any character a key may not): a key recorded already
    returns the recorded event, so two of them keyed alike were one."""
    apart = [hashlib.sha256("\x00".join(map(str, distinct)).encode()).hexdigest()[:16]]
    key = keyed(kind, at, pid, *(apart if distinct else []))
    return Draft(type=kind, actor=actor, idempotency_key=key, payload=payload)
