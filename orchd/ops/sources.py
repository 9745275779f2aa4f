"""Pausing and resuming a source on this site, audited (ops layer).

A paused source starts no run here (the limits treat it as blocked) until it is resumed. Pauses
are this site's own decision: another origin's pause events are stored and shown, never applied.
"""

from __future__ import annotations

from orchd.core import ids
from orchd.core.events import Actor, Draft
from orchd.core.names import check_name, check_text
from orchd.core.policy import Policy
from orchd.core.ports import Clock, Entropy, Ledger
from orchd.core.projection import PauseView
from orchd.errors import NotInPolicy, StateConflict

SCOPE = "orch:operate"


def pause(ledger: Ledger, clock: Clock, entropy: Entropy, actor: Actor, policy: Policy,
          source: str, reason: str) -> PauseView:  # fmt: skip
    """Pause ``source``, one the policy declares; refused if it is paused already (saying since
    when and why). Resuming needs no policy: a source dropped from it can still be resumed."""
    current = _current(ledger, source, reason)
    if source not in policy.sources:
        known = ", ".join(sorted(policy.sources)) or "none (the policy declares no sources)"
        raise NotInPolicy(what="source", value=source, expected=f"one of {known}")
    if current is not None:
        raise StateConflict(
            detail=f"source {source} is already paused since {current.paused_at}: {current.reason}"
        )
    ledger.append([_draft("source.paused", clock, entropy, actor, source, reason)])
    paused = _current(ledger, source, reason)
    if paused is None:  # the append succeeded, so the projection must hold it
        raise StateConflict(detail=f"source {source} did not pause")
    return paused


def resume(ledger: Ledger, clock: Clock, entropy: Entropy, actor: Actor, source: str,
           reason: str) -> PauseView:  # fmt: skip
    """Resume ``source``; refused if it is not paused. Returns the pause that ended."""
    current = _current(ledger, source, reason)
    if current is None:
        raise StateConflict(detail=f"source {source} is not paused")
    ledger.append([_draft("source.resumed", clock, entropy, actor, source, reason)])
    return current


def _current(ledger: Ledger, source: str, reason: str) -> PauseView | None:
    check_name("source", source)
    check_text("reason", reason)
    return next((p for p in ledger.pauses() if p.source == source), None)


def _draft(kind: str, clock: Clock, entropy: Entropy, actor: Actor, source: str,
           reason: str) -> Draft:  # fmt: skip
    change = ids.new_id(clock.now_ms(), entropy.token(ids.ENTROPY_BYTES))
    return Draft(
        type=kind,
        actor=actor,
        idempotency_key=f"{kind}:{source}:{change}",
        payload={"source": source},
        reason=reason,
    )
