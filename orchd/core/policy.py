"""The policy model: sources, job types, schedules, quotas, tickets (core layer).

Frozen values built by the policy loader (``orchd.adapters.policy_files``) once every key was
checked; the pure checks here (argv placeholders, dependency cycles) return what is wrong so the
loader can name the file and line. ``check_change`` is the one rule of the operators' audited
changes: a reason always, a ticket where the policy's ``tickets.required_for`` says.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, get_args

from orchd.core import timefmt
from orchd.core.names import check_name, check_text
from orchd.errors import TicketRequired

BUILTIN_PLACEHOLDERS = frozenset({"job_id", "key", "attempt", "source", "job_type"})
MISFIRE_POLICIES = ("skip", "once", "all")

# The operators' audited changes, by the names tickets.required_for uses: jobs cancel, replay,
# sources pause and resume, quota set and reset, backfill, keys trust, revoke and rotate, and
# a bundle import's ranges taken on the relay's word alone (vouch).
Change = Literal[
    "cancel", "replay", "pause", "resume", "quota", "backfill", "trust", "revoke", "rotate", "vouch"
]
CHANGES: tuple[Change, ...] = get_args(Change)
TICKETS_ALWAYS = frozenset({"quota"})  # quota events carry a ticket by their format (every site)
TICKETS_BY_DEFAULT = frozenset({"quota", "backfill"})


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    name: str
    description: str = ""
    labels: Mapping[str, str] = field(default_factory=_empty)


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Delay before attempt n+1: min(cap, base * 2**(n-1)), minus up to jitter_pct percent."""

    base_s: int = 30
    cap_s: int = 3600
    jitter_pct: int = 20


@dataclass(frozen=True, slots=True, kw_only=True)
class JobType:
    name: str
    argv: tuple[str, ...]
    description: str = ""
    params: Mapping[str, str | None] = field(
        default_factory=_empty
    )  # name -> default (None: required)
    env: Mapping[str, str] = field(default_factory=_empty)
    workdir: str | None = None
    timeout_s: int = 3600
    max_attempts: int = 3
    backoff: Backoff = field(default_factory=Backoff)
    retry_on: frozenset[int] | None = None  # None: every failure and timeout is retryable
    priority: int = 0
    after: tuple[str, ...] = ()
    remote: bool = False  # its runs go to remote workers (``core.remote``)


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    name: str
    job_type: str
    cron: str
    source: str | None = None
    timezone: str = "UTC"
    jitter_s: int = 0
    misfire: str = "once"
    catch_up_limit: int = 24
    params: Mapping[str, str] = field(default_factory=_empty)


@dataclass(frozen=True, slots=True, kw_only=True)
class Quota:
    """Limits on one target, ``("source", name)`` or ``("job_type", name)``."""

    target: tuple[str, str]
    rate: str | None = None  # "N/PERIOD", e.g. "10/hour"
    burst: int | None = None
    concurrency: int | None = None
    daily: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    concurrency: int = 4
    sources: Mapping[str, Source] = field(default_factory=_empty)
    job_types: Mapping[str, JobType] = field(default_factory=_empty)
    schedules: Mapping[str, Schedule] = field(default_factory=_empty)
    quotas: Mapping[tuple[str, str], Quota] = field(default_factory=lambda: MappingProxyType({}))
    accept: Mapping[str, tuple[str, ...]] = field(default_factory=_empty)  # origin -> job types
    workers: Mapping[str, frozenset[str]] = field(default_factory=_empty)  # name -> remote types
    retention_days: int | None = None  # None: nothing is pruned
    tickets_required_for: frozenset[str] = TICKETS_BY_DEFAULT  # names from CHANGES


def check_change(policy: Policy, change: Change, reason: object, ticket: object) -> None:
    """The rule of every audited change: a reason (one printable line), and a ticket where
    ``policy`` requires one for ``change``; any change may carry a ticket. InvalidName for a bad
    reason or ticket, TicketRequired for a missing one."""
    check_text("reason", reason)
    if ticket is not None:
        check_name("ticket", ticket)
    elif change in policy.tickets_required_for:
        listed = ", ".join(c for c in CHANGES if c in policy.tickets_required_for)
        raise TicketRequired(change=change, required=listed)


def slot_key(schedule: str, slot_ms: int) -> str:
    """The idempotency key of a schedule's slot: ``{schedule}@{slot as UTC RFC 3339 with Z}``."""
    return f"{schedule}@{timefmt.format_ms(slot_ms)}"


def placeholders(template: str) -> list[str] | None:
    """The ``{name}`` placeholders of one argv item; None if the item is not a plain template.

    ``{{`` and ``}}`` are literal braces; format specs, conversions and positional ``{}`` are
    not allowed, so an argument can never be more than its substituted values.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        return None
    names = []
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            return None
        names.append(name)
    return names


def dependency_cycle(after: Mapping[str, tuple[str, ...]]) -> list[str] | None:
    """A cycle in the ``after:`` graph as ``[a, b, ..., a]``, or None when it is acyclic."""
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        if state.get(node) == "done":
            return None
        if state.get(node) == "active":
            return [*path[path.index(node) :], node]
        state[node] = "active"
        for upstream in after.get(node, ()):
            if (cycle := visit(upstream, [*path, node])) is not None:
                return cycle
        state[node] = "done"
        return None

    for start in sorted(after):
        if (cycle := visit(start, [])) is not None:
            return cycle
    return None
