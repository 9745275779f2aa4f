"""The event envelope: golden bytes and hashes, seal/parse round trip, what parse refuses."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sealed import ACTOR, PROPERTY, make_id, seal

from orchd.core import canonical, events, hlc
from orchd.errors import InvalidName, MalformedEvent, NotCanonical, OrchdError

GOLDEN_DRAFT = events.Draft(
    type="job.submitted",
    actor=events.Actor(uid=1000, user="alice", scopes=("orch:operate", "orch:read")),
    idempotency_key="req-0001",
    payload={
        "state": "queued",
        "priority": 5,
        "params": {"note": "na\u00efve \u2603", "city": "Z\u00fcrich"},
        "key": "req-0001",
        "job_type": "backup",
        "job_id": "01KG9Z3B7X0000000000000001",
    },
    reason="nightly backup \u2014 caf\u00e9",
    ticket="SEC-1234",
)
GOLDEN_PLACEMENT = {
    "event_id": "01KG9Z3B7X0000000000000000",
    "origin": "site-a",
    "seq": 1,
    "clock": hlc.Hlc(wall_ms=1_769_860_800_123, logical=7),
    "occurred_at_ms": 1_769_860_800_123,
    "prev_hash": events.ZERO_HASH,
}
# Checked by hand: keys sorted by code point at every level, no whitespace outside strings,
# UTF-8 without escapes (u-umlaut C3 BC, i-diaeresis C3 AF, snowman E2 98 83, em dash E2 80 94,
# e-acute C3 A9), the hlc as 13 + 6 digits, occurred_at as RFC 3339 UTC with milliseconds.
GOLDEN_BODY = (
    b'{"actor":{"scopes":["orch:operate","orch:read"],"uid":1000,"user":"alice"},'
    b'"event_id":"01KG9Z3B7X0000000000000000",'
    b'"hlc":"1769860800123-000007",'
    b'"idempotency_key":"req-0001",'
    b'"occurred_at":"2026-01-31T12:00:00.123Z",'
    b'"origin":"site-a",'
    b'"payload":{"job_id":"01KG9Z3B7X0000000000000001","job_type":"backup","key":"req-0001",'
    b'"params":{"city":"Z\xc3\xbcrich","note":"na\xc3\xafve \xe2\x98\x83"},'
    b'"priority":5,"state":"queued"},'
    b'"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000",'
    b'"reason":"nightly backup \xe2\x80\x94 caf\xc3\xa9",'
    b'"schema":1,'
    b'"seq":1,'
    b'"ticket":"SEC-1234",'
    b'"type":"job.submitted"}'
)
GOLDEN_HASH = "2c81ed13f12b688c0a60db2edd51b5c276c14e2f7554055c9eb0dee3faa315ab"

# The second event of the chain: its prev_hash enters the hash as 32 raw bytes, not as hex text.
NEXT_DRAFT = events.Draft(
    type="job.transitioned",
    actor=events.Actor(uid=0, user="root", scopes=()),
    idempotency_key="req-0002",
    payload={"job_id": "01KG9Z3B7X0000000000000001", "from": "queued", "to": "cancelled"},
)
NEXT_BODY = (
    b'{"actor":{"scopes":[],"uid":0,"user":"root"},'
    b'"event_id":"01KG9Z3B7X0000000000000002",'
    b'"hlc":"1769860800123-000008",'
    b'"idempotency_key":"req-0002",'
    b'"occurred_at":"2026-01-31T12:00:00.000Z",'
    b'"origin":"site-a",'
    b'"payload":{"from":"queued","job_id":"01KG9Z3B7X0000000000000001","to":"cancelled"},'
    b'"prev_hash":"2c81ed13f12b688c0a60db2edd51b5c276c14e2f7554055c9eb0dee3faa315ab",'
    b'"schema":1,'
    b'"seq":2,'
    b'"type":"job.transitioned"}'
)
NEXT_HASH = "9b8fae7ad49116fb28df02c4bb530263415064570ef0c16ef2bcff62e9d725f7"


def golden() -> events.Event:
    return events.seal(GOLDEN_DRAFT, **GOLDEN_PLACEMENT)


def next_after_golden() -> events.Event:
    return events.seal(
        NEXT_DRAFT,
        event_id="01KG9Z3B7X0000000000000002",
        origin="site-a",
        seq=2,
        clock=hlc.Hlc(wall_ms=1_769_860_800_123, logical=8),
        occurred_at_ms=1_769_860_800_000,
        prev_hash=GOLDEN_HASH,
    )


# --- golden vectors ---------------------------------------------------------------------------


def test_golden_vector_body_is_byte_exact():
    assert golden().body == GOLDEN_BODY


def test_golden_vector_hash_is_exact():
    assert golden().hash == GOLDEN_HASH


def test_golden_hash_is_sha256_of_32_zero_bytes_then_body():
    assert hashlib.sha256(bytes(32) + GOLDEN_BODY).hexdigest() == GOLDEN_HASH
    assert events.chain_hash(events.ZERO_HASH, GOLDEN_BODY) == GOLDEN_HASH


def test_golden_body_is_canonical_json():
    assert canonical.encode(canonical.decode(GOLDEN_BODY)) == GOLDEN_BODY


def test_next_vector_chains_on_the_raw_bytes_of_prev_hash():
    sealed = next_after_golden()
    assert sealed.body == NEXT_BODY
    assert sealed.hash == NEXT_HASH
    assert hashlib.sha256(bytes.fromhex(GOLDEN_HASH) + NEXT_BODY).hexdigest() == NEXT_HASH


def test_golden_body_parses_to_the_sealed_event():
    parsed = events.parse(GOLDEN_BODY, GOLDEN_HASH)
    assert parsed == golden()
    assert parsed.payload["params"]["city"] == "Z\u00fcrich"
    assert parsed.reason == "nightly backup \u2014 caf\u00e9"


# --- seal and parse ---------------------------------------------------------------------------

PAYLOADS = st.dictionaries(
    st.text(max_size=8),
    st.text(max_size=8) | st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1),
    max_size=5,
)


@PROPERTY
@given(
    payload=PAYLOADS,
    seq=st.integers(min_value=1, max_value=2**53 - 1),
    wall_ms=st.integers(min_value=0, max_value=9_999_999_999_999),
    logical=st.integers(min_value=0, max_value=999_999),
    prev=st.binary(min_size=32, max_size=32),
)
def test_parse_of_a_sealed_body_gives_the_event_back(payload, seq, wall_ms, logical, prev):
    sealed = events.seal(
        events.Draft(type="job.noted", actor=ACTOR, idempotency_key="k-1", payload=payload),
        event_id=make_id(1),
        origin="site-a",
        seq=seq,
        clock=hlc.Hlc(wall_ms=wall_ms, logical=logical),
        occurred_at_ms=wall_ms,
        prev_hash=prev.hex(),
    )
    assert events.parse(sealed.body, sealed.hash) == sealed
    assert sealed.hash == hashlib.sha256(prev + sealed.body).hexdigest()


def test_parse_recomputes_the_hash_without_a_stored_one():
    assert events.parse(GOLDEN_BODY).hash == GOLDEN_HASH


def test_parse_refuses_a_stored_hash_that_does_not_match():
    with pytest.raises(MalformedEvent, match="stored hash"):
        events.parse(GOLDEN_BODY, NEXT_HASH)


def edited(**changes: object) -> bytes:
    """The golden envelope with fields replaced (a value of None removes the field)."""
    fields = canonical.decode(GOLDEN_BODY)
    for name, value in changes.items():
        if value is None:
            del fields[name]
        else:
            fields[name] = value
    return canonical.encode(fields)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(edited(actor=None), id="missing-actor"),
        pytest.param(edited(payload=None), id="missing-payload"),
        pytest.param(edited(extra="x"), id="unknown-field"),
        pytest.param(edited(schema=2), id="newer-schema"),
        pytest.param(edited(seq=0), id="seq-zero"),
        pytest.param(edited(seq="1"), id="seq-string"),
        pytest.param(edited(event_id="01kg9z3b7x0000000000000000"), id="lower-case-event-id"),
        pytest.param(edited(origin="Site-A"), id="bad-origin"),
        pytest.param(edited(hlc="1769860800123-7"), id="short-hlc"),
        pytest.param(edited(occurred_at="2026-01-31T12:00:00Z"), id="no-milliseconds"),
        pytest.param(edited(type="submitted"), id="undotted-type"),
        pytest.param(edited(idempotency_key=" k"), id="bad-idempotency-key"),
        pytest.param(edited(prev_hash="0" * 63), id="short-prev-hash"),
        pytest.param(edited(prev_hash="A" * 64), id="upper-case-prev-hash"),
        pytest.param(edited(payload=["not", "an", "object"]), id="payload-list"),
        pytest.param(edited(reason="two\nlines"), id="reason-two-lines"),
        pytest.param(edited(ticket="has space"), id="bad-ticket"),
        pytest.param(
            edited(actor={"scopes": ["b", "a"], "uid": 1, "user": "u"}), id="unsorted-scopes"
        ),
        pytest.param(
            edited(actor={"scopes": ["a", "a"], "uid": 1, "user": "u"}), id="repeated-scope"
        ),
        pytest.param(edited(actor={"scopes": "a", "uid": 1, "user": "u"}), id="scopes-string"),
        pytest.param(
            edited(actor={"scopes": [1, "a"], "uid": 1, "user": "u"}), id="scopes-number-and-text"
        ),
        pytest.param(edited(actor={"scopes": [[1]], "uid": 1, "user": "u"}), id="scopes-list"),
        pytest.param(edited(actor={"scopes": [{}], "uid": 1, "user": "u"}), id="scopes-object"),
        pytest.param(edited(actor={"scopes": [1], "uid": 1, "user": "u"}), id="scopes-number"),
        pytest.param(edited(actor={"scopes": [], "uid": 1, "user": 7}), id="user-number"),
        pytest.param(edited(actor={"scopes": [], "uid": -1, "user": "u"}), id="negative-uid"),
        pytest.param(
            edited(actor={"scopes": [], "uid": 1, "user": "u", "x": "y"}), id="actor-extra-key"
        ),
        pytest.param(GOLDEN_BODY.replace(b'"seq":1', b'"seq": 1'), id="non-canonical"),
        pytest.param(b"[]", id="not-an-object"),
        pytest.param(b"\xff", id="not-utf8"),
    ],
)
def test_parse_refuses_malformed_envelopes(body):
    with pytest.raises(MalformedEvent):
        events.parse(body)


def test_the_golden_edits_themselves_are_canonical():
    body = edited(schema=2)
    assert canonical.decode(body)["schema"] == 2
    with pytest.raises(MalformedEvent, match="upgrade orchd"):
        events.parse(body)


# --- seal refuses drafts that parse would refuse ----------------------------------------------


def draft(**changes: object) -> events.Draft:
    fields = {"type": "job.noted", "actor": ACTOR, "idempotency_key": "k-1", "payload": {}}
    return events.Draft(**{**fields, **changes})


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        pytest.param(draft(type="Job.Noted"), InvalidName, id="type"),
        pytest.param(draft(idempotency_key="-starts-with-dash"), InvalidName, id="key"),
        pytest.param(draft(reason=" padded "), InvalidName, id="reason"),
        pytest.param(draft(reason=""), InvalidName, id="empty-reason"),
        pytest.param(draft(ticket="no spaces please"), InvalidName, id="ticket"),
        pytest.param(draft(payload={"x": 1.5}), NotCanonical, id="float-payload"),
        pytest.param(draft(payload={"x": None}), NotCanonical, id="null-payload"),
        pytest.param(draft(payload={"x": 2**53}), NotCanonical, id="big-int-payload"),
    ],
)
def test_seal_refuses_bad_drafts(bad, error):
    with pytest.raises(error):
        seal_draft(bad)


def seal_draft(bad: events.Draft) -> events.Event:
    return events.seal(
        bad,
        event_id=make_id(1),
        origin="site-a",
        seq=1,
        clock=hlc.Hlc(wall_ms=1, logical=0),
        occurred_at_ms=1,
        prev_hash=events.ZERO_HASH,
    )


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: events.Actor(uid=-1, user="u", scopes=()), id="negative-uid"),
        pytest.param(lambda: events.Actor(uid=True, user="u", scopes=()), id="bool-uid"),
        pytest.param(lambda: events.Actor(uid=1, user="", scopes=()), id="empty-user"),
        pytest.param(lambda: events.Actor(uid=1, user="u", scopes=("b", "a")), id="unsorted"),
        pytest.param(lambda: events.Actor(uid=1, user="u", scopes=["a"]), id="list-scopes"),
        pytest.param(lambda: events.Actor(uid=1, user="u", scopes=("A",)), id="bad-scope"),
    ],
)
def test_actor_refuses_bad_fields(make):
    with pytest.raises(OrchdError):
        make()


def test_seal_refuses_an_actor_uid_beyond_the_safe_integers():
    big_uid = draft(actor=events.Actor(uid=2**53, user="u", scopes=()))
    with pytest.raises(NotCanonical):
        seal_draft(big_uid)


GOOD_PLACEMENT = {
    "event_id": "01KG9Z3B7X0000000000000000",
    "origin": "site-a",
    "seq": 1,
    "clock": hlc.Hlc(wall_ms=1, logical=0),
    "occurred_at_ms": 1,
    "prev_hash": events.ZERO_HASH,
}


@pytest.mark.parametrize("seq", [0, -1, True, "1"])
def test_seal_refuses_a_seq_that_is_not_a_positive_integer(seq):
    with pytest.raises(MalformedEvent):
        events.seal(draft(), **{**GOOD_PLACEMENT, "seq": seq})


def test_seal_refuses_a_seq_beyond_the_safe_integers():
    with pytest.raises(OrchdError):
        events.seal(draft(), **{**GOOD_PLACEMENT, "seq": 2**53})


def test_seal_refuses_an_origin_that_would_break_the_body():
    with pytest.raises(OrchdError):
        events.seal(draft(), **{**GOOD_PLACEMENT, "origin": 'site-a","seq":2,"x":"'})


@pytest.mark.parametrize(
    "placement",
    [
        pytest.param({"event_id": "not-an-id"}, id="event-id"),
        pytest.param({"origin": "Site-A"}, id="origin"),
        pytest.param({"prev_hash": "AB" * 32}, id="upper-case-prev-hash"),
        pytest.param({"clock": hlc.Hlc(wall_ms=10**13, logical=0)}, id="hlc-14-digits"),
    ],
)
def test_seal_refuses_placements_that_parse_would_refuse(placement):
    with pytest.raises(OrchdError):
        events.seal(draft(), **{**GOOD_PLACEMENT, **placement})


NAMES = st.from_regex(r"[a-z][a-z0-9_-]{0,6}", fullmatch=True)
REASONS = st.text(min_size=1, max_size=20).filter(lambda s: s.isprintable() and s.strip() == s)
TICKETS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:#/-]{0,10}", fullmatch=True)


@PROPERTY
@given(
    payload=PAYLOADS,
    reason=st.none() | REASONS,
    ticket=st.none() | TICKETS,
    scopes=st.lists(NAMES, unique=True, max_size=3).map(sorted).map(tuple),
    uid=st.integers(min_value=0, max_value=2**53 - 1),
)
def test_sealed_body_is_the_canonical_encoding_of_the_envelope(
    payload, reason, ticket, scopes, uid
):
    the_draft = draft(
        actor=events.Actor(uid=uid, user="u", scopes=scopes),
        payload=payload,
        reason=reason,
        ticket=ticket,
    )
    sealed = events.seal(the_draft, **GOOD_PLACEMENT)
    assert sealed.body == canonical.encode(events.envelope(the_draft, **GOOD_PLACEMENT))
    assert events.parse(sealed.body, sealed.hash) == sealed


def test_the_shared_helper_seals_parseable_events():
    sealed = seal("job.noted", {"job_id": make_id(9)}, seq=3)
    assert (sealed.origin, sealed.seq, sealed.type) == ("site-a", 3, "job.noted")
    assert events.parse(sealed.body, sealed.hash) == sealed


def test_the_envelope_table_names_every_field_an_event_carries():
    assert [f.name for f in events.ENVELOPE] == [
        name for name in events.Event._fields if name not in ("body", "hash")
    ]


def test_the_body_is_written_in_canonical_order_whatever_the_tables_order(monkeypatch):
    sealed = events.seal(GOLDEN_DRAFT, **GOLDEN_PLACEMENT)
    monkeypatch.setattr(events, "ENVELOPE", tuple(reversed(events.ENVELOPE)))
    both = events._body_writer(frozenset({"reason", "ticket"}))  # drawn from the reversed table
    monkeypatch.setitem(events._BODIES, (True, True), both)

    assert events.seal(GOLDEN_DRAFT, **GOLDEN_PLACEMENT).body == sealed.body == GOLDEN_BODY


def test_an_event_crosses_to_another_process_field_by_field():
    sealed = events.seal(GOLDEN_DRAFT, **GOLDEN_PLACEMENT)
    wire = events.to_wire(sealed)

    assert events.from_wire(wire) == sealed
    assert wire[events.Event._fields.index("actor") : events.Event._fields.index("actor") + 3] == (
        1000,
        "alice",
        ("orch:operate", "orch:read"),
    )
