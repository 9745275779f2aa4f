"""seal_batch: the ledger's way to seal many drafts equals sealing them one by one."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sealed import ACTOR, BASE_MS, ORIGIN, PROPERTY

from orchd.core import chain, events, hlc, ids
from orchd.errors import BadInput, MalformedEvent


def drafts(count: int) -> list[events.Draft]:
    return [
        events.Draft(
            type="job.transitioned",
            actor=ACTOR,
            idempotency_key=f"k{n}",
            payload={"n": n, "text": 'é"\\'},
        )
        for n in range(count)
    ]


@PROPERTY
@given(count=st.integers(min_value=0, max_value=20), logical=st.integers(0, 999_990))
def test_a_batch_equals_sealing_one_at_a_time(count: int, logical: int) -> None:
    start = hlc.Hlc(wall_ms=BASE_MS, logical=logical)
    entropy = bytes(range(256))[: ids.ENTROPY_BYTES] * count
    batch = events.seal_batch(
        drafts(count),
        origin=ORIGIN,
        after=(0, events.ZERO_HASH),
        clock=start,
        now_ms=BASE_MS,
        entropy=entropy,
    )
    clock, prev = start, events.ZERO_HASH
    for index, (draft, event) in enumerate(zip(drafts(count), batch, strict=True)):
        clock = hlc.tick(clock, BASE_MS)
        single = events.seal(
            draft,
            event_id=ids.new_id(BASE_MS, entropy[index * 10 : index * 10 + 10]),
            origin=ORIGIN,
            seq=index + 1,
            clock=clock,
            occurred_at_ms=BASE_MS,
            prev_hash=prev,
        )
        assert event == single and event.body == single.body
        prev = single.hash
    assert chain.verify(ORIGIN, [_stored(e) for e in batch]).seq == count


def _stored(event: events.Event) -> chain.Stored:
    return chain.Stored(
        origin=event.origin,
        seq=event.seq,
        body=event.body,
        hash=event.hash,
        columns=chain.index_columns(event),
    )


@pytest.mark.parametrize(
    "placement",
    [
        {"origin": "Site-A"},
        {"origin": 'a","seq":9,"x":"'},
        {"after": (0, "AB" * 32)},
        {"after": (-1, events.ZERO_HASH)},
        {"after": (2**53 - 1, events.ZERO_HASH)},
    ],
)
def test_a_bad_placement_is_refused_before_sealing(placement: dict[str, object]) -> None:
    arguments = {
        "origin": ORIGIN,
        "after": (0, events.ZERO_HASH),
        "clock": hlc.ZERO,
        "now_ms": BASE_MS,
        "entropy": bytes(10),
    }
    with pytest.raises(BadInput):
        events.seal_batch(drafts(1), **{**arguments, **placement})  # type: ignore[arg-type]


def test_entropy_must_cover_every_draft() -> None:
    with pytest.raises(ValueError, match="entropy"):
        events.seal_batch(
            drafts(2),
            origin=ORIGIN,
            after=(0, events.ZERO_HASH),
            clock=hlc.ZERO,
            now_ms=BASE_MS,
            entropy=bytes(10),
        )


def test_a_batch_that_would_run_past_the_largest_seq_is_refused() -> None:
    def batch(count: int) -> list[events.Event]:
        after = (2**53 - 2, events.ZERO_HASH)
        entropy = bytes(ids.ENTROPY_BYTES * count)
        return events.seal_batch(
            drafts(count),
            origin=ORIGIN,
            after=after,
            clock=hlc.ZERO,
            now_ms=BASE_MS,
            entropy=entropy,
        )

    assert [event.seq for event in batch(1)] == [2**53 - 1]
    with pytest.raises(MalformedEvent, match=r"seq must be a positive integer up to 2\*\*53 - 1"):
        batch(2)
