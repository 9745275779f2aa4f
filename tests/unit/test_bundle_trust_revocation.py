"""Rotation statements and revoked keys (``bundles/FORMAT.md`` 3.2, "Revocation"): a statement
naming a revoked key, as old or as new key, trusts nothing; a key rotated out but not revoked
stays valid. The signature step alone (``check_signature``) on ``test_bundle_trust``'s helpers: a
fake signature check, rows in a dict."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from test_bundle_trust import (
    NEW,
    NOW_TEXT,
    OLD,
    fake_verify,
    manifest,
    rotation,
    row,
    signed,
    store,
)

from orchd.core import bundle_trust, dsse
from orchd.core.bundle import Manifest
from orchd.core.bundle_trust import Signer
from orchd.core.trust import KeyView
from orchd.errors import UntrustedKey


def check(made: Manifest, signer: bytes, trusted: Mapping[str, KeyView]) -> Signer:
    data, envelope = signed(made, signer)
    head = bundle_trust.Head(
        manifest=made,
        manifest_bytes=data,
        envelope=dsse.decode(envelope, payload_type=dsse.MANIFEST_TYPE),
    )
    return bundle_trust.check_signature(head, trusted, fake_verify, NOW_TEXT)


FELL = f"revoked with key {dsse.key_id(OLD)[:16]}: trusted only through a rotation statement"


def test_a_rotation_statement_never_makes_a_revoked_new_key_trusted_again() -> None:
    trusted = store(row(OLD), row(NEW, revoked_at=NOW_TEXT, reason=FELL))
    with pytest.raises(UntrustedKey, match="never makes a revoked key trusted again") as caught:
        check(manifest(rotation=rotation()), NEW, trusted)
    assert caught.value.fields["key_id"] == dsse.key_id(NEW)
    assert FELL in caught.value.message


def test_a_rotation_statement_signed_by_a_revoked_key_vouches_for_nothing() -> None:
    trusted = store(row(OLD, revoked_at=NOW_TEXT, reason="stolen"))
    with pytest.raises(UntrustedKey, match="a revoked key vouches for nothing") as caught:
        check(manifest(rotation=rotation()), NEW, trusted)
    assert caught.value.fields["key_id"] == dsse.key_id(NEW)
    assert f"old key {dsse.key_id(OLD)} was revoked at {NOW_TEXT}: stolen" in caught.value.message


def test_a_bundle_signed_by_a_key_revoked_with_the_key_that_vouched_for_it_is_refused() -> None:
    trusted = store(row(OLD, revoked_at=NOW_TEXT, reason="stolen"), row(NEW, revoked_at=NOW_TEXT))
    with pytest.raises(UntrustedKey, match=f"revoked at {NOW_TEXT}"):
        check(manifest(), NEW, trusted)


def test_a_retired_key_stays_valid_for_what_it_signed() -> None:
    """A relay may pass on what hq signed before it rotated: the old key, rotated out but not
    revoked, still verifies, with or without the statement that replaced it."""
    trusted = store(row(OLD), row(NEW))
    assert check(manifest(), OLD, trusted).key == row(OLD)
    assert check(manifest(rotation=rotation()), OLD, trusted).key == row(OLD)
