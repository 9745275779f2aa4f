"""The pure half of bundles: manifests read strictly, the import plan, the per-event checks."""

from __future__ import annotations

import dataclasses

import pytest

from orchd.core import bundle, canonical, dsse
from orchd.core.bundle import Manifest, Member, Range, Step
from orchd.core.events import ZERO_HASH
from orchd.errors import (
    BundleMalformed,
    BundleRefused,
    ChainFork,
    ChainGap,
    MemberMismatch,
    SignatureInvalid,
)

H = {n: f"{n:064x}" for n in range(1, 20)}  # stand-in hashes


def manifest(*ranges: Range, recipient: str = "*", created: str = "2026-01-01T00:00:00.000Z"):  # type: ignore[no-untyped-def]
    members = tuple(
        Member(
            name=r.member, sha256="0" * 64, size=10, raw_size=100, records=r.to_seq - r.from_seq + 1
        )
        for r in ranges
    )
    return Manifest(
        format=1,
        bundle_id=bundle.bundle_id("hq", recipient, created, ranges),
        exporter="hq",
        recipient=recipient,
        created_at=created,
        expires_at="2027-01-01T00:00:00.000Z",
        kind="full",
        ranges=ranges,
        previous="",
        members=members,
    )


def span(origin: str, first: int, last: int) -> Range:
    return Range(
        origin=origin,
        from_seq=first,
        to_seq=last,
        prev_hash=ZERO_HASH if first == 1 else H[first - 1],
        last_hash=H[last],
        member=bundle.member_name(origin),
    )


# --- parsing ----------------------------------------------------------------------------------


def test_a_manifest_round_trips() -> None:
    made = manifest(span("hq", 1, 5), span("relay", 1, 2))
    assert bundle.parse(made.encode()) == made


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda v: v | {"extra": 1}, "unknown extra"),
        (lambda v: {k: x for k, x in v.items() if k != "kind"}, "lacks kind"),
        (lambda v: v | {"kind": "partial"}, "kind must be"),
        (lambda v: v | {"bundle_id": "0" * 32}, "bundle_id does not match"),
        (lambda v: v | {"exporter": "../etc"}, "site id"),
        (lambda v: v | {"expires_at": v["created_at"]}, "expires_at must be after"),
        (lambda v: v | {"ranges": list(reversed(v["ranges"]))}, "sorted by origin"),
        (lambda v: v | {"members": v["members"][:1]}, "exactly the ranges' members"),
    ],
)
def test_a_bad_manifest_is_refused_naming_what_is_wrong(change, message) -> None:  # type: ignore[no-untyped-def]
    value = manifest(span("hq", 1, 5), span("relay", 1, 2)).to_json()
    with pytest.raises(BundleMalformed, match=message):
        bundle.parse(canonical.dump(change(value)))


def test_a_manifest_must_be_canonical_json() -> None:
    text = manifest(span("hq", 1, 5)).encode().decode()
    with pytest.raises(BundleMalformed, match="canonical"):
        bundle.parse(text.replace(",", ", ", 1).encode())


def test_a_newer_format_is_refused_as_such() -> None:
    value = manifest(span("hq", 1, 5)).to_json() | {"format": 2}
    with pytest.raises(BundleRefused, match="format 2"):
        bundle.parse(canonical.dump(value))


def test_a_first_range_must_start_from_the_zero_hash() -> None:
    bad = dataclasses.replace(span("hq", 1, 5), prev_hash=H[3])
    with pytest.raises(BundleMalformed, match="64 zeros exactly when"):
        bundle.parse(canonical.dump(manifest(bad).to_json()))


# --- envelope checks --------------------------------------------------------------------------

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def test_recipient_origin_skew_and_expiry_are_checked() -> None:
    for made, message in [
        (manifest(span("hq", 1, 1), recipient="other"), "addressed to site 'other'"),
        (manifest(span("hq", 1, 1), created="2026-01-01T00:10:00.000Z"), "ahead of this site"),
    ]:
        with pytest.raises(BundleRefused, match=message):
            bundle.check_envelope(
                made, local="enclave", now_ms=NOW, skew_ms=300_000, allow_expired=False
            )
    late = NOW + 400 * 86_400_000
    with pytest.raises(BundleRefused, match="expired"):
        bundle.check_envelope(
            manifest(span("hq", 1, 1)),
            local="enclave",
            now_ms=late,
            skew_ms=300_000,
            allow_expired=False,
        )
    bundle.check_envelope(
        manifest(span("hq", 1, 1)),
        local="enclave",
        now_ms=late,
        skew_ms=300_000,
        allow_expired=True,
    )
    with pytest.raises(BundleRefused, match="this site itself"):
        bundle.check_envelope(
            manifest(span("hq", 1, 1)), local="hq", now_ms=NOW, skew_ms=300_000, allow_expired=False
        )


# --- the plan ---------------------------------------------------------------------------------


def plan(made: Manifest, heads: dict[str, tuple[int, str]], local: str = "enclave") -> list[Step]:
    hash_at = {(o, s): H[s] for o, (head, _) in heads.items() for s in range(1, head + 1)}
    return bundle.plan(made, local=local, heads=heads, hash_at=hash_at)


def test_a_new_origin_is_applied_from_the_start() -> None:
    [step] = plan(manifest(span("hq", 1, 5)), {})
    assert (step.action, step.after_seq) == ("apply", 0)


def test_an_overlap_applies_only_what_is_new() -> None:
    [step] = plan(manifest(span("hq", 1, 9)), {"hq": (5, H[5])})
    assert (step.action, step.after_seq) == ("apply", 5)


def test_a_range_held_already_is_skipped() -> None:
    [step] = plan(manifest(span("hq", 1, 5)), {"hq": (7, H[7])})
    assert step.action == "skip"


def test_a_gap_names_the_missing_seqs() -> None:
    with pytest.raises(ChainGap, match=r"seq 4\.\.5 are missing"):
        plan(manifest(span("hq", 6, 9)), {"hq": (3, H[3])})


def test_a_different_history_is_a_fork() -> None:
    made = manifest(dataclasses.replace(span("hq", 1, 5), last_hash=H[9]))
    with pytest.raises(ChainFork):
        plan(made, {"hq": (7, H[7])})


def test_a_site_never_takes_its_own_history_from_a_peer() -> None:
    with pytest.raises(BundleRefused, match="its own"):
        plan(manifest(span("enclave", 1, 9)), {"enclave": (4, H[4])})


# --- events of a member -----------------------------------------------------------------------


def test_events_out_of_their_range_are_refused() -> None:
    step = Step(range=span("hq", 1, 2), action="apply", after_seq=0)
    with pytest.raises(MemberMismatch, match="record 1"):
        list(bundle.read_events(step, [b"{}"], head_hash=ZERO_HASH, max_wall_ms=NOW))
    with pytest.raises(MemberMismatch, match="ends before its range"):
        list(bundle.read_events(step, [], head_hash=ZERO_HASH, max_wall_ms=NOW))


# --- DSSE -------------------------------------------------------------------------------------


def test_an_envelope_round_trips_and_is_read_strictly() -> None:
    sig = dsse.Signature(key_id="a" * 64, sig=b"s" * 64)
    envelope = dsse.Envelope(payload_type=dsse.MANIFEST_TYPE, payload=b"{}", signatures=(sig,))
    assert dsse.decode(envelope.encode(), payload_type=dsse.MANIFEST_TYPE) == envelope
    with pytest.raises(SignatureInvalid, match="payloadType"):
        dsse.decode(envelope.encode(), payload_type=dsse.ROTATION_TYPE)
    unsigned = dsse.Envelope(payload_type=dsse.MANIFEST_TYPE, payload=b"{}", signatures=())
    with pytest.raises(SignatureInvalid, match="1 to 4 signatures"):
        dsse.decode(unsigned.encode(), payload_type=dsse.MANIFEST_TYPE)
    short = dsse.Envelope(
        payload_type=dsse.MANIFEST_TYPE,
        payload=b"{}",
        signatures=(dsse.Signature(key_id="a" * 64, sig=b"s"),),
    )
    with pytest.raises(SignatureInvalid, match="64 bytes"):
        dsse.decode(short.encode(), payload_type=dsse.MANIFEST_TYPE)
