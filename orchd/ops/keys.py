"""The trust store's changes: trusting, revoking and rotating keys (ops layer).

Every change is an event of this site, with the operator as actor; the trust store is their
projection (``core.trust``). Trust is local: a peer's key events are only shown. Trusting a key
trusted already by hand (for the same site, until the same time) or revoking a revoked one
records nothing; a rotation always makes a new key, so it is never a repeat. Revoking a key
revokes the keys trusted only through its rotation statements (``bundles/FORMAT.md`` 3.2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from orchd.core import drafts, dsse, ids, timefmt
from orchd.core.events import Actor, Draft, Event
from orchd.core.names import check_name
from orchd.core.policy import Policy, check_change
from orchd.core.ports import Clock, Entropy, TrustLog, TrustQueries
from orchd.core.trust import KEPT, KeyView, Successor, grants, successors
from orchd.errors import BadInput, StateConflict

from . import lookup

SCOPE = "orch:admin"


def own_key(ledger: TrustQueries) -> KeyView | None:
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
    successors: tuple[Successor, ...] = ()  # revoked with the key (or kept: ``kept``)
    kept: bool = False  # a revocation that kept the keys the revoked key vouched for


def trust(
    ledger: TrustLog,
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

    A key trusted already for ``site`` until the same time stays as it is, unless only rotation
    statements vouched for it: then the operator's trust is recorded too, and revoking the key
    that vouched no longer revokes it; one trusted for another site, or until another time, is
    refused (revoke it, then trust it anew)."""
    check_change(policy, "trust", reason, ticket)
    check_name("site id", site)
    if site == ledger.site_id:
        raise BadInput(detail="this site's own keys come from init and rotate, not from trust")
    key_id = dsse.key_id(public_key)
    expires_at = None
    if expires is not None:
        at = timefmt.parse_given(expires, upper=True)
        if at <= clock.now_ms():
            raise BadInput(detail=f"--expires {expires} is not in the future")
        expires_at = timefmt.format_ms(at)
    current = ledger.trust_key(key_id)
    if current is not None and current.revoked_at is None:
        if (current.site, current.expires_at) != (site, expires_at):
            until = f" until {current.expires_at}" if current.expires_at else ""
            raise StateConflict(
                detail=f"key {key_id} is trusted already for {current.site}{until}; to change "
                "that, revoke it and trust it again"
            )
        if None in grants(ledger.own_key_events()).get(key_id, {None}):
            return KeyChange(key=current, changed=False)
        # trusted only through rotation statements: now by hand too, so it outlives them
    draft = drafts.key_trusted(
        actor,
        site=site,
        key_id=key_id,
        public_key=public_key.hex(),
        change=ids.new_id(clock.now_ms(), entropy.token(ids.ENTROPY_BYTES)),
        expires_at=expires_at,
        reason=reason,
        ticket=ticket,
    )
    ledger.append([draft])
    return KeyChange(key=_held(ledger, key_id), changed=True)


def revoke(
    ledger: TrustLog,
    clock: Clock,
    entropy: Entropy,
    actor: Actor,
    *,
    key_id: str,
    policy: Policy,
    reason: str,
    ticket: str | None = None,
    keep_successors: bool = False,
) -> KeyChange:
    """Stop trusting ``key_id``, and with it, in the same transaction, every key trusted only
    through rotation statements it signed, transitively (``core.trust.successors``), unless
    ``keep_successors`` (recorded on the revocation as ``successors: kept``). A key revoked
    already stays as it is."""
    check_change(policy, "revoke", reason, ticket)
    named = lookup.resolve_key([row.key_id for row in ledger.trust_keys()], key_id)
    current = None if named is None else ledger.trust_key(named)
    if current is None:
        raise StateConflict(detail=f"key {key_id} is not in the trust store (orchd keys list)")
    key_id = current.key_id  # in full, however it was typed
    if current.revoked_at is not None:
        return KeyChange(key=current, changed=False)
    if current.role == "own":
        raise StateConflict(
            detail="this is the site's signing key: replace it with orchd keys rotate"
        )
    rows = {row.key_id: row for row in ledger.trust_keys()}
    found = successors(key_id, rows, grants(ledger.own_key_events()))
    change = ids.new_id(clock.now_ms(), entropy.token(ids.ENTROPY_BYTES))
    kept = KEPT if keep_successors else None
    records = [
        drafts.key_revoked(
            actor, key_id=key_id, change=change, reason=reason, ticket=ticket, successors=kept
        )
    ]
    if not keep_successors:
        records += [_revoked_with(actor, key_id, s, change, ticket) for s in found]
    ledger.append(records)
    if not keep_successors:
        found = [s._replace(key=_held(ledger, s.key.key_id)) for s in found]
    return KeyChange(
        key=_held(ledger, key_id), changed=True, successors=tuple(found), kept=keep_successors
    )


def _revoked_with(
    actor: Actor, key_id: str, successor: Successor, change: str, ticket: str | None
) -> Draft:
    """The revocation of a key that falls with ``key_id`` (FORMAT.md 3.2)."""
    return drafts.key_revoked(
        actor,
        key_id=successor.key.key_id,
        change=change,
        reason=f"revoked with key {key_id[:16]}: trusted only through a rotation statement "
        f"key {successor.vouched_by[:16]} signed",
        ticket=ticket,
    )


def _held(ledger: TrustQueries, key_id: str) -> KeyView:
    held = ledger.trust_key(key_id)
    if held is None:  # the append succeeded, so the projection must hold it
        raise StateConflict(detail=f"key {key_id} is not in the trust store after the change")
    return held


def replaced_after_loss(ledger: TrustQueries, actor: Actor, public_key: bytes) -> list[Draft]:
    """After ``init --restore``: the lost signing key revoked (its private half went with the
    disk, or may be in other hands) and the new one recorded. Peers must trust the new key by
    hand; nothing vouches for it."""
    revoked = [
        drafts.key_revoked(
            actor,
            key_id=old.key_id,
            change="restore",
            reason="lost with the site's disk; replaced at restore",
        )
        for old in ledger.trust_keys()
        if old.role == "own" and old.site == ledger.site_id and old.revoked_at is None
    ]
    return [*revoked, drafts.key_created(actor, public_key=public_key)]


@dataclass(frozen=True, slots=True, kw_only=True)
class Rotation:
    old_key_id: str
    new_public_key: bytes
    statement: str  # base64 DSSE envelope signed by the old key


def rotated(
    actor: Actor, rotation: Rotation, policy: Policy, reason: str, ticket: str | None = None
) -> Draft:
    """The ``key.rotated`` event; the caller checks ``check_change`` before it makes the new key
    (this checks again)."""
    check_change(policy, "rotate", reason, ticket)
    return drafts.key_rotated(
        actor,
        old_key_id=rotation.old_key_id,
        new_public_key=rotation.new_public_key,
        statement=rotation.statement,
        reason=reason,
        ticket=ticket,
    )


def peer_key_events(ledger: TrustQueries) -> list[Event]:
    return ledger.key_events_of_others()


# --- the signing key's files and the rotation protocol ---------------------------------------


class SigningKey(Protocol):
    """A private signing key, as far as the protocol below needs to know it."""

    @property
    def key_id(self) -> str: ...

    @property
    def public_key(self) -> bytes: ...

    def sign(self, data: bytes) -> bytes: ...


K = TypeVar("K", bound=SigningKey)


class KeyFiles(Protocol[K]):
    """The site's signing key file and the one a rotation writes beside it (``site.key.new``);
    the CLI's composition root binds it to ``adapters.keys``."""

    @property
    def path(self) -> Path: ...

    def exists(self) -> bool:
        """Whether a key file is there (a broken link counts)."""
        ...

    def current(self) -> K:
        """The key in the key file (refused if unsafe)."""
        ...

    def write(self, key: K) -> None:
        """Write ``key`` to a new key file; refuses to replace one."""
        ...

    def remove(self) -> None: ...

    def generate(self) -> K: ...

    def pending(self) -> K | None:
        """The key a rotation wrote aside and has not yet put in place, if any."""
        ...

    def stage(self, key: K) -> None:
        """Write ``key`` aside (replacing a pending key a failed rotation left)."""
        ...

    def promote(self) -> None:
        """Retire the current key (to ``keys/retired/``) and put the pending one in its place."""
        ...


def site_key(ledger: TrustQueries, files: KeyFiles[K]) -> K:
    """This site's signing key, finishing a rotation a crash interrupted: a pending key that
    the ledger records as the site's own is put in place first."""
    own = own_key(ledger)
    if own is not None:
        candidate = files.pending()
        if candidate is not None and candidate.key_id == own.key_id:
            files.promote()
    key = files.current()
    if own is None or key.key_id != own.key_id:
        raise StateConflict(
            detail=f"the key file {files.path} is not this site's signing key in the ledger "
            f"({own.key_id if own else 'none recorded'})"
        )
    return key


def rotate(
    ledger: TrustLog,
    files: KeyFiles[K],
    vouch: Callable[[str, K, bytes], str],
    actor: Actor,
    *,
    policy: Policy,
    reason: str,
    ticket: str | None = None,
) -> tuple[K, K]:
    """Replace the signing key: (old, new).

    The order keeps a crash anywhere recoverable: the new key is written aside, the old one
    vouches for it (``vouch(site, old, new_public_key)``, the rotation statement), the
    ``key.rotated`` event is recorded, and only then is the new key put in place (``site_key``
    finishes that step after a crash)."""
    check_change(policy, "rotate", reason, ticket)  # before a key file is written
    old = site_key(ledger, files)
    new = files.generate()
    files.stage(new)
    rotation = Rotation(
        old_key_id=old.key_id,
        new_public_key=new.public_key,
        statement=vouch(ledger.site_id, old, new.public_key),
    )
    ledger.append([rotated(actor, rotation, policy, reason, ticket)])
    site_key(ledger, files)  # moves the new key into place, the old one to keys/retired/
    return old, new


class Signer(Protocol):
    @property
    def key_id(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...


def checkpoint_signer(key: Signer) -> Callable[[str, bytes], bytes]:
    """What signs a prune's or a join's checkpoint statements: (payload type, payload) -> the
    DSSE envelope, by ``key``."""

    def sign(payload_type: str, payload: bytes) -> bytes:
        signature = dsse.Signature(key_id=key.key_id, sig=key.sign(dsse.pae(payload_type, payload)))
        envelope = dsse.Envelope(
            payload_type=payload_type, payload=payload, signatures=(signature,)
        )
        return envelope.encode()

    return sign
