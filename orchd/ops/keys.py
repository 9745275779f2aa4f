"""The trust store's changes: trusting, revoking and rotating keys (ops layer).

Every change is an event of this site, with the operator as actor; the trust store is their
projection (``core.trust``). Trust is local: a peer's key events are only shown. Trusting a key
trusted already (for the same site, until the same time) or revoking a revoked one records
nothing; a rotation always makes a new key, so it is never a repeat.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchd.core import dsse, ids, timefmt
from orchd.core.events import Actor, Draft, Event
from orchd.core.names import check_name
from orchd.core.policy import Policy, check_change
from orchd.core.ports import Clock, Entropy, Ledger
from orchd.core.trust import KeyView
from orchd.errors import BadInput, StateConflict

SCOPE = "orch:admin"


def created(actor: Actor, public_key: bytes) -> Draft:
    """The ``key.created`` event of this site's signing key (at init)."""
    key_id = dsse.key_id(public_key)
    return Draft(
        type="key.created",
        actor=actor,
        idempotency_key=f"key.created:{key_id}",
        payload={"key_id": key_id, "public_key": public_key.hex()},
    )


def own_key(ledger: Ledger) -> KeyView | None:
    """This site's current signing key, as its trust store records it."""
    found = [
        k
        for k in ledger.trust_keys()
        if k.role == "own" and k.site == ledger.site_id and k.revoked_at is None
    ]
    return found[-1] if found else None


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyChange:
    key: KeyView  # the key as the trust store holds it now
    changed: bool  # False: that was in effect already; nothing was recorded


def trust(
    ledger: Ledger,
    clock: Clock,
    entropy: Entropy,
    actor: Actor,
    *,
    site: str,
    public_key: bytes,
    expires: str | None,
    policy: Policy,
    reason: str,
    ticket: str | None = None,
) -> KeyChange:
    """Trust ``public_key`` for bundles of ``site`` (until ``expires``, an operator's time).

    A key trusted already for ``site`` until the same time stays as it is; one trusted for
    another site, or until another time, is refused (revoke it, then trust it anew)."""
    check_change(policy, "trust", reason, ticket)
    check_name("site id", site)
    if site == ledger.site_id:
        raise BadInput(detail="this site's own keys come from init and rotate, not from trust")
    key_id = dsse.key_id(public_key)
    payload: dict[str, object] = {"site": site, "key_id": key_id, "public_key": public_key.hex()}
    if expires is not None:
        at = timefmt.parse_operator(expires)
        if at <= clock.now_ms():
            raise BadInput(detail=f"--expires {expires} is not in the future")
        payload["expires_at"] = timefmt.format_ms(at)
    current = ledger.trust_key(key_id)
    if current is not None and current.revoked_at is None:
        if (current.site, current.expires_at) != (site, payload.get("expires_at")):
            until = f" until {current.expires_at}" if current.expires_at else ""
            raise StateConflict(
                detail=f"key {key_id} is trusted already for {current.site}{until}; to change "
                "that, revoke it and trust it again"
            )
        return KeyChange(key=current, changed=False)
    change = ids.new_id(clock.now_ms(), entropy.token(ids.ENTROPY_BYTES))
    ledger.append([Draft(
        type="key.trusted", actor=actor, payload=payload, reason=reason, ticket=ticket,
        idempotency_key=f"key.trusted:{key_id}:{change}",
    )])  # fmt: skip
    return KeyChange(key=_held(ledger, key_id), changed=True)


def revoke(
    ledger: Ledger,
    clock: Clock,
    entropy: Entropy,
    actor: Actor,
    *,
    key_id: str,
    policy: Policy,
    reason: str,
    ticket: str | None = None,
) -> KeyChange:
    """Stop trusting ``key_id``; a key revoked already stays as it is."""
    check_change(policy, "revoke", reason, ticket)
    current = ledger.trust_key(key_id)
    if current is None:
        raise StateConflict(detail=f"key {key_id} is not in the trust store (orchd keys list)")
    if current.revoked_at is not None:
        return KeyChange(key=current, changed=False)
    if current.role == "own":
        raise StateConflict(
            detail="this is the site's signing key: replace it with orchd keys rotate"
        )
    change = ids.new_id(clock.now_ms(), entropy.token(ids.ENTROPY_BYTES))
    ledger.append([Draft(
        type="key.revoked", actor=actor, payload={"key_id": key_id}, reason=reason,
        ticket=ticket, idempotency_key=f"key.revoked:{key_id}:{change}",
    )])  # fmt: skip
    return KeyChange(key=_held(ledger, key_id), changed=True)


def _held(ledger: Ledger, key_id: str) -> KeyView:
    held = ledger.trust_key(key_id)
    if held is None:  # the append succeeded, so the projection must hold it
        raise StateConflict(detail=f"key {key_id} is not in the trust store after the change")
    return held


def replaced_after_loss(ledger: Ledger, actor: Actor, public_key: bytes) -> list[Draft]:
    """After ``init --restore``: the lost signing key revoked (its private half went with the
    disk, or may be in other hands) and the new one recorded. Peers must trust the new key by
    hand; nothing vouches for it."""
    drafts = [
        Draft(
            type="key.revoked",
            actor=actor,
            payload={"key_id": old.key_id},
            reason="lost with the site's disk; replaced at restore",
            idempotency_key=f"key.revoked:{old.key_id}:restore",
        )
        for old in ledger.trust_keys()
        if old.role == "own" and old.site == ledger.site_id and old.revoked_at is None
    ]
    drafts.append(created(actor, public_key))
    return drafts


@dataclass(frozen=True, slots=True, kw_only=True)
class Rotation:
    old_key_id: str
    new_public_key: bytes
    statement: str  # base64 DSSE envelope signed by the old key


def rotated(actor: Actor, rotation: Rotation, policy: Policy, reason: str,
            ticket: str | None = None) -> Draft:  # fmt: skip
    """The ``key.rotated`` event; the caller checks ``check_change`` before it makes the new key
    (this checks again)."""
    check_change(policy, "rotate", reason, ticket)
    new_id = dsse.key_id(rotation.new_public_key)
    return Draft(
        type="key.rotated",
        actor=actor,
        idempotency_key=f"key.rotated:{new_id}",
        reason=reason,
        ticket=ticket,
        payload={
            "old_key_id": rotation.old_key_id,
            "new_key_id": new_id,
            "public_key": rotation.new_public_key.hex(),
            "statement": rotation.statement,
        },
    )


def peer_key_events(ledger: Ledger) -> list[Event]:
    return ledger.key_events_of_others()
