"""An origin's chain of key rotations (core, bundle format 2, FORMAT.md 3.2 and 4.3): the member
read strictly, the chain followed only from keys this site trusts and not through a revoked one,
and the chain an exporter carries."""

from __future__ import annotations

from typing import Any

import pytest
from nacl.signing import SigningKey

from orchd.adapters import keys
from orchd.core import bundle_trust, canonical, dsse, rotations
from orchd.core.rotations import Rotation
from orchd.core.trust import KeyView
from orchd.errors import MemberMismatch, SignatureInvalid

NOW = "2026-06-01T00:00:00.000Z"
K = [keys.SiteKey(SigningKey(bytes([n + 1]) * 32)) for n in range(5)]


def row(key: keys.SiteKey, site: str = "a", **changes: Any) -> KeyView:
    made = KeyView(key.key_id, site, key.public_key.hex(), "peer", NOW, None, None, None)
    return made._replace(**changes)


def signed(payload: bytes, by: keys.SiteKey) -> bytes:
    sig = by.sign(dsse.pae(dsse.ROTATION_TYPE, payload))
    return dsse.Envelope(
        payload_type=dsse.ROTATION_TYPE,
        payload=payload,
        signatures=(dsse.Signature(key_id=by.key_id, sig=sig),),
    ).encode()


def rotation(old: keys.SiteKey, new: keys.SiteKey, site: str = "a", by: Any = None) -> bytes:
    body = bundle_trust.rotation_payload(site, old.key_id, new.public_key)
    return signed(body, by or old)


def member(*lines: bytes) -> bytes:
    return b"".join(line + b"\n" for line in lines)


CHAIN = member(rotation(K[0], K[1]), rotation(K[1], K[2]), rotation(K[2], K[3]))


def read(data: bytes = CHAIN, records: int = 3, origin: str = "a") -> list[Rotation]:
    return rotations.parse_member(data, "rotations/a.ndjson", origin, records)


def payload(**changes: Any) -> bytes:
    value = {
        "new_key_id": K[1].key_id,
        "old_key_id": K[0].key_id,
        "public_key": K[1].public_key.hex(),
        "site": "a",
    } | changes
    return canonical.encode(value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"x" * 9000, "larger than 8192 bytes"),
        (signed(b'{"site": "a"}', K[0]), "not canonical JSON"),
        (signed(canonical.encode({"site": "a"}), K[0]), "must hold exactly"),
        (signed(payload(old_key_id="AB" * 32), K[0]), "64 lower-case hex"),
        (signed(payload(new_key_id=K[2].key_id), K[0]), "not the sha256 of public_key"),
        (signed(payload(site=1), K[0]), "site must be text"),
    ],
)
def test_a_malformed_rotation_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(SignatureInvalid, match=message):
        rotations.parse(data)


def test_a_member_reads_back_as_one_chain_of_its_origin() -> None:
    chain = read()
    assert [(r.old_key_id, r.new_key_id) for r in chain] == [
        (K[n].key_id, K[n + 1].key_id) for n in range(3)
    ]
    assert chain[0].as_record() == {
        "site": "a",
        "old_key_id": K[0].key_id,
        "new_key_id": K[1].key_id,
        "public_key": K[1].public_key.hex(),
    }


@pytest.mark.parametrize(
    ("data", "records", "error", "message"),
    [
        (CHAIN[:-1], 3, MemberMismatch, "no newline"),
        (CHAIN, 2, MemberMismatch, "not the manifest's 2"),
        (member(*[rotation(K[0], K[1])] * 257), 257, MemberMismatch, "at most 256"),
        (member(b"x" * 8193), 1, MemberMismatch, "longer than 8192"),
        (member(rotation(K[0], K[1], site="b")), 1, SignatureInvalid, "it is b's"),
        (member(rotation(K[0], K[1]), rotation(K[2], K[3])), 2, SignatureInvalid, "one chain"),
    ],
)
def test_a_bad_member_is_refused(
    data: bytes, records: int, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        read(data, records)


def test_the_chain_is_followed_only_from_a_key_this_site_trusts_for_the_origin() -> None:
    chain = read()
    followed = rotations.follow(chain, "a", {K[1].key_id: row(K[1])}, keys.verify, NOW)
    assert [r.new_key_id for r in followed] == [K[2].key_id, K[3].key_id]  # the first: nothing
    reached = rotations.reached(followed, NOW)
    assert set(reached) == {K[2].key_id, K[3].key_id}
    assert reached[K[3].key_id].public_key == K[3].public_key.hex()
    assert reached[K[3].key_id].site == "a"
    assert rotations.follow(chain, "a", {K[1].key_id: row(K[1], "b")}, keys.verify, NOW) == []


def test_a_revoked_key_stops_the_chain_and_is_never_trusted_again() -> None:
    chain = read()
    trusted = {
        K[0].key_id: row(K[0]),
        K[2].key_id: row(K[2], revoked_at=NOW, reason="stolen"),
    }
    followed = rotations.follow(chain, "a", trusted, keys.verify, NOW)
    assert [r.new_key_id for r in followed] == [K[1].key_id]


def test_a_line_not_signed_by_its_old_key_is_refused() -> None:
    forged = read(member(rotation(K[0], K[1], by=K[4])), 1)
    with pytest.raises(SignatureInvalid, match="not signed by its old key"):
        rotations.follow(forged, "a", {K[0].key_id: row(K[0])}, keys.verify, NOW)


def test_what_an_import_records_and_what_an_exporter_carries() -> None:
    chain = read()
    assert rotations.leading_to(chain, [K[2].key_id, None]) == chain[:2]
    assert rotations.leading_to(chain, [None]) == []
    assert rotations.chain_to(reversed(chain), K[3].key_id) == chain
    assert rotations.chain_to(chain, K[2].key_id) == chain[:2]
    assert rotations.chain_to(chain, K[0].key_id) == []
    loop = read(member(rotation(K[0], K[1]), rotation(K[1], K[0])), 2)
    assert rotations.chain_to(loop, K[0].key_id) == loop
