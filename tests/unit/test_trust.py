"""The trust store as a fold of this site's own ``key.*`` events, and who may sign for a site."""

from __future__ import annotations

from typing import Any

import pytest
from sealed import ORIGIN, OTHER_ORIGIN, seal

from orchd.core import dsse, trust
from orchd.core.events import Event
from orchd.core.trust import KeyView
from orchd.errors import InvalidName, InvalidTime, MalformedEvent, UntrustedKey

AT_1 = "2026-01-31T12:00:01.000Z"  # the occurred_at sealed.seal gives seq 1
OWN_KEY, PEER_KEY, NEW_KEY = bytes(range(32)), bytes(range(1, 33)), bytes(range(2, 34))
OWN_ID, PEER_ID, NEW_ID = (dsse.key_id(k) for k in (OWN_KEY, PEER_KEY, NEW_KEY))


def created(key: bytes = OWN_KEY) -> Event:
    return seal("key.created", {"key_id": dsse.key_id(key), "public_key": key.hex()})


def trusted(**changes: Any) -> Event:
    payload = {"site": OTHER_ORIGIN, "key_id": PEER_ID, "public_key": PEER_KEY.hex(), **changes}
    return seal("key.trusted", payload)


def revoked(key_id: str = PEER_ID, reason: str | None = "leaked") -> Event:
    return seal("key.revoked", {"key_id": key_id}, reason=reason)


def rotated(old_key_id: str = OWN_ID) -> Event:
    payload = {
        "old_key_id": old_key_id,
        "new_key_id": NEW_ID,
        "public_key": NEW_KEY.hex(),
        "statement": "c3RhdGVtZW50",
    }
    return seal("key.rotated", payload)


def fold(*sealed: Event) -> dict[str, KeyView]:
    rows: dict[str, KeyView] = {}
    for event in sealed:
        rows.update(trust.apply(event, ORIGIN, rows) or {})
    return rows


def test_a_created_key_is_this_sites_own() -> None:
    assert fold(created()) == {
        OWN_ID: KeyView(OWN_ID, ORIGIN, OWN_KEY.hex(), "own", AT_1, None, None, None)
    }


def test_a_trusted_peer_key_keeps_its_site_and_expiry() -> None:
    rows = fold(trusted(expires_at="2027-01-01T00:00:00.000Z"))
    assert rows[PEER_ID] == KeyView(
        PEER_ID, OTHER_ORIGIN, PEER_KEY.hex(), "peer", AT_1, "2027-01-01T00:00:00.000Z", None, None
    )


def test_a_revoked_key_records_when_and_why_and_may_be_trusted_again() -> None:
    rows = fold(trusted(), revoked())
    assert (rows[PEER_ID].revoked_at, rows[PEER_ID].reason) == (AT_1, "leaked")
    assert fold(trusted(), revoked(), trusted())[PEER_ID].revoked_at is None


def test_a_rotation_retires_the_old_key_and_makes_the_new_one_own() -> None:
    rows = fold(created(), rotated())
    assert (rows[OWN_ID].role, rows[NEW_ID].role) == ("retired", "own")
    assert rows[NEW_ID].public_key == NEW_KEY.hex()


def test_another_sites_key_events_change_nothing_here() -> None:
    theirs = seal("key.created", created().payload, origin=OTHER_ORIGIN)
    assert trust.apply(theirs, ORIGIN, {}) is None


def test_subject_names_every_key_an_event_touches() -> None:
    assert trust.subject(rotated()) == [OWN_ID, NEW_ID]
    assert trust.subject(trusted()) == [PEER_ID]


@pytest.mark.parametrize(
    ("public_key", "key_id"),
    [
        pytest.param(PEER_KEY.hex()[:62], PEER_ID, id="short"),
        pytest.param(7, PEER_ID, id="not-text"),
        pytest.param("zz" * 32, PEER_ID, id="not-hex"),
    ],
)
def test_a_public_key_that_is_not_64_hex_digits_is_malformed(public_key: Any, key_id: str) -> None:
    with pytest.raises(MalformedEvent, match="public_key must be 64 hex digits"):
        fold(trusted(public_key=public_key, key_id=key_id))


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"public_key": PEER_KEY.hex().upper()}, id="upper-case"),
        pytest.param({"key_id": OWN_ID}, id="another-key"),
    ],
)
def test_a_key_id_must_be_the_sha256_of_its_public_key(changes: dict[str, Any]) -> None:
    with pytest.raises(MalformedEvent, match="key_id is not the sha256 of public_key"):
        fold(trusted(**changes))


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (
            seal("key.created", {"key_id": OWN_ID}),
            "payload must hold key_id, public_key$",
        ),
        (
            trusted(note="x"),
            r"payload must hold key_id, public_key, site \(and optionally expires_at, vouched_by\)",
        ),
        (seal("key.revoked", {}), r"payload must hold key_id \(and optionally successors\)$"),
        (seal("key.rotated", {"old_key_id": OWN_ID}), "new_key_id, old_key_id, public_key"),
        (revoked(reason=None), "revoking a key needs a reason"),
    ],
)
def test_a_key_event_not_of_its_types_shape_is_malformed_whatever_its_origin(
    event: Event, message: str
) -> None:
    with pytest.raises(MalformedEvent, match=message):
        trust.apply(event, ORIGIN, {})
    with pytest.raises(MalformedEvent, match=message):
        trust.apply(event, OTHER_ORIGIN, {})


def test_a_trusted_key_with_a_bad_expiry_or_site_is_refused() -> None:
    with pytest.raises(InvalidTime):
        fold(trusted(expires_at="next year"))
    with pytest.raises(InvalidName, match="invalid site id 'Lab'"):
        fold(trusted(site="Lab"))


@pytest.mark.parametrize(
    ("sealed", "message"),
    [
        ((trusted(), trusted(site="lab")), f"key {PEER_ID} is trusted already"),
        ((trusted(), trusted(vouched_by=OWN_ID)), f"key {PEER_ID} is trusted already"),
        ((created(PEER_KEY), trusted(site=ORIGIN)), f"key {PEER_ID} is trusted already"),
        ((revoked(),), f"key {PEER_ID} is not in the trust store or revoked already"),
        ((trusted(), revoked(), revoked()), "is not in the trust store or revoked already"),
        ((rotated(),), f"key {OWN_ID} is not this site's signing key"),
        ((trusted(), rotated(PEER_ID)), f"key {PEER_ID} is not this site's signing key"),
    ],
)
def test_a_key_event_out_of_turn_is_malformed(sealed: tuple[Event, ...], message: str) -> None:
    with pytest.raises(MalformedEvent, match=message):
        fold(*sealed)


ROW = KeyView(
    PEER_ID, OTHER_ORIGIN, PEER_KEY.hex(), "peer", AT_1, "2027-01-01T00:00:00.000Z", None, None
)


def test_a_trusted_key_of_the_site_verifies_until_it_expires() -> None:
    assert trust.check_signer(ROW, PEER_ID, OTHER_ORIGIN, "2026-06-01T00:00:00.000Z") == ROW
    with pytest.raises(UntrustedKey, match=r"trust expired at 2027-01-01T00:00:00\.000Z"):
        trust.check_signer(ROW, PEER_ID, OTHER_ORIGIN, "2027-06-01T00:00:00.000Z")


@pytest.mark.parametrize(
    ("row", "site", "message"),
    [
        (None, OTHER_ORIGIN, "the key is not in the trust store"),
        (ROW, "lab", f"the key is {OTHER_ORIGIN}'s"),
        (
            ROW._replace(revoked_at=AT_1, reason="leaked"),
            OTHER_ORIGIN,
            f"revoked at {AT_1}: leaked",
        ),
    ],
)
def test_a_key_verifies_nothing_unknown_of_another_site_or_revoked(
    row: KeyView | None, site: str, message: str
) -> None:
    with pytest.raises(UntrustedKey, match=message):
        trust.check_signer(row, PEER_ID, site, "2026-06-01T00:00:00.000Z")


# --- a key trusted through a rotation, and what falls with a revoked key (FORMAT.md 3.2) -------


def test_an_operator_may_trust_by_hand_a_key_a_rotation_vouched_for() -> None:
    later = seal("key.trusted", {**trusted().payload, "expires_at": "2027-01-01T00:00:00.000Z"})
    rows = fold(trusted(vouched_by=OWN_ID), later)
    assert rows[PEER_ID] == KeyView(
        PEER_ID, OTHER_ORIGIN, PEER_KEY.hex(), "peer", AT_1, "2027-01-01T00:00:00.000Z", None, None
    )


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (trusted(vouched_by="ab"), "vouched_by must be a key id"),
        (trusted(vouched_by=7), "vouched_by must be a key id"),
        (seal("key.revoked", {"key_id": PEER_ID, "successors": "gone"}, reason="r"), "'kept'"),
    ],
)
def test_a_vouching_key_or_a_kept_choice_of_another_form_is_malformed(
    event: Event, message: str
) -> None:
    with pytest.raises(MalformedEvent, match=message):
        trust.apply(event, OTHER_ORIGIN, {})


K1, K2, K3, K4 = (f"{n:x}" * 64 for n in range(1, 5))


def grant(key_id: str, seq: int, vouched_by: str | None = None) -> Event:
    payload = {"site": OTHER_ORIGIN, "key_id": key_id, "public_key": "00" * 32}
    return seal(
        "key.trusted", payload | ({"vouched_by": vouched_by} if vouched_by else {}), seq=seq
    )


def revocation(key_id: str, seq: int) -> Event:
    return seal("key.revoked", {"key_id": key_id}, seq=seq, reason="r")


def test_grants_are_what_each_key_is_trusted_through_since_its_last_revocation() -> None:
    held = trust.grants(
        [
            created(),
            grant(K1, 2),
            grant(K2, 3, vouched_by=K1),
            grant(K2, 4),  # and by hand
            grant(K3, 5),
            revocation(K3, 6),
            grant(K3, 7, vouched_by=K2),
            grant(K4, 8),
            revocation(K4, 9),
        ]
    )
    assert held == {K1: {None}, K2: {K1, None}, K3: {K2}}


def rows_of(*key_ids: str, revoked: tuple[str, ...] = ()) -> dict[str, KeyView]:
    return {
        k: KeyView(
            k, OTHER_ORIGIN, "00" * 32, "peer", AT_1, None, AT_1 if k in revoked else None, None
        )
        for k in key_ids
    }


def test_revoking_a_key_revokes_its_successors_transitively_each_after_its_voucher() -> None:
    rows = rows_of(K1, K2, K3, K4)
    held = {K1: frozenset({None}), K3: frozenset({K2}), K2: frozenset({K1}), K4: frozenset({None})}
    found = trust.successors(K1, rows, held)
    assert [(s.key.key_id, s.vouched_by) for s in found] == [(K2, K1), (K3, K2)]
    assert trust.successors(K2, rows, held) == [trust.Successor(rows[K3], K2)]
    assert trust.successors(K3, rows, held) == []


@pytest.mark.parametrize(
    ("held", "revoked", "falls"),
    [
        pytest.param({K2: {K1, None}}, (), [], id="also-trusted-by-hand"),
        pytest.param({K2: {K1, K4}}, (), [], id="also-vouched-for-by-a-trusted-key"),
        pytest.param({K2: {K1, K4}}, (K4,), [K2], id="the-other-voucher-is-revoked"),
        pytest.param({K2: {K4}}, (K4,), [], id="kept-when-another-key-was-revoked"),
        pytest.param({K2: {K1}}, (K2,), [], id="revoked-already"),
        pytest.param({K2: {K1}, K3: {K1, K2}}, (), [K2, K3], id="two-vouchers-both-falling"),
        pytest.param({K2: {K1, K3}, K3: {K1}}, (), [K3, K2], id="found-once-its-vouchers-are"),
        pytest.param({K2: {K1, "9" * 64}}, (), [K2], id="a-voucher-not-in-the-store"),
        pytest.param({"9" * 64: {K1}}, (), [], id="not-in-the-store"),
    ],
)
def test_a_key_falls_only_when_nothing_but_falling_or_revoked_keys_vouched_for_it(
    held: dict[str, set[str | None]], revoked: tuple[str, ...], falls: list[str]
) -> None:
    rows = rows_of(K1, K2, K3, K4, revoked=revoked)
    found = trust.successors(K1, rows, {k: frozenset(v) for k, v in held.items()})
    assert [s.key.key_id for s in found] == falls
