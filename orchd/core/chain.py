"""Checking a per-origin hash chain as stored, naming the first seq that is wrong (core layer)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from orchd.core import events
from orchd.core.events import ZERO_HASH, Event
from orchd.errors import ChainBroken, MalformedEvent


@dataclass(frozen=True, slots=True, kw_only=True)
class Stored:
    """One event row as a store holds it: its bytes, its hash and the columns indexed beside."""

    origin: str
    seq: int
    body: bytes
    hash: str
    columns: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Head:
    seq: int
    hash: str


START = Head(seq=0, hash=ZERO_HASH)


INDEX_COLUMNS = ("event_id", "hlc", "occurred_at", "type", "idempotency_key", "prev_hash", "job_id")


def index_values(event: Event) -> tuple[Any, ...]:
    """The envelope fields a store keeps as columns for queries, in ``INDEX_COLUMNS`` order."""
    job_id = event.payload.get("job_id")
    return (
        event.event_id,
        event.hlc,
        event.occurred_at,
        event.type,
        event.idempotency_key,
        event.prev_hash,
        job_id if isinstance(job_id, str) else None,
    )


def index_columns(event: Event) -> dict[str, Any]:
    """``index_values`` by column name; verification compares them with the stored columns."""
    return dict(zip(INDEX_COLUMNS, index_values(event), strict=True))


def verify(origin: str, rows: Iterable[Stored], start: Head = START) -> Head:
    """Walk ``rows`` (in seq order) from ``start``; return the head or raise ChainBroken."""
    head = start
    for row in rows:
        head = _step(origin, head, row)
    return head


def _step(origin: str, head: Head, row: Stored) -> Head:
    expected = head.seq + 1

    def broken(detail: str) -> ChainBroken:
        return ChainBroken(origin=origin, seq=expected, detail=detail)

    if row.origin != origin:
        raise broken(f"row of origin {row.origin!r} in this chain")
    if row.seq != expected:
        raise broken(f"seq {expected} is missing (next stored seq is {row.seq})")
    if not isinstance(row.body, bytes):
        raise broken(f"the stored body is {type(row.body).__name__}, not bytes")
    try:
        event = events.parse(row.body, row.hash)
    except MalformedEvent as exc:
        raise broken(exc.fields["detail"]) from None
    if (event.origin, event.seq) != (origin, row.seq):
        raise broken(f"the event inside says {event.origin!r}/{event.seq}")
    if event.prev_hash != head.hash:
        raise broken("prev_hash does not match the hash of the event before")
    if dict(row.columns) != index_columns(event):
        raise broken("indexed columns differ from the event's bytes")
    return Head(seq=row.seq, hash=row.hash)
