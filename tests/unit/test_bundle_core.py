"""The pure half of bundles: manifests read strictly, the import plan, the per-event checks."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sealed import BASE_MS, ORIGIN, seal

from orchd.core import bundle, canonical, dsse, sync
from orchd.core.bundle import Manifest, Member, Range, Step
from orchd.core.events import ZERO_HASH, Actor, Event
from orchd.errors import (
    BundleMalformed,
    BundleRefused,
    ChainFork,
    ChainGap,
    MemberMismatch,
    SignatureInvalid,
    StateConflict,
    TooManyOrigins,
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


def first(key: str, **changes: object):  # type: ignore[no-untyped-def]
    """A change to the manifest's value: ``changes`` made to the first entry of ``key``."""
    return lambda v: v | {key: [v[key][0] | changes, *v[key][1:]]}


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
        (lambda v: [v], "the manifest must be an object"),
        (lambda v: v | {"bundle_id": 7}, "bundle_id must be 32 lower-case hex digits"),
        (lambda v: v | {"previous": "b" * 31}, "previous must be a bundle id or empty"),
        (lambda v: v | {"rotation": 7}, "rotation must be a base64 DSSE envelope"),
        (lambda v: v | {"rotation": "A" * 8193}, "rotation must be a base64 DSSE envelope"),
        (lambda v: v | {"created_at": "2026-01-01"}, "created_at must be a UTC time like"),
        (lambda v: v | {"members": {}}, "members must be a list of at most 1000"),
        (lambda v: v | {"members": [v["members"][0]] * 2}, "a member is listed twice"),
        (first("members", size=0), "a member's size must be an integer from 1 to"),
        (first("members", sha256="F" * 64), "a member's sha256 must be 64 lower-case hex"),
        (first("members", records=4), "member events/hq.ndjson.zst must hold 5 records"),
        (lambda v: v | {"ranges": []}, "ranges must be a list of 1 to 1000"),
        (first("ranges", origin=7), "a range's origin must be a site id"),
        (first("ranges", origin="Hq"), "invalid site id 'Hq'"),
        (
            first("ranges", member="events/relay.ndjson.zst"),
            "the events member of hq must be events/hq",
        ),
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
    value = manifest(span("hq", 1, 5)).to_json() | {"format": 3}
    with pytest.raises(BundleRefused, match="format 3"):
        bundle.parse(canonical.dump(value))


def test_a_manifest_larger_than_its_limit_is_refused_unread() -> None:
    with pytest.raises(BundleMalformed, match="manifest: larger than 2097152 bytes"):
        bundle.parse(b" " * (bundle.MAX_MANIFEST + 1))


def test_a_member_is_found_by_name_and_one_not_listed_is_refused() -> None:
    made = manifest(span("hq", 1, 5), span("relay", 1, 2))
    assert made.member("events/relay.ndjson.zst").records == 2
    with pytest.raises(BundleMalformed, match=r"lists no member 'events/x\.ndjson\.zst'"):
        made.member("events/x.ndjson.zst")


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


# --- the signature envelope's limit -----------------------------------------------------------


def origins(count: int, name_chars: int = 8) -> tuple[Range, ...]:
    """``count`` origins named with ``name_chars`` characters each (aa, ab, ... padded with x)."""
    names = ((chr(97 + n // 26) + chr(97 + n % 26)).ljust(name_chars, "x") for n in range(count))
    return tuple(span(name, 1, 5) for name in names)


def test_the_envelope_size_is_that_of_the_envelope_a_signature_makes() -> None:
    made = manifest(*origins(3))
    signature = dsse.Signature(key_id="ab" * 32, sig=bytes(range(64)))
    signed = dsse.Envelope(
        payload_type=dsse.MANIFEST_TYPE, payload=made.encode(), signatures=(signature,)
    )
    assert bundle.envelope_size(made) == len(signed.encode())
    assert bundle.envelope_size(made, 2) == len(
        dataclasses.replace(signed, signatures=(signature, signature)).encode()
    )


@given(
    st.lists(
        st.tuples(
            st.integers(1, bundle.MAX_MEMBER_SIZE),
            st.integers(0, bundle.MAX_RAW_SIZE),
            st.integers(1, 10**12),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_the_bound_taken_before_compressing_covers_what_the_members_turn_out_to_be(
    sizes: list[tuple[int, int, int]],
) -> None:
    """Export checks the envelope of its largest possible manifest before it writes a byte;
    whatever the compressed members turn out to be, the real envelope is no larger."""
    ranges = tuple(
        span(f"s{n}", 1, 1)
        if records == 1
        else dataclasses.replace(span(f"s{n}", 1, 2), to_seq=records, last_hash=H[2])
        for n, (_, _, records) in enumerate(sizes)
    )
    real = tuple(
        Member(name=r.member, sha256="f" * 64, size=size, raw_size=raw, records=records)
        for r, (size, raw, records) in zip(ranges, sizes, strict=True)
    )
    bound = dataclasses.replace(manifest(*ranges), members=bundle.largest_members(ranges))
    assert [m.records for m in bound.members] == [records for _, _, records in sizes]
    actual = dataclasses.replace(bound, members=real)
    assert bundle.envelope_size(actual) <= bundle.envelope_size(bound)


@pytest.mark.parametrize("name_chars", [2, 8, 63])
def test_an_envelope_up_to_64_kib_is_signable_and_one_past_it_is_refused(name_chars: int) -> None:
    fits = max(
        n
        for n in range(1, 200)
        if bundle.envelope_size(manifest(*origins(n, name_chars))) <= bundle.MAX_SIGNATURE_FILE_1
    )
    assert 80 <= fits <= 130  # FORMAT.md 3.1 says so
    bundle.check_signable(manifest(*origins(fits, name_chars)))
    over = manifest(*origins(fits + 1, name_chars))
    with pytest.raises(TooManyOrigins) as refused:
        bundle.check_signable(over)
    size = bundle.envelope_size(over)
    assert refused.value.exit_code == 48
    assert refused.value.message == (
        f"{fits + 1} origins would need a {size}-byte signature envelope; format 1 allows 65536"
    )
    assert "export for a named peer" in (refused.value.hint_text or "")


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


def test_a_range_that_continues_another_hash_than_ours_is_a_fork() -> None:
    made = manifest(dataclasses.replace(span("hq", 6, 9), prev_hash=H[9]))
    with pytest.raises(ChainFork, match="seq 5 has another hash here"):
        plan(made, {"hq": (5, H[5])})


def test_the_plan_needs_our_hash_before_each_range_and_at_its_end() -> None:
    made = manifest(span("hq", 1, 5), span("relay", 3, 4))
    assert bundle.needed_hashes(made) == [("hq", 5), ("relay", 2), ("relay", 4)]


# --- events of a member -----------------------------------------------------------------------


def test_events_out_of_their_range_are_refused() -> None:
    step = Step(range=span("hq", 1, 2), action="apply", after_seq=0)
    with pytest.raises(MemberMismatch, match="record 1"):
        list(bundle.read_events(step, [b"{}"], head_hash=ZERO_HASH, max_wall_ms=NOW))
    with pytest.raises(MemberMismatch, match="ends before its range"):
        list(bundle.read_events(step, [], head_hash=ZERO_HASH, max_wall_ms=NOW))


def member_chain(length: int = 3) -> list[Event]:
    """``length`` chained events of ``ORIGIN``, seq 1 first."""
    chained: list[Event] = []
    for seq in range(1, length + 1):
        prev = chained[-1].hash if chained else ZERO_HASH
        chained.append(seal("job.noted", {"n": seq}, seq=seq, prev_hash=prev))
    return chained


def read(
    chained: list[Event], lines: list[bytes], *, after_seq: int = 0, **given: object
) -> list[Event]:
    """The events ``read_events`` yields of ``lines`` for a range 1..len(chained)."""
    whole = Range(
        origin=ORIGIN,
        from_seq=1,
        to_seq=len(chained),
        prev_hash=ZERO_HASH,
        last_hash=chained[-1].hash,
        member=bundle.member_name(ORIGIN),
    )
    step = Step(range=dataclasses.replace(whole, **given), action="apply", after_seq=after_seq)
    head_hash = chained[after_seq - 1].hash if after_seq else ZERO_HASH
    return list(bundle.read_events(step, lines, head_hash=head_hash, max_wall_ms=BASE_MS + 10**6))


def test_a_member_yields_only_the_events_past_those_held_here() -> None:
    chained = member_chain()
    found = read(chained, [e.body for e in chained], after_seq=1)
    assert [(e.seq, e.hash) for e in found] == [(2, chained[1].hash), (3, chained[2].hash)]


def test_a_member_with_more_records_than_its_range_is_refused() -> None:
    chained = member_chain()
    with pytest.raises(MemberMismatch, match="more records than its range"):
        read(chained[:2], [e.body for e in chained])


def test_a_record_of_another_seq_is_refused_naming_both() -> None:
    chained = member_chain()
    with pytest.raises(MemberMismatch, match=f"expected {ORIGIN}/1, found {ORIGIN}/2"):
        read(chained, [e.body for e in chained[1:]])


def test_a_record_that_does_not_chain_on_the_one_before_is_refused() -> None:
    chained = member_chain()
    stray = seal("job.noted", {"n": 2}, seq=2, prev_hash=ZERO_HASH)
    with pytest.raises(MemberMismatch, match="seq 2 does not follow the chain"):
        read(chained, [chained[0].body, stray.body, chained[2].body])


def test_a_record_with_a_clock_beyond_the_allowed_skew_is_refused() -> None:
    chained = member_chain()
    step = Step(range=span(ORIGIN, 1, 3), action="apply", after_seq=0)
    lines = [e.body for e in chained]
    with pytest.raises(BundleRefused, match=f"{ORIGIN}/2 carries clock {chained[1].hlc}, beyond"):
        list(bundle.read_events(step, lines, head_hash=ZERO_HASH, max_wall_ms=BASE_MS + 1000))


def test_a_record_held_here_with_another_hash_is_a_fork() -> None:
    chained = member_chain()
    step = Step(range=span(ORIGIN, 1, 3), action="apply", after_seq=1)
    lines = [e.body for e in chained]
    with pytest.raises(ChainFork, match="seq 1 has another hash here"):
        list(bundle.read_events(step, lines, head_hash=H[1], max_wall_ms=BASE_MS * 2))


def damaged(event: Event) -> bytes:
    """``event``'s bytes with its clock's first digit made 9: still an event, far in the future,
    its hash its own but no longer the one the chain signed."""
    return event.body.replace(event.hlc.encode(), b"9" + event.hlc[1:].encode())


@pytest.mark.parametrize("at", [0, 1, 2])
def test_a_damaged_record_is_refused_as_damage_never_as_a_clock_or_a_fork(at: int) -> None:
    """A flipped byte in a clock is found by the chain, before the clock or our hash is judged
    (found by the bit-flip test: such a bundle was refused as "beyond the allowed skew")."""
    chained = member_chain()
    lines = [e.body for e in chained]
    lines[at] = damaged(chained[at])
    detail = "off its last hash" if at == 2 else f"seq {at + 2} does not follow the chain"
    for after_seq in (0, at + 1):
        with pytest.raises(MemberMismatch, match=detail):
            read(chained, lines, after_seq=after_seq)


def test_a_member_that_ends_off_its_last_hash_is_refused() -> None:
    chained = member_chain()
    with pytest.raises(MemberMismatch, match="ends before its range or off its last hash"):
        read(chained, [e.body for e in chained], last_hash=H[3])


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


# --- sync: where an export for a peer starts, and the receipt ---------------------------------

HEADS = {"hq": (9, H[9]), "relay": (4, H[4]), "enclave": (6, H[6])}
ACTOR = Actor(uid=0, user="root", scopes=())


def test_a_full_export_starts_every_origin_at_1_but_the_recipients_own() -> None:
    starts = sync.export_starts(HEADS, None, "enclave", kept={}, ours={})
    assert starts == {"hq": (1, ZERO_HASH), "relay": (1, ZERO_HASH)}
    everything = sync.export_starts(HEADS, None, "*", kept={}, ours={})
    assert set(everything) == {"hq", "relay", "enclave"}


def test_a_pruned_origin_starts_after_its_checkpoint_and_is_left_out_when_nothing_follows() -> None:
    kept = {"hq": (5, H[5]), "relay": (4, H[4])}
    assert sync.export_starts(HEADS, None, "*", kept=kept, ours={}) == {
        "hq": (6, H[5]),
        "enclave": (1, ZERO_HASH),
    }


def test_an_incremental_export_starts_after_the_receipt() -> None:
    since = {"hq": (7, H[7]), "relay": (4, H[4]), "other": (3, H[3])}
    assert sync.acknowledged(HEADS, since) == [("hq", 7), ("relay", 4)]
    ours = {("hq", 7): H[7], ("relay", 4): H[4]}
    starts = sync.export_starts(HEADS, since, "enclave", kept={}, ours=ours)
    assert starts == {"hq": (8, H[7])}  # relay is held up to its head, enclave is the recipient


def test_an_origin_the_receipt_does_not_name_is_sent_whole() -> None:
    starts = sync.export_starts(HEADS, {"hq": (9, H[9])}, "enclave", kept={}, ours={})
    assert starts == {"relay": (1, ZERO_HASH)}


def test_an_incremental_export_is_refused_when_the_chains_differ() -> None:
    with pytest.raises(StateConflict, match="the chains differ"):
        sync.export_starts(HEADS, {"hq": (7, H[7])}, "enclave", kept={}, ours={("hq", 7): H[8]})


def test_an_incremental_export_is_refused_when_the_recipient_lacks_what_was_pruned() -> None:
    with pytest.raises(StateConflict, match="pruned it up to seq 5"):
        sync.export_starts(HEADS, {"hq": (3, H[3])}, "enclave", kept={"hq": (5, H[5])}, ours={})


def test_an_incremental_export_is_refused_when_nothing_is_left() -> None:
    since = {"hq": (9, H[9]), "relay": (4, H[4])}
    with pytest.raises(StateConflict, match="nothing to send"):
        sync.export_starts(HEADS, since, "enclave", kept={}, ours={})


def test_the_manifest_of_an_export_holds_its_ranges_up_to_each_head() -> None:
    ranges = sync.export_ranges(HEADS, {"relay": (1, ZERO_HASH), "hq": (8, H[7])}, 1)
    assert ranges == (span("hq", 8, 9), span("relay", 1, 4))
    plan = sync.Export(
        exporter="hq",
        recipient="enclave",
        now_ms=NOW,
        expires_in_ms=86_400_000,
        full=False,
        ranges=ranges,
        previous="b" * 32,
        rotation=None,
        format=bundle.FORMAT_1,
    )
    made = plan.manifest(bundle.largest_members(ranges))
    assert (made.kind, made.created_at, made.expires_at, made.previous) == (
        "incremental",
        "2026-01-01T00:00:00.000Z",
        "2026-01-02T00:00:00.000Z",
        "b" * 32,
    )
    assert made.bundle_id == bundle.bundle_id("hq", "enclave", made.created_at, ranges)
    assert dataclasses.replace(plan, full=True).manifest(()).kind == "full"
    record = sync.exported_record(ACTOR, made, sha256="f" * 64, size=123)
    assert record.idempotency_key == f"bundle.exported:{made.bundle_id}"
    assert record.payload == {
        "bundle_id": made.bundle_id,
        "recipient": "enclave",
        "kind": "incremental",
        "ranges": {"hq": [8, 9], "relay": [1, 4]},
        "sha256": "f" * 64,
        "size": 123,
    }


def test_the_receipt_holds_what_this_site_holds_after_the_import() -> None:
    made = manifest(span("hq", 1, 9), span("relay", 1, 4))
    held = {"hq": (5, H[5]), "relay": (4, H[4])}
    steps = bundle.plan(made, local="enclave", heads=held, hash_at={("relay", 4): H[4]})
    heads = {"hq": (5, H[5]), "relay": (4, H[4]), "enclave": (2, H[2])}
    (receipt,) = sync.import_records(made, steps, heads, ACTOR, events=4)
    assert receipt.type == "bundle.imported"
    assert receipt.idempotency_key == f"bundle.imported:{made.bundle_id}"
    assert receipt.payload == {
        "bundle_id": made.bundle_id,
        "exporter": "hq",
        "ranges": {"hq": [6, 9]},
        "events": 4,
        "watermarks": {"hq": [9, H[9]], "relay": [4, H[4]], "enclave": [2, H[2]]},
    }
    assert (receipt.reason, receipt.ticket) == (None, None)


def test_a_followed_rotation_is_recorded_before_the_receipt_and_an_override_with_it() -> None:
    made = manifest(span("hq", 1, 2))
    rotation = {"site": "hq", "old_key_id": "a" * 64, "new_key_id": "b" * 64}
    rotation["public_key"] = "c" * 64
    steps = bundle.plan(made, local="enclave", heads={}, hash_at={})
    trusted, receipt = sync.import_records(
        made, steps, {}, ACTOR, events=2, followed_rotation=rotation, reason="late", ticket="T-1"
    )
    assert trusted.type == "key.trusted"
    assert trusted.idempotency_key == f"key.trusted:{'b' * 64}:rotation"
    assert trusted.payload == {
        "site": "hq",
        "key_id": "b" * 64,
        "public_key": "c" * 64,
        "vouched_by": "a" * 64,  # revoking the old key revokes this one with it
    }
    assert trusted.reason == f"followed the rotation signed by key {'a' * 16}"
    assert (receipt.reason, receipt.ticket) == ("late", "T-1")
    assert receipt.payload["watermarks"] == {"hq": [2, H[2]]}
