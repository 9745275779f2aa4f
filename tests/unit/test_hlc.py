"""The hybrid logical clock never goes backwards, and its text form sorts like its value."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sealed import PROPERTY

from orchd.core import hlc
from orchd.errors import MalformedEvent

MAX_LOGICAL = 999_999
WALLS = st.integers(min_value=0, max_value=10**13 - 2)
STAMPS = st.builds(hlc.Hlc, WALLS, st.integers(min_value=0, max_value=MAX_LOGICAL))
ENCODABLE = st.builds(
    hlc.Hlc,
    st.integers(min_value=0, max_value=10**13 - 1),
    st.integers(min_value=0, max_value=MAX_LOGICAL),
)


# --- tick -------------------------------------------------------------------------------------


@PROPERTY
@given(start=STAMPS, walls=st.lists(WALLS, max_size=50))
def test_tick_strictly_increases_whatever_the_wall_clock_does(start, walls):
    last = start
    for now_ms in walls:
        stamp = hlc.tick(last, now_ms)
        assert stamp > last
        assert stamp.wall_ms >= now_ms
        assert 0 <= stamp.logical <= MAX_LOGICAL
        last = stamp


@PROPERTY
@given(start=STAMPS, now_ms=WALLS)
def test_tick_follows_a_wall_clock_that_moves_ahead(start, now_ms):
    stamp = hlc.tick(start, now_ms)
    if now_ms > start.wall_ms:
        assert stamp == hlc.Hlc(wall_ms=now_ms, logical=0)
    else:
        assert stamp.wall_ms in (start.wall_ms, start.wall_ms + 1)


def test_tick_with_a_stopped_clock_counts_logically():
    first = hlc.tick(hlc.ZERO, 5)
    assert [hlc.tick(first, 5), hlc.tick(first, 4)] == [hlc.Hlc(5, 1), hlc.Hlc(5, 1)]


def test_tick_carries_a_full_logical_counter_into_the_next_millisecond():
    assert hlc.tick(hlc.Hlc(wall_ms=7, logical=MAX_LOGICAL), 7) == hlc.Hlc(wall_ms=8, logical=0)
    assert hlc.tick(hlc.Hlc(wall_ms=8, logical=0), 8) == hlc.Hlc(wall_ms=8, logical=1)


def one_by_one(last: hlc.Hlc, now_ms: int, count: int) -> list[str]:
    texts = []
    for _ in range(count):
        last = hlc.tick(last, now_ms)
        texts.append(last.encode())
    return texts


@PROPERTY
@given(start=STAMPS, now_ms=WALLS, count=st.integers(min_value=0, max_value=40))
def test_ticks_give_what_tick_then_encode_give_one_by_one(start, now_ms, count):
    assert hlc.ticks(start, now_ms, count) == one_by_one(start, now_ms, count)


@pytest.mark.parametrize(
    ("start", "now_ms", "count"),
    [
        (hlc.Hlc(wall_ms=7, logical=MAX_LOGICAL - 2), 7, 5),  # carries into the next millisecond
        (hlc.Hlc(wall_ms=7, logical=MAX_LOGICAL), 3, 2),  # the wall clock is behind
        (hlc.Hlc(wall_ms=7, logical=4), 9, 3),  # the wall clock is ahead
    ],
)
def test_ticks_carry_as_tick_does(start, now_ms, count):
    assert hlc.ticks(start, now_ms, count) == one_by_one(start, now_ms, count)


@pytest.mark.parametrize(
    ("start", "now_ms", "count"),
    [
        (hlc.Hlc(wall_ms=10**13 - 1, logical=MAX_LOGICAL - 1), 0, 2),  # runs past 13 digits
        (hlc.Hlc(wall_ms=0, logical=0), 10**13, 1),  # a wall clock past 13 digits
        (hlc.Hlc(wall_ms=5, logical=-3), 5, 1),  # a counter below zero, as tick gives it
    ],
)
def test_ticks_refuse_what_has_no_text_form(start, now_ms, count):
    with pytest.raises(MalformedEvent, match="outside its text form"):
        one_by_one(start, now_ms, count)
    with pytest.raises(MalformedEvent, match="outside its text form"):
        hlc.ticks(start, now_ms, count)


# --- receive ----------------------------------------------------------------------------------


@PROPERTY
@given(last=STAMPS, remote=STAMPS, now_ms=WALLS)
def test_receive_is_greater_than_both_inputs(last, remote, now_ms):
    stamp = hlc.receive(last, remote, now_ms)
    assert stamp > last
    assert stamp > remote
    assert stamp.wall_ms >= now_ms
    assert 0 <= stamp.logical <= MAX_LOGICAL


@pytest.mark.parametrize(
    ("last", "remote", "now_ms", "expected"),
    [
        ((5, 3), (5, 9), 5, (5, 10)),  # same wall: one past the larger counter
        ((6, 3), (5, 9), 4, (6, 4)),  # local ahead
        ((5, 3), (6, 9), 4, (6, 10)),  # remote ahead
        ((5, 3), (6, 9), 7, (7, 0)),  # the wall clock ahead of both
        ((5, MAX_LOGICAL), (5, 1), 5, (6, 0)),  # counter full: next millisecond
    ],
)
def test_receive_examples(last, remote, now_ms, expected):
    assert hlc.receive(hlc.Hlc(*last), hlc.Hlc(*remote), now_ms) == hlc.Hlc(*expected)


# --- text form --------------------------------------------------------------------------------


@PROPERTY
@given(ENCODABLE)
def test_encode_then_parse_gives_the_value_back(stamp):
    text = stamp.encode()
    assert len(text) == 20
    assert hlc.parse(text) == stamp


@PROPERTY
@given(st.lists(ENCODABLE, min_size=2, max_size=20))
def test_encoded_stamps_sort_like_the_stamps(stamps):
    assert sorted(stamp.encode() for stamp in stamps) == [
        stamp.encode() for stamp in sorted(stamps)
    ]


def test_known_encoding():
    assert hlc.Hlc(wall_ms=1_769_860_800_123, logical=42).encode() == "1769860800123-000042"
    assert hlc.ZERO.encode() == "0000000000000-000000"


@pytest.mark.parametrize(
    "text",
    [
        "1769860800123-42",
        "769860800123-000042",
        "1769860800123000042",
        "1769860800123-0000042",
        "1769860800123_000042",
        " 1769860800123-000042",
        "1769860800123-000042\n",
        "-769860800123-000042",
        "",
        None,
        1769860800123,
    ],
)
def test_parse_refuses_other_forms(text):
    with pytest.raises(MalformedEvent):
        hlc.parse(text)


def test_parse_refuses_non_ascii_digits():
    arabic_indic = "\u0660" * 13 + "-" + "\u0660" * 6  # the digit zero in another script
    with pytest.raises(MalformedEvent):
        hlc.parse(arabic_indic)
