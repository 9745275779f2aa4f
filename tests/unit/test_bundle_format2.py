"""Bundle format 2's manifest and head statements (core): the members' order and rules, the size
limits, and each refusal of a head statement in the order of bundles/FORMAT.md 3.3."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from nacl.signing import SigningKey

from orchd.adapters import keys
from orchd.core import bundle, bundle_trust, canonical, dsse, events, hlc, ids, statements, sync
from orchd.core.bundle import Manifest, Member, Range, Step
from orchd.core.events import ZERO_HASH, Actor
from orchd.core.trust import KeyView
from orchd.errors import (
    BundleMalformed,
    BundleRefused,
    ChainFork,
    SignatureInvalid,
    TooManyOrigins,
    UntrustedKey,
)
from tests.builders import submitted

H = {n: f"{n:064x}" for n in range(1, 20)}
NOW = "2026-06-01T00:00:00.000Z"
HLC = "1769860800000-000003"
ACTOR = Actor(uid=1000, user="alice", scopes=("orch:admin",))
HQ, MALLORY = (keys.SiteKey(SigningKey(bytes([n]) * 32)) for n in (1, 2))


def row(key: keys.SiteKey, site: str = "hq", **changes: Any) -> KeyView:
    made = KeyView(key.key_id, site, key.public_key.hex(), "peer", NOW, None, None, None)
    return made._replace(**changes)


def ranges(*origins: str, last: int = 5) -> tuple[Range, ...]:
    made = sync.export_ranges(
        dict.fromkeys(origins, (last, H[last])), dict.fromkeys(origins, (1, ZERO_HASH))
    )
    return made


def v2(*spans: Range, rotation: str | None = None) -> Manifest:
    heads = [Member(name=r.head, sha256="0" * 64, size=300, raw_size=300, records=1) for r in spans]
    data = [
        Member(
            name=r.member, sha256="0" * 64, size=10, raw_size=100, records=r.to_seq - r.from_seq + 1
        )
        for r in spans
    ]
    export = sync.Export(
        exporter="hq",
        recipient="*",
        now_ms=1_767_225_600_000,
        expires_in_ms=86_400_000,
        full=True,
        ranges=spans,
        previous="",
        rotation=rotation,
    )
    return export.manifest((*heads, *data))


def reparse(value: dict[str, Any]) -> Manifest:
    fields = ("origin", "from_seq", "to_seq", "prev_hash", "last_hash")
    if all(isinstance(r, dict) for r in value["ranges"]):
        spans = [Range(**{k: r[k] for k in fields}, member=r["events"]) for r in value["ranges"]]
        value["bundle_id"] = bundle.bundle_id(
            value["exporter"], value["recipient"], value["created_at"], spans
        )
    return bundle.parse(canonical.dump(value))


# --- the manifest ------------------------------------------------------------------------------


def test_a_format_2_manifest_names_statements_first_and_reads_back_as_written() -> None:
    made = v2(*ranges("branch", "hq"))
    names = [m.name for m in made.members]
    assert names == [
        "heads/branch.dsse",
        "heads/hq.dsse",
        "events/branch.ndjson.zst",
        "events/hq.ndjson.zst",
    ]
    assert bundle.parse(made.encode()) == made
    assert made.ranges[0].statements() == ["heads/branch.dsse"]
    assert made.ranges[0].data() == ["events/branch.ndjson.zst"]
    assert bundle.signature_cap(made.encode()) == bundle.MAX_SIGNATURE_FILE == 2_796_981
    one = dataclasses.replace(
        made,
        format=1,
        ranges=tuple(dataclasses.replace(r, head="") for r in made.ranges),
        members=made.members[2:],
    )
    assert bundle.signature_cap(one.encode()) == bundle.MAX_SIGNATURE_FILE_1
    assert bundle.signature_cap(b"not json") == bundle.MAX_SIGNATURE_FILE


def change_range(**fields: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def change(value: dict[str, Any]) -> dict[str, Any]:
        value["ranges"][0] |= fields
        for key in [k for k, v in fields.items() if v is None]:
            del value["ranges"][0][key]
        return value

    return change


def change_member(index: int, **fields: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def change(value: dict[str, Any]) -> dict[str, Any]:
        value["members"][index] |= fields
        return value

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (change_range(head=None), "a range lacks head"),
        (change_range(member="events/hq.ndjson.zst"), "has unknown member"),
        (change_range(head="heads/x.dsse"), "the head member of hq must be heads/hq.dsse"),
        (change_range(checkpoint="checkpoints/hq.dsse"), "a checkpoint and base rows together"),
        (change_range(base="base/hq.ndjson.zst"), "a checkpoint and base rows together"),
        (change_member(0, records=2), "one statement of at most 8192 bytes"),
        (change_member(0, size=8193, raw_size=8193), "one statement of at most 8192 bytes"),
        (change_member(0, raw_size=299), "its raw_size must be its size"),
        (lambda v: v | {"members": v["members"][::-1]}, "in archive order"),
        (lambda v: v | {"ranges": [1]}, "a range must be an object"),
    ],
)
def test_a_bad_format_2_manifest_is_refused_naming_what_is_wrong(change: Any, message: str) -> None:
    value = v2(*ranges("hq")).to_json()
    with pytest.raises(BundleMalformed, match=message):
        reparse(change(value))


def test_a_range_with_a_checkpoint_and_rotations_is_read_in_archive_order() -> None:
    value = v2(*ranges("hq")).to_json()
    value["ranges"][0] |= {
        "checkpoint": "checkpoints/hq.dsse",
        "base": "base/hq.ndjson.zst",
        "rotations": "rotations/hq.ndjson",
        "from_seq": 3,
        "prev_hash": H[2],
    }
    stmt = {"sha256": "0" * 64, "size": 300, "raw_size": 300, "records": 1}
    value["members"] = [
        {"name": "rotations/hq.ndjson", **stmt},
        {"name": "checkpoints/hq.dsse", **stmt},
        {"name": "heads/hq.dsse", **stmt},
        {
            "name": "base/hq.ndjson.zst",
            "sha256": "0" * 64,
            "size": 10,
            "raw_size": 100,
            "records": 4,
        },
        {
            "name": "events/hq.ndjson.zst",
            "sha256": "0" * 64,
            "size": 10,
            "raw_size": 100,
            "records": 3,
        },
    ]
    made = reparse(value)
    assert made.ranges[0].statements() == [
        "rotations/hq.ndjson",
        "checkpoints/hq.dsse",
        "heads/hq.dsse",
    ]
    assert made.to_json()["ranges"][0]["base"] == "base/hq.ndjson.zst"
    value["members"][0]["records"] = 257
    with pytest.raises(BundleMalformed, match="at most 256 statements"):
        reparse(value)
    value["members"][0]["records"] = 1
    value["ranges"][0] |= {"from_seq": 1, "prev_hash": ZERO_HASH}
    with pytest.raises(BundleMalformed, match="from_seq must be 2 or more"):
        reparse(value)


def test_format_1_keeps_its_own_limits() -> None:
    made = v2(*ranges("hq"))
    value = made.to_json() | {"format": 1}
    value["ranges"][0] = {
        k: v for k, v in value["ranges"][0].items() if k not in ("events", "head")
    } | {"member": "events/hq.ndjson.zst"}
    value["members"] = value["members"][1:]
    value["rotation"] = "A" * 8192
    assert bundle.parse(canonical.dump(value)).format == 1
    big = canonical.dump(value | {"rotation": "A" * bundle.MAX_MANIFEST_1})  # within format 2's
    with pytest.raises(BundleMalformed, match="larger than 1048576 bytes"):
        bundle.parse(big)
    with pytest.raises(BundleRefused, match="format 'x'"):
        bundle.parse(canonical.dump(value | {"format": "x"}))


def test_every_format_2_manifest_fits_its_envelope_and_is_never_refused_for_its_size() -> None:
    spans = tuple(
        dataclasses.replace(
            r, from_seq=canonical.MAX_INT - 5, prev_hash=H[1], to_seq=canonical.MAX_INT
        )
        for r in ranges(*(f"o{n:03d}" + "x" * 59 for n in range(1000)))
    )
    made = v2(*spans, rotation="A" * 8192)
    assert len(made.encode()) <= bundle.MAX_MANIFEST
    assert bundle.envelope_size(made, signatures=4) <= bundle.MAX_SIGNATURE_FILE
    bundle.check_signable(made)
    with pytest.raises(TooManyOrigins):
        bundle.check_signable(dataclasses.replace(made, format=1))


# --- head statements --------------------------------------------------------------------------


def head(origin: str = "hq", seq: int = 5, digest: str = H[5], key: keys.SiteKey = HQ) -> bytes:
    return statements.make_head(origin, seq, digest, HLC, key_id=key.key_id, sign=key.sign).envelope


def check(
    found: bytes, *, trusted: dict[str, KeyView] | None = None, **options: Any
) -> statements.Checked:
    (r,) = ranges("hq")
    keys_ = {HQ.key_id: row(HQ)} if trusted is None else trusted
    return statements.check_heads(
        (r,),
        {"hq": found},
        trusted=keys_,
        verify=keys.verify,
        now=NOW,
        held=options.pop("held", {}),
        **options,
    )["hq"]


def test_the_head_payload_is_the_bytes_format_md_gives() -> None:
    payload = statements.head_payload("hq", 42, "3f0c1d2e" * 8, HLC)
    assert payload == (
        b'{"hash":"3f0c1d2e3f0c1d2e3f0c1d2e3f0c1d2e3f0c1d2e3f0c1d2e3f0c1d2e3f0c1d2e",'
        b'"hlc":"1769860800000-000003","origin":"hq","seq":42}'
    )
    assert len(payload) == 127
    accepted = check(head())
    assert (accepted.signer, accepted.statement.seq, accepted.statement.hlc) == (HQ.key_id, 5, HLC)
    assert statements.parse_head(head()) == accepted.statement


def envelope_with(payload: bytes, key: keys.SiteKey = HQ) -> bytes:
    sig = key.sign(dsse.pae(statements.HEAD_TYPE, payload))
    return dsse.Envelope(
        payload_type=statements.HEAD_TYPE,
        payload=payload,
        signatures=(dsse.Signature(key_id=key.key_id, sig=sig),),
    ).encode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b" " * 8193, "larger than 8192 bytes"),
        (envelope_with(b"{ }"), "not canonical JSON"),
        (envelope_with(b"[]"), "exactly hash, hlc, origin, seq"),
        (
            envelope_with(canonical.dump({"hash": H[5], "hlc": HLC, "origin": "hq", "seq": 0})),
            "seq must be",
        ),
        (
            envelope_with(canonical.dump({"hash": "x", "hlc": HLC, "origin": "hq", "seq": 5})),
            "hash must be",
        ),
        (
            envelope_with(canonical.dump({"hash": H[5], "hlc": "x", "origin": "hq", "seq": 5})),
            "hlc",
        ),
        (
            envelope_with(canonical.dump({"hash": H[5], "hlc": HLC, "origin": "Q", "seq": 5})),
            "site id",
        ),
        (head("branch"), "it is branch's, in the range of hq"),
        (head(seq=4, digest=H[4]), "stale, replayed or foreign"),
        (head(digest=H[4]), "stale, replayed or foreign"),
    ],
)
def test_a_malformed_foreign_or_stale_head_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(SignatureInvalid, match=message):
        check(data)


def test_a_head_is_verified_only_by_a_key_trusted_for_its_origin() -> None:
    with pytest.raises(UntrustedKey, match="trusts no key of hq"):
        check(head(), trusted={})
    with pytest.raises(UntrustedKey, match="trusts no key of hq"):
        check(head(), trusted={HQ.key_id: row(HQ, revoked_at=NOW, reason="lost")})
    with pytest.raises(UntrustedKey, match="no signature on the head statement of hq"):
        check(head(key=MALLORY))
    forged = canonical.decode(head())
    forged["signatures"][0]["sig"] = dsse._b64(bytes(64))
    with pytest.raises(SignatureInvalid, match="does not verify"):
        check(canonical.dump(forged))
    assert check(head(), trusted={}, vouched={"hq"}).signer is None
    assert (
        check(
            head(key=MALLORY), trusted={MALLORY.key_id: row(MALLORY, site="branch")}, vouched={"hq"}
        ).signer
        is None
    )


def test_a_head_contradicting_what_this_site_holds_is_a_fork_heard_of_when_signed() -> None:
    heard: list[statements.Fork] = []
    with pytest.raises(ChainFork, match="another hash than this site holds"):
        check(head(), held={("hq", 5): H[9]}, forked=heard.append)
    assert heard == [statements.Fork(origin="hq", seq=5, held_hash=H[9], signed_hash=H[5])]
    with pytest.raises(ChainFork):
        check(head(), trusted={}, vouched={"hq"}, held={("hq", 5): H[9]}, forked=heard.append)
    assert len(heard) == 1  # on the relay's word only: no alarm
    assert check(head(), held={("hq", 5): H[5]}).signer == HQ.key_id


def test_the_last_event_must_carry_the_heads_hlc() -> None:
    (event,) = events.seal_batch(
        [submitted("01KB0000000000000000000001")],
        origin="hq",
        after=(0, ZERO_HASH),
        clock=hlc.ZERO,
        now_ms=1_769_860_800_000,
        entropy=bytes(ids.ENTROPY_BYTES),
    )
    r = Range(
        origin="hq",
        from_seq=1,
        to_seq=1,
        prev_hash=ZERO_HASH,
        last_hash=event.hash,
        member="events/hq.ndjson.zst",
        head="heads/hq.dsse",
    )
    step = Step(range=r, action="apply", after_seq=0, head_hlc="0000000000001-000000")
    with pytest.raises(SignatureInvalid, match="carries hlc"):
        list(bundle.read_events(step, [event.body], head_hash=ZERO_HASH, max_wall_ms=1 << 60))
    same = dataclasses.replace(step, head_hlc=event.hlc)
    assert list(
        bundle.read_events(same, [event.body], head_hash=ZERO_HASH, max_wall_ms=1 << 60)
    ) == [event]


def test_a_key_reached_through_the_manifests_rotation_verifies_the_exporters_head() -> None:
    made = v2(*ranges("hq"))
    rotation = {
        "site": "hq",
        "old_key_id": MALLORY.key_id,
        "new_key_id": HQ.key_id,
        "public_key": HQ.public_key.hex(),
    }
    signer = bundle_trust.Signer(key=None, key_id=HQ.key_id, followed_rotation=rotation)
    reached = bundle_trust.reached(signer, made)
    assert reached[HQ.key_id].public_key == HQ.public_key.hex() and reached[HQ.key_id].site == "hq"
    assert bundle_trust.reached(dataclasses.replace(signer, followed_rotation=None), made) == {}
    assert check(head(), trusted=reached).signer == HQ.key_id


def test_a_newer_format_is_refused_before_anything_else() -> None:
    with pytest.raises(BundleRefused, match="format 3"):
        bundle.parse(canonical.dump(v2(*ranges("hq")).to_json() | {"format": 3}))


def test_relay_only_holds_until_a_statement_this_site_trusts_covers_it() -> None:
    marks = {"hq": (5, "b1"), "branch": (3, "b2")}
    trusted = {HQ.key_id: row(HQ)}

    def left(heads: dict[str, statements.HeadStatement], keys_: dict[str, KeyView]) -> set[str]:
        return set(statements.relay_only(marks, heads, trusted=keys_, verify=keys.verify, now=NOW))

    signed = statements.parse_head(head())
    assert left({}, trusted) == {"hq", "branch"}  # no statement held
    assert left({"hq": statements.parse_head(head(seq=4, digest=H[4]))}, trusted) == marks.keys()
    assert left({"hq": signed}, {}) == {"hq", "branch"}  # a key of hq's not (yet) trusted
    assert left({"hq": statements.parse_head(head(key=MALLORY))}, trusted) == marks.keys()
    forged = canonical.decode(head())
    forged["signatures"][0]["sig"] = dsse._b64(bytes(64))
    assert left({"hq": statements.parse_head(canonical.dump(forged))}, trusted) == marks.keys()
    assert statements.relay_only(
        marks, {"hq": signed}, trusted=trusted, verify=keys.verify, now=NOW
    ) == {"branch": (3, "b2")}


def test_an_import_records_relay_only_for_the_ranges_it_applies() -> None:
    spans = ranges("hq", "branch")
    made = v2(*spans)
    steps = [Step(range=r, action="apply", after_seq=0) for r in spans]
    (receipt,) = sync.import_records(
        made, steps, {}, ACTOR, events=10, reason="on b's word", relay_only={"branch", "gone"}
    )
    assert receipt.payload["relay_only"] == {"branch": 5}
    (plain,) = sync.import_records(made, steps, {}, ACTOR, events=10)
    assert "relay_only" not in plain.payload
