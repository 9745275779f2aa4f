"""Spool requests into jobs (ops layer): what the daemon's spool part records for each file it
claims (docs/ARCHITECTURE.md, "The daemon").

A request is the parsed JSON object of one spool file (``job_type``, and maybe ``source``,
``params``, ``key``, ``priority``; the spool adapter has checked its fields and types). It is
checked like ``jobs submit`` and against the policy; its job key is its ``key``, else
``spool:NAME``, so a file taken again after a crash records nothing new. A request that cannot
be a job is recorded ``spool.rejected``, keyed by the file's name and identity (inode and change
time), so a crash between recording and moving the file records it once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchd.core import drafts
from orchd.core.events import Actor, Draft, Event
from orchd.core.policy import Policy
from orchd.core.ports import Clock, Entropy, EventLog, JobLog

from . import jobs

MAX_REASON = 4000  # characters of a rejection's reason kept in its event


def spool_key(name: str) -> str:
    """The job key of a spool request that names none."""
    return f"spool:{name}"


def submit_request(request: Mapping[str, Any], name: str) -> jobs.SubmitRequest:
    """The submission a spool request ``name`` asks for (its params checked as ``k=v`` pairs)."""
    params = jobs.parse_params([f"{k}={v}" for k, v in request.get("params", {}).items()])
    return jobs.SubmitRequest(
        job_type=request["job_type"],
        source=request.get("source"),
        params=params,
        key=request.get("key") or spool_key(name),
        priority=request.get("priority"),
    )


def submit(
    ledger: JobLog,
    clock: Clock,
    entropy: Entropy,
    actor: Actor,
    policy: Policy,
    request: Mapping[str, Any],
    name: str,
) -> jobs.Submitted:
    """Record the job of spool request ``name`` as ``actor`` (the file's owner); a repeat of the
    same file returns the job it made. Raises as ``jobs.submit`` does."""
    return jobs.submit(ledger, clock, entropy, actor, policy, submit_request(request, name))


def rejected_draft(actor: Actor, name: str, identity: str, reason: str) -> Draft:
    """The ``spool.rejected`` event of file ``name`` (``identity``: its inode and change time)."""
    return drafts.spool_rejected(actor, file=name, identity=identity, reason=reason[:MAX_REASON])


def reject(ledger: EventLog, actor: Actor, name: str, identity: str, reason: str) -> Event:
    """Record that spool file ``name`` was refused, and why (once per file)."""
    [event] = ledger.append([rejected_draft(actor, name, identity, reason)])
    return event
