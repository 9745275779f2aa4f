"""The bundle trust decision over bytes (``core.bundle_trust.check``): every refusal is one call.

A fake signature check stands in for Ed25519 (a "signature" is the sha512 of key and message),
so no key file and no crypto library is involved; the trust store is a plain dict of rows.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from orchd.core import bundle, bundle_trust, canonical, dsse
from orchd.core.bundle import Manifest, Member, Range
from orchd.core.bundle_trust import Signer
from orchd.core.events import ZERO_HASH
from orchd.core.trust import KeyView
from orchd.errors import BundleMalformed, BundleRefused, SignatureInvalid, UntrustedKey

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00.000Z
NOW_TEXT = "2026-01-01T00:00:00.000Z"
OLD, NEW, OTHER = bytes([1]) * 32, bytes([2]) * 32, bytes([3]) * 32  # stand-in public keys


def fake_sign(public: bytes, message: bytes) -> bytes:
    return hashlib.sha512(public + message).digest()


def fake_verify(public: bytes, message: bytes, sig: bytes) -> bool:
    return sig == fake_sign(public, message)


def row(public: bytes, site: str = "hq", **changes: Any) -> KeyView:
    view = KeyView(dsse.key_id(public), site, public.hex(), "peer", NOW_TEXT, None, None, None)
    return view._replace(**changes)


def store(*rows: KeyView) -> dict[str, KeyView]:
    return {r.key_id: r for r in rows}


def manifest(
    *,
    exporter: str = "hq",
    recipient: str = "enclave",
    created: str = NOW_TEXT,
    expires: str = "2026-02-01T00:00:00.000Z",
    rotation: str | None = None,
) -> Manifest:
    r = Range(
        origin=exporter,
        from_seq=1,
        to_seq=3,
        prev_hash=ZERO_HASH,
        last_hash="3" * 64,
        member=bundle.member_name(exporter),
    )
    return Manifest(
        format=bundle.FORMAT_1,
        bundle_id=bundle.bundle_id(exporter, recipient, created, [r]),
        exporter=exporter,
        recipient=recipient,
        created_at=created,
        expires_at=expires,
        kind="full",
        ranges=(r,),
        previous="",
        members=(Member(name=r.member, sha256="0" * 64, size=10, raw_size=100, records=3),),
        rotation=rotation,
    )


def envelope(payload_type: str, payload: bytes, *signers: bytes, sig: bytes | None = None) -> bytes:
    message = dsse.pae(payload_type, payload)
    return dsse.Envelope(
        payload_type=payload_type,
        payload=payload,
        signatures=tuple(
            dsse.Signature(key_id=dsse.key_id(p), sig=sig or fake_sign(p, message)) for p in signers
        ),
    ).encode()


def signed(made: Manifest, *signers: bytes) -> tuple[bytes, bytes]:
    data = made.encode()
    return data, envelope(dsse.MANIFEST_TYPE, data, *signers)


def rotation(
    change: Callable[[dict[str, Any]], object] = lambda v: v, signer: bytes = OLD, raw: bool = False
) -> str:
    """A rotation statement from OLD to NEW for hq, ``change`` applied to its payload."""
    body = {
        "site": "hq",
        "old_key_id": dsse.key_id(OLD),
        "new_key_id": dsse.key_id(NEW),
        "public_key": NEW.hex(),
    }
    payload = canonical.dump(change(body)) if not raw else b'{"site": "hq"}'
    return base64.b64encode(envelope(dsse.ROTATION_TYPE, payload, signer)).decode()


def check(
    data: tuple[bytes, bytes], trusted: Mapping[str, KeyView], **options: Any
) -> bundle_trust.Accepted:
    return bundle_trust.check(
        *data, trusted=trusted, verify=fake_verify, now_ms=NOW, local="enclave", **options
    )


# --- accepted ---------------------------------------------------------------------------------


def test_a_bundle_signed_by_a_trusted_key_is_accepted() -> None:
    made = manifest()
    accepted = check(signed(made, OLD), store(row(OLD)))
    assert accepted.head.manifest == made
    assert accepted.head.manifest_bytes == made.encode()
    assert accepted.signer == Signer(key=row(OLD), key_id=dsse.key_id(OLD))


def test_the_first_signature_that_holds_is_the_signer() -> None:
    accepted = check(signed(manifest(), OTHER, OLD), store(row(OLD)))
    assert accepted.signer.key_id == dsse.key_id(OLD)


def test_a_new_key_is_accepted_through_a_rotation_signed_by_a_trusted_key() -> None:
    accepted = check(signed(manifest(rotation=rotation()), NEW), store(row(OLD)))
    assert accepted.signer.key is None
    assert accepted.signer.key_id == dsse.key_id(NEW)
    assert accepted.signer.followed_rotation == {
        "site": "hq",
        "old_key_id": dsse.key_id(OLD),
        "new_key_id": dsse.key_id(NEW),
        "public_key": NEW.hex(),
    }


def test_a_trusted_key_is_used_as_such_even_when_a_rotation_is_carried() -> None:
    accepted = check(signed(manifest(rotation=rotation()), NEW), store(row(NEW)))
    assert accepted.signer.followed_rotation is None
    assert accepted.signer.key == row(NEW)


def test_own_exports_are_accepted_when_restoring_and_expired_ones_when_allowed() -> None:
    own = manifest(exporter="enclave", recipient="*")
    assert check(signed(own, OLD), store(row(OLD, "enclave")), restoring=True)
    late = manifest(expires="2026-01-01T00:00:00.000Z", created="2025-12-01T00:00:00.000Z")
    assert check(signed(late, OLD), store(row(OLD)), allow_expired=True)


def test_a_trust_expiry_still_ahead_is_accepted() -> None:
    assert check(signed(manifest(), OLD), store(row(OLD, expires_at="2026-01-02T00:00:00.000Z")))


# --- refused: the head's form (step 2) --------------------------------------------------------


def test_an_envelope_that_is_not_canonical_json_is_refused() -> None:
    data, sig = signed(manifest(), OLD)
    with pytest.raises(SignatureInvalid, match="not canonical JSON"):
        check((data, sig.replace(b",", b", ", 1)), store(row(OLD)))


def test_an_envelope_of_another_payload_type_is_refused() -> None:
    data = manifest().encode()
    with pytest.raises(SignatureInvalid, match="payloadType"):
        check((data, envelope(dsse.ROTATION_TYPE, data, OLD)), store(row(OLD)))


def test_an_envelope_over_other_bytes_than_the_manifest_is_refused() -> None:
    data, sig = signed(manifest(), OLD)
    with pytest.raises(SignatureInvalid, match="signed payload is not the manifest"):
        check((data + b" ", sig), store(row(OLD)))


def test_a_malformed_manifest_is_refused_before_any_key_is_looked_at() -> None:
    data = canonical.dump(manifest().to_json() | {"extra": 1})
    with pytest.raises(BundleMalformed, match="unknown extra"):
        check((data, envelope(dsse.MANIFEST_TYPE, data, OLD)), {})


# --- refused: the signer (step 3) -------------------------------------------------------------


def test_a_key_not_in_the_store_is_refused() -> None:
    with pytest.raises(UntrustedKey, match="not in the trust store"):
        check(signed(manifest(), OLD), {})


def test_a_key_of_another_site_is_refused() -> None:
    with pytest.raises(UntrustedKey, match="the key is relay's"):
        check(signed(manifest(), OLD), store(row(OLD, "relay")))


def test_a_revoked_key_is_refused() -> None:
    revoked = row(OLD, revoked_at=NOW_TEXT, reason="lost laptop")
    with pytest.raises(UntrustedKey, match=r"revoked at .*: lost laptop"):
        check(signed(manifest(), OLD), store(revoked))


def test_a_key_past_its_trust_expiry_is_refused() -> None:
    expired = row(OLD, expires_at="2025-12-31T23:59:59.999Z")
    with pytest.raises(UntrustedKey, match="trust expired at 2025-12-31"):
        check(signed(manifest(), OLD), store(expired))


def test_a_signature_that_does_not_verify_is_refused() -> None:
    data = manifest().encode()
    forged = envelope(dsse.MANIFEST_TYPE, data, OLD, sig=bytes(64))
    with pytest.raises(SignatureInvalid, match="does not match the manifest"):
        check((data, forged), store(row(OLD)))


def test_when_every_signature_fails_the_first_refusal_is_raised() -> None:
    with pytest.raises(UntrustedKey, match=f"key {dsse.key_id(OTHER)} "):
        check(signed(manifest(), OTHER, OLD), store(row(OLD, "relay")))


# --- refused: a rotation statement (FORMAT.md 3.2) --------------------------------------------


def test_a_rotation_that_is_not_base64_is_refused() -> None:
    with pytest.raises(SignatureInvalid, match="rotation statement is not standard base64"):
        check(signed(manifest(rotation="not base64!"), NEW), store(row(OLD)))


def test_a_rotation_envelope_of_another_type_is_refused() -> None:
    payload = canonical.dump({"site": "hq"})
    text = base64.b64encode(envelope(dsse.MANIFEST_TYPE, payload, OLD)).decode()
    with pytest.raises(SignatureInvalid, match="payloadType"):
        check(signed(manifest(rotation=text), NEW), store(row(OLD)))


def test_a_rotation_statement_that_is_not_canonical_json_is_refused() -> None:
    with pytest.raises(SignatureInvalid, match="rotation statement is not canonical JSON"):
        check(signed(manifest(rotation=rotation(raw=True)), NEW), store(row(OLD)))


def test_a_rotation_statement_with_other_fields_is_refused() -> None:
    text = rotation(lambda v: v | {"extra": "1"})
    with pytest.raises(SignatureInvalid, match="must hold new_key_id, old_key_id"):
        check(signed(manifest(rotation=text), NEW), store(row(OLD)))


def test_a_rotation_statement_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(SignatureInvalid, match="must hold"):
        check(signed(manifest(rotation=rotation(lambda v: list(v))), NEW), store(row(OLD)))


def test_a_rotation_statement_whose_keys_are_not_hex_is_refused() -> None:
    text = rotation(lambda v: v | {"old_key_id": "k" * 64})
    with pytest.raises(UntrustedKey, match="not 64 hex digits"):
        check(signed(manifest(rotation=text), NEW), store(row(OLD)))


@pytest.mark.parametrize(
    "change",
    [
        lambda v: v | {"site": "relay"},
        lambda v: v | {"new_key_id": dsse.key_id(OTHER)},
        lambda v: v | {"public_key": OTHER.hex()},
    ],
    ids=["another site", "another new key", "another public key"],
)
def test_a_rotation_statement_that_does_not_name_this_exporter_and_key_is_refused(
    change: Callable[[dict[str, Any]], object],
) -> None:
    with pytest.raises(UntrustedKey, match="does not name this key"):
        check(signed(manifest(rotation=rotation(change)), NEW), store(row(OLD)))


def test_a_rotation_from_an_untrusted_old_key_is_refused() -> None:
    with pytest.raises(UntrustedKey, match=f"key {dsse.key_id(OLD)} .*not in the trust store"):
        check(signed(manifest(rotation=rotation()), NEW), store(row(OTHER)))


def test_a_rotation_from_a_revoked_old_key_is_refused() -> None:
    revoked = row(OLD, revoked_at=NOW_TEXT, reason="stolen")
    with pytest.raises(UntrustedKey, match=r"revoked at .*: stolen"):
        check(signed(manifest(rotation=rotation()), NEW), store(revoked))


def test_a_rotation_not_signed_by_the_old_key_is_refused() -> None:
    with pytest.raises(SignatureInvalid, match="not signed by the old key"):
        check(signed(manifest(rotation=rotation(signer=OTHER)), NEW), store(row(OLD)))


def test_a_manifest_not_signed_by_the_key_a_rotation_vouches_for_is_refused() -> None:
    data = manifest(rotation=rotation()).encode()
    forged = envelope(dsse.MANIFEST_TYPE, data, NEW, sig=bytes(64))
    with pytest.raises(SignatureInvalid, match="does not match the manifest"):
        check((data, forged), store(row(OLD)))


def test_following_a_rotation_needs_a_rotation() -> None:
    with pytest.raises(UntrustedKey, match="not in the trust store"):
        bundle_trust.follow_rotation(
            manifest(), dsse.key_id(NEW), store(row(OLD)), fake_verify, NOW_TEXT
        )


# --- refused: where it is going and when (step 4) ---------------------------------------------


def test_a_bundle_addressed_to_another_site_is_refused() -> None:
    with pytest.raises(BundleRefused, match="addressed to site 'relay'"):
        check(signed(manifest(recipient="relay"), OLD), store(row(OLD)))


def test_a_bundle_this_site_exported_is_refused() -> None:
    own = manifest(exporter="enclave", recipient="*")
    with pytest.raises(BundleRefused, match="exported by this site itself"):
        check(signed(own, OLD), store(row(OLD, "enclave")))


def test_a_bundle_from_beyond_the_skew_is_refused() -> None:
    ahead = manifest(created="2026-01-01T00:05:00.001Z")
    with pytest.raises(BundleRefused, match="ahead of this site's clock"):
        check(signed(ahead, OLD), store(row(OLD)))
    assert check(signed(ahead, OLD), store(row(OLD)), skew_ms=300_001)


def test_an_expired_bundle_is_refused() -> None:
    late = manifest(expires="2025-12-31T23:59:59.999Z", created="2025-12-01T00:00:00.000Z")
    with pytest.raises(BundleRefused, match="expired at 2025-12-31"):
        check(signed(late, OLD), store(row(OLD)))


# --- the order of the checks ------------------------------------------------------------------


def test_the_signer_is_checked_before_where_the_bundle_is_going() -> None:
    with pytest.raises(UntrustedKey):
        check(signed(manifest(recipient="relay"), OLD), {})


def test_the_form_is_checked_before_the_signer() -> None:
    data, sig = signed(manifest(), OLD)
    with pytest.raises(SignatureInvalid, match="signed payload"):
        check((data + b" ", sig), {})


def test_no_signature_check_runs_for_a_key_that_is_not_trusted() -> None:
    calls: list[bytes] = []

    def counting(public: bytes, message: bytes, sig: bytes) -> bool:
        calls.append(public)
        return fake_verify(public, message, sig)

    with pytest.raises(UntrustedKey):
        bundle_trust.check(
            *signed(manifest(), OLD), trusted={}, verify=counting, now_ms=NOW, local="enclave"
        )
    assert calls == []


# --- restore's anchor and the rotation payload ------------------------------------------------


def test_signed_by_names_exactly_the_keys_that_signed() -> None:
    head = bundle_trust.parse_head(*signed(manifest(), OLD))
    assert bundle_trust.signed_by(head, OLD, fake_verify)
    assert not bundle_trust.signed_by(head, OTHER, fake_verify)
    forged = dataclasses.replace(
        head,
        envelope=dataclasses.replace(
            head.envelope,
            signatures=(dsse.Signature(key_id=dsse.key_id(OLD), sig=bytes(64)),),
        ),
    )
    assert not bundle_trust.signed_by(forged, OLD, fake_verify)


def test_the_rotation_payload_is_what_an_importer_follows() -> None:
    payload = bundle_trust.rotation_payload("hq", dsse.key_id(OLD), NEW)
    text = base64.b64encode(envelope(dsse.ROTATION_TYPE, payload, OLD)).decode()
    assert text == rotation()
