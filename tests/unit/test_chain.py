"""Verifying a stored per-origin chain finds every kind of tampering at the right seq."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sealed import ORIGIN, OTHER_ORIGIN, PROPERTY, make_id, seal, stored

from orchd.core import chain, events
from orchd.errors import ChainBroken

LENGTH = 10
SEQS = st.integers(min_value=1, max_value=LENGTH)


def sealed_chain(length: int = LENGTH, origin: str = ORIGIN) -> list[events.Event]:
    """``length`` chained events; odd seqs name a job so the job_id column is exercised."""
    chained: list[events.Event] = []
    prev_hash = events.ZERO_HASH
    for seq in range(1, length + 1):
        payload = {"job_id": make_id(100 + seq), "n": seq} if seq % 2 else {"n": seq}
        event = seal("job.noted", payload, origin=origin, seq=seq, prev_hash=prev_hash)
        chained.append(event)
        prev_hash = event.hash
    return chained


def rows() -> list[chain.Stored]:
    return [stored(event) for event in sealed_chain()]


def hash_before(rows_: list[chain.Stored], seq: int) -> str:
    return events.ZERO_HASH if seq == 1 else rows_[seq - 2].hash


def forged(rows_: list[chain.Stored], seq: int) -> chain.Stored:
    """A correctly sealed event for ``seq`` that chains on the real event before it."""
    event = seal("job.forged", {"n": -seq}, seq=seq, prev_hash=hash_before(rows_, seq))
    return stored(event)


def broken_at(rows_: list[chain.Stored], start: chain.Head = chain.START) -> int:
    """The seq ChainBroken names when verifying ``rows_`` from ``start``."""
    with pytest.raises(ChainBroken) as caught:
        chain.verify(ORIGIN, rows_, start)
    assert caught.value.fields["origin"] == ORIGIN
    return caught.value.fields["seq"]


def put(rows_: list[chain.Stored], at_seq: int, row: chain.Stored) -> list[chain.Stored]:
    """``rows_`` with the row at ``at_seq`` replaced by ``row``."""
    changed = list(rows_)
    changed[at_seq - 1] = row
    return changed


def replace(rows_: list[chain.Stored], at_seq: int, **changes: object) -> list[chain.Stored]:
    """``rows_`` with some columns of the row at ``at_seq`` changed."""
    return put(rows_, at_seq, dataclasses.replace(rows_[at_seq - 1], **changes))


# --- the untouched chain ----------------------------------------------------------------------


def test_an_intact_chain_verifies_to_its_head():
    intact = rows()
    assert chain.verify(ORIGIN, intact) == chain.Head(seq=LENGTH, hash=intact[-1].hash)


def test_an_empty_chain_verifies_to_the_start():
    assert chain.verify(ORIGIN, []) == chain.START


def test_verification_can_resume_from_a_known_head():
    intact = rows()
    start = chain.Head(seq=4, hash=intact[3].hash)
    assert chain.verify(ORIGIN, intact[4:], start) == chain.Head(seq=LENGTH, hash=intact[-1].hash)


def test_resuming_from_a_wrong_head_is_refused():
    intact = rows()
    assert broken_at(intact[4:], chain.Head(seq=4, hash=intact[2].hash)) == 5


def test_the_chain_of_another_origin_is_refused_at_its_first_row():
    theirs = [stored(event) for event in sealed_chain(origin=OTHER_ORIGIN)]
    assert broken_at(theirs) == 1


# --- one kind of tampering per test, at a fixed seq -------------------------------------------


@pytest.mark.parametrize("k", [1, 5, LENGTH])
def test_an_edited_body_is_found_at_its_seq(k):
    original = rows()
    body = original[k - 1].body.replace(b'"n":', b'"m":')
    assert body != original[k - 1].body
    assert broken_at(replace(original, k, body=body)) == k


def rehashed_edit(rows_: list[chain.Stored], k: int) -> list[chain.Stored]:
    """An edit of seq k whose stored hash is recomputed, so the row itself is self-consistent."""
    body = rows_[k - 1].body.replace(b'"n":', b'"m":')
    return replace(rows_, k, body=body, hash=events.chain_hash(hash_before(rows_, k), body))


@pytest.mark.parametrize("k", [1, 5, LENGTH - 1])
def test_a_rehashed_edit_is_found_where_the_next_row_no_longer_chains_on_it(k):
    assert broken_at(rehashed_edit(rows(), k)) == k + 1


def test_a_rehashed_edit_of_the_last_row_shows_only_in_the_returned_head():
    original = rows()
    head = chain.verify(ORIGIN, rehashed_edit(original, LENGTH))
    assert head.seq == LENGTH
    assert head.hash != original[-1].hash


@pytest.mark.parametrize("k", [2, 5, LENGTH])
def test_a_duplicated_earlier_row_is_found_where_it_was_inserted(k):
    original = rows()
    tampered = [*original[: k - 1], original[k - 2], *original[k - 1 :]]
    assert broken_at(tampered) == k


@pytest.mark.parametrize("k", [1, 5, LENGTH])
def test_a_repeated_row_is_found_at_the_seq_after_it(k):
    original = rows()
    tampered = [*original[:k], original[k - 1], *original[k:]]
    assert broken_at(tampered) == k + 1


@pytest.mark.parametrize("k", [1, 5, LENGTH])
def test_a_naive_insertion_that_does_not_chain_is_found_at_its_seq(k):
    original = rows()
    # Sealed for seq k, but chained on the real seq k instead of on seq k - 1.
    extra = stored(seal("job.forged", {"n": -k}, seq=k, prev_hash=original[k - 1].hash))
    tampered = [*original[: k - 1], extra, *original[k - 1 :]]
    assert broken_at(tampered) == k


@pytest.mark.parametrize("k", [1, 5, LENGTH])
def test_a_forged_insertion_is_found_at_the_first_seq_it_displaces(k):
    original = rows()
    tampered = [*original[: k - 1], forged(original, k), *original[k - 1 :]]
    # The forged row is a valid seq k; the real seq k, now in the place of k + 1, is not.
    assert broken_at(tampered) == k + 1


@pytest.mark.parametrize("k", [1, 5, LENGTH - 1])
def test_a_forged_replacement_is_found_at_the_next_seq(k):
    original = rows()
    assert broken_at(put(original, k, forged(original, k))) == k + 1


@pytest.mark.parametrize("k", [1, 5, LENGTH])
def test_a_well_chained_event_that_skips_seqs_is_found_where_the_gap_starts(k):
    original = rows()
    skipper = seal("job.forged", {"n": -k}, seq=k + 2, prev_hash=hash_before(original, k))
    assert broken_at([*original[: k - 1], stored(skipper)]) == k


@pytest.mark.parametrize("k", [1, 5, LENGTH - 1])
def test_a_deleted_row_is_reported_at_its_seq(k):
    original = rows()
    assert broken_at(original[: k - 1] + original[k:]) == k


def test_deleting_the_last_row_shows_only_in_the_returned_head():
    original = rows()
    head = chain.verify(ORIGIN, original[:-1])
    assert head == chain.Head(seq=LENGTH - 1, hash=original[-2].hash)
    assert head != chain.Head(seq=LENGTH, hash=original[-1].hash)


@pytest.mark.parametrize(
    "column",
    ["event_id", "hlc", "occurred_at", "type", "idempotency_key", "prev_hash", "job_id"],
)
@pytest.mark.parametrize("k", [1, 4, LENGTH])
def test_a_changed_indexed_column_is_found_at_its_seq(column, k):
    original = rows()
    columns = {**original[k - 1].columns, column: "tampered"}
    assert broken_at(replace(original, k, columns=columns)) == k


@pytest.mark.parametrize("k", [1, 5, LENGTH])
def test_a_missing_indexed_column_is_found_at_its_seq(k):
    original = rows()
    columns = {name: value for name, value in original[k - 1].columns.items() if name != "hlc"}
    assert broken_at(replace(original, k, columns=columns)) == k


@pytest.mark.parametrize("k", [1, 5, LENGTH])
def test_a_wrong_stored_hash_is_found_at_its_seq(k):
    original = rows()
    assert broken_at(replace(original, k, hash="f" * 64)) == k


@pytest.mark.parametrize("k", [1, 5, LENGTH])
def test_a_body_stored_as_text_is_found_at_its_seq(k):
    original = rows()
    text = replace(original, k, body=original[k - 1].body.decode())
    with pytest.raises(ChainBroken, match="the stored body is str, not bytes"):
        chain.verify(ORIGIN, text)
    assert broken_at(text) == k


@pytest.mark.parametrize("k", [1, 5, LENGTH])
def test_a_wrong_stored_seq_or_origin_is_found_at_its_seq(k):
    original = rows()
    assert broken_at(replace(original, k, seq=k + 100)) == k
    assert broken_at(replace(original, k, origin=OTHER_ORIGIN)) == k


@pytest.mark.parametrize("k", [1, 5, LENGTH])
def test_an_event_of_another_origin_in_a_row_of_this_one_is_found(k):
    original = rows()
    chained_here = hash_before(original, k)
    theirs = seal("job.noted", {"n": k}, origin=OTHER_ORIGIN, seq=k, prev_hash=chained_here)
    row = dataclasses.replace(stored(theirs), origin=ORIGIN)
    assert broken_at(put(original, k, row)) == k


@pytest.mark.parametrize("k", [1, 5, LENGTH - 1])
def test_swapped_rows_are_found_at_the_first(k):
    original = rows()
    tampered = list(original)
    tampered[k - 1], tampered[k] = tampered[k], tampered[k - 1]
    assert broken_at(tampered) == k


# --- the same over random positions -----------------------------------------------------------


@PROPERTY
@given(k=SEQS, data=st.data())
def test_flipping_any_byte_of_any_body_is_found_at_its_seq(k, data):
    original = rows()
    body = original[k - 1].body
    index = data.draw(st.integers(min_value=0, max_value=len(body) - 1), label="byte")
    mask = data.draw(st.integers(min_value=1, max_value=255), label="mask")
    flipped = body[:index] + bytes([body[index] ^ mask]) + body[index + 1 :]
    assert broken_at(replace(original, k, body=flipped)) == k


TAMPERINGS = {
    "wrong-hash": lambda rows_, k: replace(rows_, k, hash="0" * 64),
    "column": lambda rows_, k: replace(rows_, k, columns={**rows_[k - 1].columns, "type": "x.y"}),
    "naive-duplicate": lambda rows_, k: [*rows_[: k - 1], rows_[k - 2], *rows_[k - 1 :]],
    "delete": lambda rows_, k: rows_[: k - 1] + rows_[k:],
}


@PROPERTY
@given(kind=st.sampled_from(sorted(TAMPERINGS)), k=st.integers(min_value=2, max_value=LENGTH - 1))
def test_each_tampering_at_a_random_seq_is_found_there(kind, k):
    assert broken_at(TAMPERINGS[kind](rows(), k)) == k


@PROPERTY
@given(k=SEQS)
def test_a_forged_insertion_at_a_random_seq_is_found_just_after_it(k):
    original = rows()
    tampered = [*original[: k - 1], forged(original, k), *original[k - 1 :]]
    assert broken_at(tampered) == k + 1
