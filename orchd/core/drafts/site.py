"""Drafts of the site's own life: init and restores, operators' changes of sources, quotas
and keys, retention, bundles (core layer)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchd.core import dsse
from orchd.core.events import Actor, Draft

from .common import keyed, present

# --- the site --------------------------------------------------------------------------------


def site_initialized(actor: Actor, *, site_id: str, orchd_version: str) -> Draft:
    """The first event of a site's chain (one per site, so its key is its type)."""
    payload = {"site_id": site_id, "orchd_version": orchd_version}
    return Draft(
        type="site.initialized", actor=actor, idempotency_key="site.initialized", payload=payload
    )


def site_rebuilt(actor: Actor, *, source: str, own_seq: int, bundles: int, ticket: str) -> Draft:
    """``site.restored`` by ``init --restore``: rebuilt from bundles after a loss."""
    return Draft(
        type="site.restored",
        actor=actor,
        idempotency_key=keyed("site.restored", own_seq),
        payload={"from": source[-200:], "own_seq": own_seq, "bundles": bundles},
        reason="rebuilt from bundles after a loss",
        ticket=ticket,
    )


def site_restored_from_backup(
    actor: Actor,
    *,
    source: str,
    own_seq: int,
    events: int,
    at_ms: int,
    reason: str,
    ticket: str | None,
) -> Draft:
    """``site.restored`` by ``ledger restore``: a backup of this site put back."""
    return Draft(
        type="site.restored",
        actor=actor,
        idempotency_key=keyed("site.restored", "backup", at_ms),
        payload={"from": source[-200:], "own_seq": own_seq, "events": events},
        reason=reason,
        ticket=ticket,
    )


# --- operators' changes ----------------------------------------------------------------------


def source_paused(
    actor: Actor, *, source: str, change: str, reason: str, ticket: str | None
) -> Draft:
    return _source_change("source.paused", actor, source, change, reason, ticket)


def source_resumed(
    actor: Actor, *, source: str, change: str, reason: str, ticket: str | None
) -> Draft:
    return _source_change("source.resumed", actor, source, change, reason, ticket)


def _source_change(
    kind: str, actor: Actor, source: str, change: str, reason: str, ticket: str | None
) -> Draft:
    return Draft(
        type=kind,
        actor=actor,
        idempotency_key=keyed(kind, source, change),
        payload={"source": source},
        reason=reason,
        ticket=ticket,
    )


def quota_set(
    actor: Actor, *, override: Mapping[str, Any], change: str, reason: str, ticket: str | None
) -> Draft:
    """An override of a quota: its kind, name and site, and the values set."""
    return _quota("quota.set", actor, override, change, reason, ticket)


def quota_reset(
    actor: Actor, *, override: Mapping[str, Any], change: str, reason: str, ticket: str | None
) -> Draft:
    """An override removed: its kind, name and site."""
    return _quota("quota.reset", actor, override, change, reason, ticket)


def _quota(
    kind: str,
    actor: Actor,
    payload: Mapping[str, Any],
    change: str,
    reason: str,
    ticket: str | None,
) -> Draft:
    return Draft(
        type=kind,
        actor=actor,
        idempotency_key=keyed(kind, payload["kind"], payload["name"], change),
        payload=payload,
        reason=reason,
        ticket=ticket,
    )


def ledger_pruned(
    actor: Actor, *, upto_digest: str, days: int, events: int, checkpoints: str
) -> Draft:
    """A prune, once per cut (``upto_digest`` names the cut)."""
    return Draft(
        type="ledger.pruned",
        actor=actor,
        idempotency_key=keyed("ledger.pruned", upto_digest),
        payload={"days": days, "events": events, "checkpoints": checkpoints},
        reason=f"retention: events older than {days} days",
    )


# --- keys and bundles ------------------------------------------------------------------------


def key_created(actor: Actor, *, public_key: bytes) -> Draft:
    """This site's signing key, made at init (or at a restore after a loss)."""
    key_id = dsse.key_id(public_key)
    return Draft(
        type="key.created",
        actor=actor,
        idempotency_key=keyed("key.created", key_id),
        payload={"key_id": key_id, "public_key": public_key.hex()},
    )


def key_trusted(
    actor: Actor,
    *,
    site: str,
    key_id: str,
    public_key: str,
    change: str,
    expires_at: str | None = None,
    vouched_by: str | None = None,
    reason: str,
    ticket: str | None = None,
) -> Draft:
    """Another site's key trusted; ``change`` is an operator's change id, or ``rotation`` when
    a rotation statement signed by the trusted key ``vouched_by`` vouched for it."""
    return Draft(
        type="key.trusted",
        actor=actor,
        idempotency_key=keyed("key.trusted", key_id, change),
        payload=present(
            site=site,
            key_id=key_id,
            public_key=public_key,
            expires_at=expires_at,
            vouched_by=vouched_by,
        ),
        reason=reason,
        ticket=ticket,
    )


def key_revoked(
    actor: Actor,
    *,
    key_id: str,
    change: str,
    reason: str,
    ticket: str | None = None,
    successors: str | None = None,
) -> Draft:
    """A key revoked; ``change`` is an operator's change id, or ``restore`` (lost with a site).
    ``successors`` is ``kept`` when the operator kept the keys it vouched for (FORMAT.md 3.2)."""
    return Draft(
        type="key.revoked",
        actor=actor,
        idempotency_key=keyed("key.revoked", key_id, change),
        payload=present(key_id=key_id, successors=successors),
        reason=reason,
        ticket=ticket,
    )


def key_rotated(
    actor: Actor,
    *,
    old_key_id: str,
    new_public_key: bytes,
    statement: Any,
    reason: str,
    ticket: str | None,
) -> Draft:
    """This site's signing key replaced; ``statement`` is the old key's signed word for it."""
    new_id = dsse.key_id(new_public_key)
    return Draft(
        type="key.rotated",
        actor=actor,
        idempotency_key=keyed("key.rotated", new_id),
        payload={
            "old_key_id": old_key_id,
            "new_key_id": new_id,
            "public_key": new_public_key.hex(),
            "statement": statement,
        },
        reason=reason,
        ticket=ticket,
    )


def bundle_exported(
    actor: Actor,
    *,
    bundle_id: str,
    recipient: str,
    kind: str,
    ranges: Mapping[str, list[int]],
    sha256: str,
    size: int,
) -> Draft:
    """A bundle written: what it holds, its file's digest and size."""
    return Draft(
        type="bundle.exported",
        actor=actor,
        idempotency_key=keyed("bundle.exported", bundle_id),
        payload={
            "bundle_id": bundle_id,
            "recipient": recipient,
            "kind": kind,
            "ranges": dict(ranges),
            "sha256": sha256,
            "size": size,
        },
    )


def bundle_imported(
    actor: Actor,
    *,
    bundle_id: str,
    exporter: str,
    ranges: Any,
    events: int,
    watermarks: Mapping[str, list[Any]],
    reason: str | None,
    ticket: str | None,
    relay_only: Mapping[str, int] | None = None,
) -> Draft:
    """A bundle merged: the ranges applied and each origin's head after it; ``relay_only``:
    per origin accepted on the relay's word alone, the highest seq so accepted."""
    return Draft(
        type="bundle.imported",
        actor=actor,
        idempotency_key=keyed("bundle.imported", bundle_id),
        payload={
            "bundle_id": bundle_id,
            "exporter": exporter,
            "ranges": ranges,
            "events": events,
            "watermarks": dict(watermarks),
            **({"relay_only": dict(relay_only)} if relay_only else {}),
        },
        reason=reason,
        ticket=ticket,
    )


def bundle_forked(
    actor: Actor, *, bundle_id: str, origin: str, seq: int, held_hash: str, signed_hash: str
) -> Draft:
    """A fork proven by ``origin``'s own signature: it signed ``signed_hash`` for ``seq``, where
    this site holds ``held_hash`` (recorded after the bundle's refusal; an alarm)."""
    return Draft(
        type="bundle.forked",
        actor=actor,
        idempotency_key=keyed("bundle.forked", bundle_id, origin, seq),
        payload={
            "bundle_id": bundle_id,
            "origin": origin,
            "seq": seq,
            "held_hash": held_hash,
            "signed_hash": signed_hash,
        },
        reason=f"{origin} signed two histories: seq {seq} has another hash here",
    )
