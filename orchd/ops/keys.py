"""The trust store's changes: trusting, revoking and rotating keys (ops layer).

Every change is an event of this site, with the operator as actor; the trust store is their
projection (``core.trust``). Trust is local: a peer's key events are only shown.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchd.core import dsse, ids, timefmt
from orchd.core.events import Actor, Draft, Event
from orchd.core.names import check_name, check_text
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


def trust(
    ledger: Ledger,
    clock: Clock,
    entropy: Entropy,
    actor: Actor,
    *,
    site: str,
    public_key: bytes,
    expires: str | None,
    reason: str | None,
) -> KeyView:
    """Trust ``public_key`` for bundles of ``site`` (until ``expires``, an operator's time)."""
    check_name("site id", site)
    if reason is not None:
        check_text("reason", reason)
    if site == ledger.site_id:
        raise BadInput(detail="this site's own keys come from init and rotate, not from trust")
    key_id = dsse.key_id(public_key)
    current = ledger.trust_key(key_id)
    if current is not None and current.revoked_at is None:
        raise StateConflict(detail=f"key {key_id} is trusted already (for {current.site})")
    payload: dict[str, object] = {"site": site, "key_id": key_id, "public_key": public_key.hex()}
    if expires is not None:
        at = timefmt.parse_operator(expires)
        if at <= clock.now_ms():
            raise BadInput(detail=f"--expires {expires} is not in the future")
        payload["expires_at"] = timefmt.format_ms(at)
    change = ids.new_id(clock.now_ms(), entropy.token(ids.ENTROPY_BYTES))
    ledger.append(
        [
            Draft(
                type="key.trusted",
                actor=actor,
                payload=payload,
                reason=reason,
                idempotency_key=f"key.trusted:{key_id}:{change}",
            )
        ]
    )
    trusted = ledger.trust_key(key_id)
    assert trusted is not None  # the append succeeded
    return trusted


def revoke(
    ledger: Ledger, clock: Clock, entropy: Entropy, actor: Actor, *, key_id: str, reason: str
) -> KeyView:
    check_text("reason", reason)
    current = ledger.trust_key(key_id)
    if current is None:
        raise StateConflict(detail=f"key {key_id} is not in the trust store (orchd keys list)")
    if current.revoked_at is not None:
        raise StateConflict(detail=f"key {key_id} was revoked already at {current.revoked_at}")
    if current.role == "own":
        raise StateConflict(
            detail="this is the site's signing key: replace it with orchd keys rotate"
        )
    change = ids.new_id(clock.now_ms(), entropy.token(ids.ENTROPY_BYTES))
    ledger.append(
        [
            Draft(
                type="key.revoked",
                actor=actor,
                payload={"key_id": key_id},
                reason=reason,
                idempotency_key=f"key.revoked:{key_id}:{change}",
            )
        ]
    )
    revoked = ledger.trust_key(key_id)
    assert revoked is not None
    return revoked


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


def rotated(actor: Actor, rotation: Rotation, reason: str) -> Draft:
    check_text("reason", reason)
    new_id = dsse.key_id(rotation.new_public_key)
    return Draft(
        type="key.rotated",
        actor=actor,
        idempotency_key=f"key.rotated:{new_id}",
        reason=reason,
        payload={
            "old_key_id": rotation.old_key_id,
            "new_key_id": new_id,
            "public_key": rotation.new_public_key.hex(),
            "statement": rotation.statement,
        },
    )


def peer_key_events(ledger: Ledger) -> list[Event]:
    return ledger.key_events_of_others()
