"""The trust store: which Ed25519 keys this site accepts for which site (core layer).

Rules:
- The store is a projection of this site's own ``key.*`` events: ``key.created`` (this site's
  signing key, at init and at each rotation), ``key.trusted`` (an operator trusts a peer's key,
  optionally until a time; or an import followed a rotation statement to it, signed by the
  trusted key ``vouched_by``), ``key.revoked`` (an operator withdraws a key) and ``key.rotated``
  (this site replaced its signing key; the old one is retired; ``statement`` is the DSSE envelope
  in which the old key vouches for the new one, which exports carry so peers can follow).
- A key trusted through a rotation may be trusted by hand as well (a second ``key.trusted``);
  what a key's trust rests on is read from the events (``grants``), and revoking a key revokes
  with it the keys trusted only through its rotation statements, transitively (``successors``,
  ``bundles/FORMAT.md`` 3.2), unless the revocation says ``successors: kept``.
- Trust is local: ``key.*`` events of other origins travel in bundles and are stored and shown,
  but never change this store.
- A key id is the sha256 of the raw public key (``core.dsse.key_id``); an event whose key id does
  not match its public key is refused.
- A key verifies a bundle of a site when it is that site's, a peer key or this site's own (own:
  for bundles this site exported), not revoked, and not past its expiry.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from orchd.core import dsse, timefmt
from orchd.core.events import Event
from orchd.core.names import check_name
from orchd.errors import MalformedEvent, UntrustedKey

TRUST_TYPES = frozenset({"key.created", "key.trusted", "key.revoked", "key.rotated"})
KEPT = "kept"  # ``successors`` of a key.revoked whose operator kept the keys it vouched for
_HEX64 = re.compile("[0-9a-f]{64}")


class KeyView(NamedTuple):
    """A row of ``trust_keys``."""

    key_id: str
    site: str
    public_key: str  # 64 hex digits
    role: str  # "own" (this site's signing key), "retired" (an earlier one) or "peer"
    added_at: str
    expires_at: str | None
    revoked_at: str | None
    reason: str | None


def _bad(event: Event, detail: str) -> MalformedEvent:
    return MalformedEvent(where=f" {event.origin!r}/{event.seq} ({event.type})", detail=detail)


def _public_key(event: Event, key_id: object, public_hex: object) -> str:
    if not isinstance(public_hex, str) or len(public_hex) != 64:
        raise _bad(event, "public_key must be 64 hex digits")
    try:
        raw = bytes.fromhex(public_hex)
    except ValueError:
        raise _bad(event, "public_key must be 64 hex digits") from None
    if public_hex != raw.hex() or dsse.key_id(raw) != key_id:
        raise _bad(event, "key_id is not the sha256 of public_key")
    return public_hex


def _exactly(event: Event, required: set[str], optional: frozenset[str] = frozenset()) -> None:
    keys = set(event.payload)
    if not required <= keys or not keys <= required | optional:
        expected = ", ".join(sorted(required)) + (
            f" (and optionally {', '.join(sorted(optional))})" if optional else ""
        )
        raise _bad(event, f"payload must hold {expected}")


def subject(event: Event) -> list[str]:
    """The key ids an event touches."""
    p = event.payload
    ids = [p.get("key_id"), p.get("old_key_id"), p.get("new_key_id")]
    return [i for i in ids if isinstance(i, str)]


def _check_shape(event: Event) -> None:
    """Refuse a ``key.*`` event whose payload is not of its type's shape (of any origin)."""
    p = event.payload
    if event.type == "key.created":
        _exactly(event, {"key_id", "public_key"})
    elif event.type == "key.trusted":
        _exactly(event, {"site", "key_id", "public_key"}, frozenset({"expires_at", "vouched_by"}))
        check_name("site id", p["site"])
        if "expires_at" in p:
            timefmt.parse_canonical(p["expires_at"])
        if "vouched_by" in p and not (
            isinstance(p["vouched_by"], str) and _HEX64.fullmatch(p["vouched_by"])
        ):
            raise _bad(event, "vouched_by must be a key id (64 hex digits)")
    elif event.type == "key.revoked":
        _exactly(event, {"key_id"}, frozenset({"successors"}))
        if event.reason is None:
            raise _bad(event, "revoking a key needs a reason")
        if p.get("successors", KEPT) != KEPT:
            raise _bad(event, f"successors may only be {KEPT!r}")
    else:  # key.rotated: the callers fold only TRUST_TYPES
        _exactly(event, {"old_key_id", "new_key_id", "public_key", "statement"})


def apply(event: Event, local: str, rows: dict[str, KeyView]) -> dict[str, KeyView] | None:
    """The rows after ``event`` (those it changes), or None when it changes nothing here."""
    _check_shape(event)
    p = event.payload
    if event.origin != local:
        return None  # trust is local: another site's decisions are stored, never applied
    if event.type == "key.created":
        public = _public_key(event, p["key_id"], p["public_key"])
        return {
            p["key_id"]: KeyView(
                p["key_id"], local, public, "own", event.occurred_at, None, None, None
            )
        }
    if event.type == "key.trusted":
        return _trusted(event, rows)
    if event.type == "key.revoked":
        current = rows.get(p["key_id"])
        if current is None or current.revoked_at is not None:
            raise _bad(event, f"key {p['key_id']} is not in the trust store or revoked already")
        return {p["key_id"]: current._replace(revoked_at=event.occurred_at, reason=event.reason)}
    old = rows.get(p["old_key_id"])
    if old is None or old.role != "own":
        raise _bad(event, f"key {p['old_key_id']} is not this site's signing key")
    public = _public_key(event, p["new_key_id"], p["public_key"])
    new = KeyView(p["new_key_id"], local, public, "own", event.occurred_at, None, None, None)
    return {old.key_id: old._replace(role="retired"), new.key_id: new}


def _trusted(event: Event, rows: Mapping[str, KeyView]) -> dict[str, KeyView]:
    p = event.payload
    public = _public_key(event, p["key_id"], p["public_key"])
    current = rows.get(p["key_id"])
    if current is not None and current.revoked_at is None:
        if "vouched_by" in p or (current.site, current.role) != (p["site"], "peer"):
            raise _bad(event, f"key {p['key_id']} is trusted already")
        # an operator trusts by hand a key that a rotation statement vouched for: it is now
        # trusted both ways (``grants``); the operator's word on its expiry is the last
        return {current.key_id: current._replace(expires_at=p.get("expires_at"))}
    row = KeyView(
        p["key_id"], p["site"], public, "peer", event.occurred_at, p.get("expires_at"), None, None
    )
    return {row.key_id: row}


def check_signer(row: KeyView | None, key_id: str, site: str, now: str) -> KeyView:
    """The row if ``key_id`` may verify what ``site`` signed at ``now``; else UntrustedKey."""
    if row is None:
        raise UntrustedKey(key_id=key_id, site=site, detail="the key is not in the trust store")
    if row.site != site:
        raise UntrustedKey(key_id=key_id, site=site, detail=f"the key is {row.site}'s")
    if row.revoked_at is not None:
        raise UntrustedKey(
            key_id=key_id, site=site, detail=f"revoked at {row.revoked_at}: {row.reason}"
        )
    if row.expires_at is not None and row.expires_at < now:
        raise UntrustedKey(key_id=key_id, site=site, detail=f"trust expired at {row.expires_at}")
    return row


# --- what a key's trust rests on, and what falls with a revoked key ----------------------------


def grants(own_events: Iterable[Event]) -> dict[str, frozenset[str | None]]:
    """key id -> what this site's trust in it rests on now: None for an operator's ``keys
    trust``, the id of the old key for each rotation statement followed to it; from
    this site's own ``key.*`` events in seq order (a revocation clears a key's grants)."""
    held: dict[str, frozenset[str | None]] = {}
    for event in own_events:
        key_id = str(event.payload.get("key_id"))
        if event.type == "key.trusted":
            given = frozenset({event.payload.get("vouched_by")})
            held[key_id] = held.get(key_id, frozenset()) | given
        elif event.type == "key.revoked":
            held.pop(key_id, None)
    return held


class Successor(NamedTuple):
    """A key that falls with a revoked one: trusted only through rotation statements."""

    key: KeyView
    vouched_by: str  # the key whose rotation statement vouched for it (revoked with the first)


def successors(
    key_id: str, rows: Mapping[str, KeyView], held: Mapping[str, frozenset[str | None]]
) -> list[Successor]:
    """The keys revoking ``key_id`` revokes with it (``bundles/FORMAT.md`` 3.2): each trusted
    key whose trust rests only on rotation statements of ``key_id``, of a key found so far or
    of a key revoked already, at least one of them of the first two; each after the key that
    vouched for it. A key also trusted by hand never falls."""
    falling, found = [key_id], []
    for voucher in falling:  # grows as keys are found: each is asked in turn
        for candidate, given in held.items():
            row = rows.get(candidate)
            if (
                voucher in given
                and candidate not in falling
                and row is not None
                and row.revoked_at is None
                and all(_vouches_not(v, falling, rows) for v in given)
            ):
                falling.append(candidate)
                found.append(Successor(row, voucher))
    return found


def _vouches_not(voucher: str | None, falling: list[str], rows: Mapping[str, KeyView]) -> bool:
    """Whether a grant holds up nothing: by a key falling now, or revoked already."""
    if voucher is None:  # by hand
        return False
    row = rows.get(voucher)
    return voucher in falling or row is None or row.revoked_at is not None
