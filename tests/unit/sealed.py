"""Small builders of sealed events for the unit tests: fixed times, ids and actor, no I/O."""

from __future__ import annotations

from typing import Any

from hypothesis import settings

from orchd.core import chain, events, hlc, ids

ORIGIN = "site-a"
OTHER_ORIGIN = "site-b"
ACTOR = events.Actor(uid=1000, user="alice", scopes=("orch:operate",))
BASE_MS = 1_769_860_800_000  # 2026-01-31T12:00:00.000Z

# Every property runs the same examples on every run and writes no example database.
PROPERTY = settings(derandomize=True, database=None, deadline=None, max_examples=100)


def make_id(n: int) -> str:
    """A valid, distinct id for each small ``n``."""
    return ids.new_id(BASE_MS + n, n.to_bytes(ids.ENTROPY_BYTES, "big"))


def seal(
    event_type: str,
    payload: dict[str, Any],
    *,
    origin: str = ORIGIN,
    seq: int = 1,
    prev_hash: str = events.ZERO_HASH,
    reason: str | None = None,
    ticket: str | None = None,
) -> events.Event:
    """Seal one event at a time derived from ``seq`` (one second apart)."""
    at_ms = BASE_MS + 1000 * seq
    draft = events.Draft(
        type=event_type,
        actor=ACTOR,
        idempotency_key=f"key-{origin}-{seq}",
        payload=payload,
        reason=reason,
        ticket=ticket,
    )
    return events.seal(
        draft,
        event_id=make_id(seq),
        origin=origin,
        seq=seq,
        clock=hlc.Hlc(wall_ms=at_ms, logical=0),
        occurred_at_ms=at_ms,
        prev_hash=prev_hash,
    )


def stored(event: events.Event) -> chain.Stored:
    """The row a store would hold for ``event``."""
    return chain.Stored(
        origin=event.origin,
        seq=event.seq,
        body=event.body,
        hash=event.hash,
        columns=chain.index_columns(event),
    )
