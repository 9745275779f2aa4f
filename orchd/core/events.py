"""The event envelope, its canonical bytes and the per-origin hash chain (core layer).

Every ledger record, bundle line and audit line is one envelope (docs/ARCHITECTURE.md, "Event
envelope"). ``hash = sha256(prev_hash || canonical_bytes(envelope))`` with the raw 32-byte
``prev_hash``, all zero before an origin's first event; the envelope holds every field but ``hash``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

from orchd.core import canonical, hlc, ids, timefmt
from orchd.core.names import check_name, check_repeated, check_text
from orchd.errors import MalformedEvent, OrchdError

SCHEMA_VERSION = 1
ZERO_HASH = "0" * 64
_HEX64 = re.compile(r"[0-9a-f]{64}")


class Field(NamedTuple):
    """One field of the envelope and how the sealing fast path writes it: ``quoted``, a checked
    name, id, hash or time that needs no JSON escaping; ``number``; ``json``, canonical text."""

    name: str
    form: str
    optional: bool = False


# The envelope, one row per field: the checks of ``parse`` and the body ``seal`` writes are both
# drawn from it. The body's order is the canonical one, by name, whatever the order here.
ENVELOPE = (
    Field("schema", "number"),
    Field("event_id", "quoted"),
    Field("origin", "quoted"),
    Field("seq", "number"),
    Field("hlc", "quoted"),
    Field("occurred_at", "quoted"),
    Field("type", "quoted"),
    Field("actor", "json"),
    Field("idempotency_key", "quoted"),
    Field("prev_hash", "quoted"),
    Field("payload", "json"),
    Field("reason", "json", optional=True),
    Field("ticket", "json", optional=True),
)
_REQUIRED = frozenset(f.name for f in ENVELOPE if not f.optional)
_KNOWN = frozenset(f.name for f in ENVELOPE)
_SLOTS = {"quoted": '"{%s}"', "number": "{%s:d}", "json": "{%s}"}


def _body_writer(given: frozenset[str]) -> Callable[..., str]:
    """The body's text from every field's text, by name (keyword-only), writing the optional
    fields ``given``: an f-string compiled once from ``ENVELOPE``, as ``dataclasses`` compiles an
    ``__init__``; the source holds only the table's own names."""
    written = sorted(f for f in ENVELOPE if not f.optional or f.name in given)
    text = ",".join(f'"{f.name}":' + _SLOTS[f.form] % f.name for f in written)
    names = ", ".join(f.name for f in ENVELOPE)
    writer: Callable[..., str] = eval(f"lambda *, {names}: f'{{{{{text}}}}}'")  # noqa: S307
    return writer


# by (reason given, ticket given)
_BODIES = {
    (reason, ticket): _body_writer(
        frozenset(name for name, on in (("reason", reason), ("ticket", ticket)) if on)
    )
    for reason in (False, True)
    for ticket in (False, True)
}
_ACTOR_FIELDS = frozenset({"uid", "user", "scopes"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Actor:
    """Who caused an event: the OS identity and the scopes the action used."""

    uid: int
    user: str
    scopes: tuple[str, ...]

    def __post_init__(self) -> None:
        if type(self.uid) is not int or self.uid < 0:
            raise _fail("actor.uid must be a non-negative integer")
        check_name("user", self.user)
        if not isinstance(self.scopes, tuple):
            raise _fail("actor.scopes must be sorted, without repeats")
        for scope in self.scopes:
            check_name("scope", scope)
        if list(self.scopes) != sorted(set(self.scopes)):
            raise _fail("actor.scopes must be sorted, without repeats")

    def to_json(self) -> dict[str, Any]:
        return {"uid": self.uid, "user": self.user, "scopes": list(self.scopes)}


@dataclass(frozen=True, slots=True, kw_only=True)
class Draft:
    """An event an operation asks to record; the ledger seals it with origin, seq, time, chain."""

    type: str
    actor: Actor
    idempotency_key: str
    payload: Mapping[str, Any]
    reason: str | None = None
    ticket: str | None = None


class Event(NamedTuple):
    """A sealed event: the envelope fields, its canonical ``body`` and its chain ``hash``."""

    schema: int
    event_id: str
    origin: str
    seq: int
    hlc: str
    occurred_at: str
    type: str
    actor: Actor
    idempotency_key: str
    prev_hash: str
    payload: Mapping[str, Any]
    reason: str | None
    ticket: str | None
    body: bytes
    hash: str


@lru_cache(maxsize=256)
def _actor_text(actor: Actor) -> str:
    return canonical.encode(actor.to_json()).decode()


def chain_hash(prev_hash: str, body: bytes) -> str:
    """``sha256(prev_hash || body)`` as lower-case hex, ``prev_hash`` taken as raw 32 bytes."""
    return hashlib.sha256(bytes.fromhex(prev_hash) + body).hexdigest()


def envelope(
    draft: Draft,
    *,
    event_id: str,
    origin: str,
    seq: int,
    clock: hlc.Hlc,
    occurred_at_ms: int,
    prev_hash: str,
) -> dict[str, Any]:
    """The envelope of ``draft`` once the ledger has placed it in the chain."""
    fields: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "event_id": event_id,
        "origin": origin,
        "seq": seq,
        "hlc": clock.encode(),
        "occurred_at": timefmt.format_ms(occurred_at_ms),
        "type": draft.type,
        "actor": draft.actor.to_json(),
        "idempotency_key": draft.idempotency_key,
        "prev_hash": prev_hash,
        "payload": dict(draft.payload),
    }
    if draft.reason is not None:
        fields["reason"] = draft.reason
    if draft.ticket is not None:
        fields["ticket"] = draft.ticket
    return fields


def seal(
    draft: Draft,
    *,
    event_id: str,
    origin: str,
    seq: int,
    clock: hlc.Hlc,
    occurred_at_ms: int,
    prev_hash: str,
) -> Event:
    """Place ``draft`` in the chain after ``(seq - 1, prev_hash)`` and hash it.

    Every field is checked, so nothing is sealed that ``parse`` would refuse.
    """
    _check_placement(origin, seq, prev_hash)
    ids.check_id(event_id, "event id")
    at_text = timefmt.format_ms(occurred_at_ms)
    return _sealed(draft, event_id, origin, seq, clock.encode(), at_text, prev_hash)


def seal_batch(
    drafts: Sequence[Draft],
    *,
    origin: str,
    after: tuple[int, str],
    clock: hlc.Hlc,
    now_ms: int,
    entropy: bytes,
) -> list[Event]:
    """Seal ``drafts`` one after another from the chain head ``after = (seq, hash)``.

    ``clock`` is the origin's last HLC; each event ticks it at ``now_ms``. ``entropy`` holds
    ``ids.ENTROPY_BYTES`` bytes per draft for the event ids. The placement is checked once.
    """
    seq, prev_hash = after
    _check_placement(origin, seq + 1, prev_hash)
    if seq + len(drafts) > canonical.MAX_INT:
        raise _fail("seq must be a positive integer up to 2**53 - 1")
    if len(entropy) != ids.ENTROPY_BYTES * len(drafts):
        raise ValueError("seal_batch needs ids.ENTROPY_BYTES of entropy per draft")
    at_text = timefmt.format_ms(now_ms)
    sealed = []
    placed = zip(ids.new_ids(now_ms, entropy), hlc.ticks(clock, now_ms, len(drafts)), strict=True)
    for draft, (event_id, clock_text) in zip(drafts, placed, strict=True):
        seq += 1
        event = _sealed(draft, event_id, origin, seq, clock_text, at_text, prev_hash)
        sealed.append(event)
        prev_hash = event.hash
    return sealed


def _check_placement(origin: str, seq: int, prev_hash: str) -> None:
    if type(seq) is not int or not 1 <= seq <= canonical.MAX_INT:
        raise _fail("seq must be a positive integer up to 2**53 - 1")
    check_name("site id", origin)
    if not isinstance(prev_hash, str) or not _HEX64.fullmatch(prev_hash):
        raise _fail("prev_hash must be 64 lower-case hex digits")


def _sealed(
    draft: Draft,
    event_id: str,
    origin: str,
    seq: int,
    clock_text: str,
    at_text: str,
    prev_hash: str,
) -> Event:
    """The event of a checked placement: the draft's own fields are checked here.

    The body is ``canonical.encode(envelope(...))``, written by the writer ``ENVELOPE`` gives:
    every value written between quotes as it is is a checked name, id, hash or time that needs
    no JSON escaping (unit tests hold the two equal).
    """
    check_repeated("event type", draft.type)
    check_name("idempotency key", draft.idempotency_key)
    reason, ticket = draft.reason, draft.ticket
    payload = dict(draft.payload)
    canonical.check(payload)
    write = _BODIES[reason is not None, ticket is not None]
    body = write(
        schema=SCHEMA_VERSION,
        event_id=event_id,
        origin=origin,
        seq=seq,
        hlc=clock_text,
        occurred_at=at_text,
        type=draft.type,
        actor=_actor_text(draft.actor),
        idempotency_key=draft.idempotency_key,
        prev_hash=prev_hash,
        payload=canonical.dump(payload).decode(),
        reason=None if reason is None else canonical.dump(check_text("reason", reason)).decode(),
        ticket=None if ticket is None else canonical.dump(check_name("ticket", ticket)).decode(),
    ).encode()
    return Event(
        schema=SCHEMA_VERSION,
        event_id=event_id,
        origin=origin,
        seq=seq,
        hlc=clock_text,
        occurred_at=at_text,
        type=draft.type,
        actor=draft.actor,
        idempotency_key=draft.idempotency_key,
        prev_hash=prev_hash,
        payload=payload,
        reason=reason,
        ticket=ticket,
        body=body,
        hash=chain_hash(prev_hash, body),
    )


def parse(body: bytes, stored_hash: str | None = None) -> Event:
    """Rebuild an event from its canonical bytes, checking every field; the hash is recomputed."""
    try:
        fields = canonical.decode(body)
    except OrchdError as exc:
        raise MalformedEvent(where="", detail=exc.message) from None
    if not isinstance(fields, dict):
        raise MalformedEvent(where="", detail="an event is a JSON object")
    try:
        actor = _check_fields(fields)
    except OrchdError as exc:
        detail = exc.fields["detail"] if isinstance(exc, MalformedEvent) else exc.message
        raise MalformedEvent(where=_where(fields), detail=detail) from None
    digest = chain_hash(fields["prev_hash"], body)
    if stored_hash is not None and stored_hash != digest:
        raise MalformedEvent(where=_where(fields), detail="stored hash does not match its bytes")
    get = fields.get
    return Event(
        schema=fields["schema"],
        event_id=fields["event_id"],
        origin=fields["origin"],
        seq=fields["seq"],
        hlc=fields["hlc"],
        occurred_at=fields["occurred_at"],
        type=fields["type"],
        actor=actor,
        idempotency_key=fields["idempotency_key"],
        prev_hash=fields["prev_hash"],
        payload=fields["payload"],
        reason=get("reason"),
        ticket=get("ticket"),
        body=body,
        hash=digest,
    )


def _where(fields: dict[str, Any]) -> str:
    return f" {fields.get('origin')!r}/{fields.get('seq')!r}"


_AT = Event._fields.index("actor")  # where to_wire spreads the actor out, found by name


def to_wire(event: Event) -> tuple[Any, ...]:
    """The event as plain values, for ``from_wire`` in another orchd process: its fields in
    ``Event``'s order, the actor spread into uid, user and scopes."""
    actor = event.actor
    return (*event[:_AT], actor.uid, actor.user, actor.scopes, *event[_AT + 1 :])


def from_wire(values: Sequence[Any]) -> Event:
    """The event ``to_wire`` gave, in another orchd process that parsed and checked it: only
    the actor is checked again (once per distinct actor)."""
    actor = _known_actor(*values[_AT : _AT + 3])
    return Event._make((*values[:_AT], actor, *values[_AT + 3 :]))


def _fail(detail: str) -> MalformedEvent:
    return MalformedEvent(where="", detail=detail)


def _check_fields(fields: dict[str, Any]) -> Actor:
    """Check an envelope's fields; its actor, checked."""
    keys = fields.keys()
    if not _REQUIRED <= keys <= _KNOWN:
        if missing := _REQUIRED - keys:
            raise _fail(f"missing {', '.join(sorted(missing))}")
        raise _fail(f"unknown field {', '.join(sorted(keys - _KNOWN))}")
    if fields["schema"] != SCHEMA_VERSION:
        raise _fail(f"schema {fields['schema']!r} is not {SCHEMA_VERSION}; upgrade orchd")
    ids.check_id(fields["event_id"], "event id")
    check_repeated("site id", fields["origin"])
    if not isinstance(fields["seq"], int) or fields["seq"] < 1:
        raise _fail("seq must be a positive integer")
    hlc.check(fields["hlc"])
    timefmt.parse_canonical(fields["occurred_at"])
    check_repeated("event type", fields["type"])
    actor = _check_actor(fields["actor"])
    check_name("idempotency key", fields["idempotency_key"])
    if not isinstance(fields["prev_hash"], str) or not _HEX64.fullmatch(fields["prev_hash"]):
        raise _fail("prev_hash must be 64 lower-case hex digits")
    if not isinstance(fields["payload"], dict):
        raise _fail("payload must be an object")
    if "reason" in fields:
        check_text("reason", fields["reason"])
    if "ticket" in fields:
        check_name("ticket", fields["ticket"])
    return actor


def _check_actor(actor: object) -> Actor:
    if not isinstance(actor, dict) or actor.keys() != _ACTOR_FIELDS:
        raise _fail("actor must be an object with exactly uid, user and scopes")
    if not isinstance(actor["scopes"], list):
        raise _fail("actor.scopes must be a list")
    return _actor(actor)


def _actor(fields: dict[str, Any]) -> Actor:
    """The actor of an event; the same few actors recur, so checked ones are remembered."""
    uid, user, scopes = fields["uid"], fields["user"], tuple(fields["scopes"])
    if type(uid) is int and type(user) is str:  # True would find uid 1's actor
        try:
            return _known_actor(uid, user, scopes)  # only all-text scopes are ever remembered
        except TypeError:  # a scope that cannot be a key: said below
            pass
    return Actor(uid=uid, user=user, scopes=scopes)  # raises, saying what is wrong


@lru_cache(maxsize=1024)
def _known_actor(uid: int, user: str, scopes: tuple[str, ...]) -> Actor:
    return Actor(uid=uid, user=user, scopes=scopes)
