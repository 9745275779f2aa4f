"""Pausing and resuming a source on this site, audited (ops layer).

A paused source starts no run here (the limits treat it as blocked) until it is resumed. Pauses
are this site's own decision: another origin's pause events are stored and shown, never applied.
Pausing a paused source, or resuming one that is not paused, records nothing: the change is in
effect already.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchd.core import drafts, ids
from orchd.core.events import Actor
from orchd.core.names import check_name
from orchd.core.policy import Change, Policy, check_change
from orchd.core.ports import Clock, Entropy, JobLog, JobQueries
from orchd.core.site_views import PauseView
from orchd.errors import NotInPolicy, StateConflict

SCOPE = "orch:operate"


@dataclass(frozen=True, slots=True, kw_only=True)
class Paused:
    pause: PauseView  # the pause in effect now
    changed: bool  # False: the source was paused already; nothing was recorded


def pause(
    ledger: JobLog,
    clock: Clock,
    entropy: Entropy,
    actor: Actor,
    policy: Policy,
    source: str,
    reason: str,
    ticket: str | None = None,
) -> Paused:
    """Pause ``source``, one the policy declares; a source paused already stays as it is (the
    pause in effect says since when and why)."""
    current = _current(ledger, policy, "pause", source, reason, ticket)
    if source not in policy.sources:
        known = ", ".join(sorted(policy.sources)) or "none (the policy declares no sources)"
        raise NotInPolicy(what="source", value=source, expected=f"one of {known}")
    if current is not None:
        return Paused(pause=current, changed=False)
    change = _change_id(clock, entropy)
    ledger.append(
        [drafts.source_paused(actor, source=source, change=change, reason=reason, ticket=ticket)]
    )
    paused = _current(ledger, policy, "pause", source, reason, ticket)
    if paused is None:  # the append succeeded, so the projection must hold it
        raise StateConflict(detail=f"source {source} did not pause")
    return Paused(pause=paused, changed=True)


def resume(
    ledger: JobLog,
    clock: Clock,
    entropy: Entropy,
    actor: Actor,
    policy: Policy,
    source: str,
    reason: str,
    ticket: str | None = None,
) -> PauseView | None:
    """Resume ``source``: the pause that ended, or None if it was not paused (nothing is
    recorded). The source need not be in the policy: one dropped from it can still be resumed."""
    current = _current(ledger, policy, "resume", source, reason, ticket)
    if current is not None:
        change = _change_id(clock, entropy)
        ledger.append(
            [
                drafts.source_resumed(
                    actor, source=source, change=change, reason=reason, ticket=ticket
                )
            ]
        )
    return current


def _current(
    ledger: JobQueries, policy: Policy, change: Change, source: str, reason: str, ticket: str | None
) -> PauseView | None:
    check_change(policy, change, reason, ticket)
    check_name("source", source)
    return next((p for p in ledger.pauses() if p.source == source), None)


def _change_id(clock: Clock, entropy: Entropy) -> str:
    return ids.new_id(clock.now_ms(), entropy.token(ids.ENTROPY_BYTES))
