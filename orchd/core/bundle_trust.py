"""Whether a bundle is accepted: its signed head checked over bytes, in order (core layer).

The shape of python-tuf's trusted metadata set: ``check`` takes the bytes of ``manifest.json``
and ``manifest.sig``, the trust store as plain values, an injected signature check and the time,
and returns the accepted head and signer or raises; no file, no clock, no key store inside.

Order of checks (``bundles/FORMAT.md``, "Import", steps 2 to 4), each refusal raised before the
next check runs:
1. the envelope is a strict DSSE envelope of a manifest and its payload is ``manifest.json``;
   the manifest parses strictly;
2. a signature verifies with a key the trust store holds for the exporter, not revoked and not
   past its expiry, or with a new key that such a key vouched for in the manifest's rotation
   statement (FORMAT.md 3.2); a statement naming a revoked key, as old or as new key, trusts
   nothing; when every signature fails, the first signature's refusal is raised;
3. the bundle is addressed to this site, not exported by it (unless restoring), not created
   beyond the allowed skew and not expired (unless allowed).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from orchd.core import bundle, canonical, dsse, timefmt
from orchd.core.bundle import Manifest
from orchd.core.trust import KeyView, check_signer
from orchd.errors import OrchdError, SignatureInvalid, UntrustedKey

Verify = Callable[[bytes, bytes, bytes], bool]
"""``verify(public_key, message, signature)``: whether an Ed25519 signature holds."""

ROTATION_KEYS = frozenset({"site", "old_key_id", "new_key_id", "public_key"})
_NEVER_AGAIN = "a rotation statement never makes a revoked key trusted again (FORMAT.md 3.2)"
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Head:
    """The signed head of a bundle: its manifest and the envelope signing it."""

    manifest: Manifest
    manifest_bytes: bytes
    envelope: dsse.Envelope


@dataclass(frozen=True, slots=True, kw_only=True)
class Signer:
    key: KeyView | None  # the trusted key, or None when it is trusted through a rotation
    key_id: str
    followed_rotation: dict[str, str] | None = None  # the new key a trusted old key vouched for


@dataclass(frozen=True, slots=True, kw_only=True)
class Accepted:
    head: Head
    signer: Signer


def parse_head(manifest_bytes: bytes, envelope_bytes: bytes) -> Head:
    """The head from the bytes of ``manifest.json`` and ``manifest.sig`` (form only, no trust)."""
    envelope = dsse.decode(envelope_bytes, payload_type=dsse.MANIFEST_TYPE)
    if envelope.payload != manifest_bytes:
        raise SignatureInvalid(detail="the signed payload is not the manifest")
    return Head(
        manifest=bundle.parse(manifest_bytes), manifest_bytes=manifest_bytes, envelope=envelope
    )


def check(
    manifest_bytes: bytes,
    envelope_bytes: bytes,
    *,
    trusted: Mapping[str, KeyView],
    verify: Verify,
    now_ms: int,
    local: str,
    skew_ms: int = bundle.DEFAULT_SKEW_MS,
    allow_expired: bool = False,
    restoring: bool = False,
) -> Accepted:
    """The head and signer of a bundle this site (``local``) accepts at ``now_ms``, the checks
    in the order of the module's header; raises the first refusal."""
    head = parse_head(manifest_bytes, envelope_bytes)
    signer = check_signature(head, trusted, verify, timefmt.format_ms(now_ms))
    bundle.check_envelope(
        head.manifest,
        local=local,
        now_ms=now_ms,
        skew_ms=skew_ms,
        allow_expired=allow_expired,
        restoring=restoring,
    )
    return Accepted(head=head, signer=signer)


def check_signature(head: Head, trusted: Mapping[str, KeyView], verify: Verify, now: str) -> Signer:
    """The first signature on the manifest by a key ``trusted`` holds for the exporter at
    ``now`` (or by a new key that such a key vouched for in the manifest's rotation statement);
    when none holds, the refusal of the first signature."""
    message = dsse.pae(dsse.MANIFEST_TYPE, head.manifest_bytes)
    errors: list[OrchdError] = []
    for signature in head.envelope.signatures:
        try:
            return _signer(head.manifest, signature, message, trusted, verify, now)
        except (UntrustedKey, SignatureInvalid) as exc:
            errors.append(exc)
    raise errors[0]


def _signer(
    manifest: Manifest,
    signature: dsse.Signature,
    message: bytes,
    trusted: Mapping[str, KeyView],
    verify: Verify,
    now: str,
) -> Signer:
    row = trusted.get(signature.key_id)
    rotation = None
    if row is not None and row.revoked_at is not None and manifest.rotation is not None:
        raise UntrustedKey(
            key_id=signature.key_id,
            site=manifest.exporter,
            detail=f"revoked at {row.revoked_at}: {row.reason}; {_NEVER_AGAIN}",
        )
    if row is None and manifest.rotation is not None:
        rotation = follow_rotation(manifest, signature.key_id, trusted, verify, now)
        public = bytes.fromhex(rotation["public_key"])
    else:
        row = check_signer(row, signature.key_id, manifest.exporter, now)
        public = bytes.fromhex(row.public_key)
    if not verify(public, message, signature.sig):
        raise SignatureInvalid(
            detail=f"the signature by key {signature.key_id} does not match the manifest"
        )
    return Signer(key=row, key_id=signature.key_id, followed_rotation=rotation)


def follow_rotation(
    manifest: Manifest, key_id: str, trusted: Mapping[str, KeyView], verify: Verify, now: str
) -> dict[str, str]:
    """The statement of the manifest's rotation (site, old and new key id, the new public key)
    when it names the exporter and ``key_id`` and a key trusted for the exporter signed it."""
    if manifest.rotation is None:
        raise UntrustedKey(
            key_id=key_id, site=manifest.exporter, detail="the key is not in the trust store"
        )
    raw = dsse.decode_base64(manifest.rotation, "the rotation statement")
    envelope = dsse.decode(raw, payload_type=dsse.ROTATION_TYPE)
    statement = _rotation_body(envelope.payload, key_id, manifest.exporter)
    old_id = statement["old_key_id"]
    old = trusted.get(old_id)
    if old is not None and old.revoked_at is not None:
        raise UntrustedKey(
            key_id=key_id,
            site=manifest.exporter,
            detail=f"the rotation statement's old key {old_id} was revoked at {old.revoked_at}: "
            f"{old.reason}; a revoked key vouches for nothing",
        )
    old = check_signer(old, old_id, manifest.exporter, now)
    message = dsse.pae(dsse.ROTATION_TYPE, envelope.payload)
    if not any(
        s.key_id == old.key_id and verify(bytes.fromhex(old.public_key), message, s.sig)
        for s in envelope.signatures
    ):
        raise SignatureInvalid(detail="the rotation statement is not signed by the old key")
    return statement


def _rotation_body(payload: bytes, key_id: str, exporter: str) -> dict[str, str]:
    try:
        statement = canonical.decode(payload)
    except OrchdError:
        raise SignatureInvalid(detail="the rotation statement is not canonical JSON") from None
    if not isinstance(statement, dict) or set(statement) != ROTATION_KEYS:
        raise SignatureInvalid(
            detail="the rotation statement must hold " + ", ".join(sorted(ROTATION_KEYS))
        )
    if not all(
        isinstance(v, str) and _HEX64.fullmatch(v) for k, v in statement.items() if k != "site"
    ):
        raise UntrustedKey(
            key_id=key_id,
            site=exporter,
            detail="the rotation statement's keys are not 64 hex digits",
        )
    if (
        statement["site"] != exporter
        or statement["new_key_id"] != key_id
        or dsse.key_id(bytes.fromhex(statement["public_key"])) != key_id
    ):
        raise UntrustedKey(
            key_id=key_id, site=exporter, detail="the rotation statement does not name this key"
        )
    return {k: str(v) for k, v in statement.items()}


def reached(signer: Signer, manifest: Manifest) -> dict[str, KeyView]:
    """The exporter's new key, when the manifest's rotation statement was followed to it: a key
    reached for the exporter (FORMAT.md 3.1), which verifies its head statement as a trusted
    key does."""
    rotation = signer.followed_rotation
    if rotation is None:
        return {}
    row = KeyView(
        key_id=rotation["new_key_id"],
        site=manifest.exporter,
        public_key=rotation["public_key"],
        role="peer",
        added_at=manifest.created_at,
        expires_at=None,
        revoked_at=None,
        reason=None,
    )
    return {row.key_id: row}


def rotation_payload(site: str, old_key_id: str, new_public_key: bytes) -> bytes:
    """What an old key signs to vouch that ``site``'s signing key is now ``new_public_key``."""
    return canonical.dump(
        {
            "site": site,
            "old_key_id": old_key_id,
            "new_key_id": dsse.key_id(new_public_key),
            "public_key": new_public_key.hex(),
        }
    )


def signed_by(head: Head, public_key: bytes, verify: Verify) -> bool:
    """Whether ``public_key`` signed the manifest (a key the operator vouches for, no store)."""
    key_id = dsse.key_id(public_key)
    message = dsse.pae(dsse.MANIFEST_TYPE, head.manifest_bytes)
    return any(
        s.key_id == key_id and verify(public_key, message, s.sig) for s in head.envelope.signatures
    )
