"""Sortable ids: they sort by time, then entropy, and give back the time they were made with."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sealed import PROPERTY

from orchd.core import ids
from orchd.errors import InvalidName

MAX_MS = 2**48 - 1
TIMES = st.integers(min_value=0, max_value=MAX_MS)
ENTROPY = st.binary(min_size=10, max_size=10)
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def as_number(value: str) -> int:
    """The 130-bit number a Crockford base32 string spells (written here, not taken from ids)."""
    number = 0
    for char in value:
        number = number * 32 + CROCKFORD.index(char)
    return number


@pytest.mark.parametrize(
    ("at_ms", "entropy", "expected"),
    [
        (0, bytes(10), "0" * 26),
        (MAX_MS, b"\xff" * 10, "7" + "Z" * 25),
        (1, bytes(10), "0" * 9 + "1" + "0" * 16),  # the time ends 80 bits = 16 characters in
        (0, bytes(9) + b"\x1f", "0" * 25 + "Z"),
        (0, bytes(9) + b"\x20", "0" * 24 + "10"),
        (32, bytes(10), "0" * 8 + "10" + "0" * 16),
    ],
)
def test_known_ids(at_ms, entropy, expected):
    assert ids.new_id(at_ms, entropy) == expected


@PROPERTY
@given(TIMES, ENTROPY)
def test_an_id_spells_time_then_entropy_and_gives_its_time_back(at_ms, entropy):
    value = ids.new_id(at_ms, entropy)
    assert ids.is_id(value)
    assert as_number(value) == (at_ms << 80) | int.from_bytes(entropy, "big")
    assert ids.id_time_ms(value) == at_ms


@PROPERTY
@given(TIMES, ENTROPY, TIMES, ENTROPY)
def test_ids_sort_by_time_then_entropy(first_ms, first_entropy, second_ms, second_entropy):
    first = ids.new_id(first_ms, first_entropy)
    second = ids.new_id(second_ms, second_entropy)
    assert (first < second) == ((first_ms, first_entropy) < (second_ms, second_entropy))
    assert (first == second) == ((first_ms, first_entropy) == (second_ms, second_entropy))


@PROPERTY
@given(TIMES, st.lists(ENTROPY, max_size=12))
def test_new_ids_make_one_id_per_ten_bytes_as_new_id_does(at_ms, entropies):
    assert ids.new_ids(at_ms, b"".join(entropies)) == [ids.new_id(at_ms, e) for e in entropies]


@pytest.mark.parametrize("length", [1, 9, 11, 25])
def test_new_ids_refuse_entropy_that_is_not_ten_bytes_per_id(length):
    with pytest.raises(ValueError, match="entropy"):
        ids.new_ids(0, bytes(length))


@pytest.mark.parametrize("length", [0, 9, 11, 16])
def test_new_id_refuses_entropy_of_another_length(length):
    with pytest.raises(ValueError, match="entropy"):
        ids.new_id(0, bytes(length))


@pytest.mark.parametrize("at_ms", [-1, MAX_MS + 1])
def test_new_id_refuses_times_outside_48_bits(at_ms):
    with pytest.raises(ValueError, match="outside"):
        ids.new_id(at_ms, bytes(10))


VALID = "01KG9Z3B7X0000000000000000"


@pytest.mark.parametrize(
    "value",
    [
        VALID.lower(),
        VALID[:-1],
        VALID + "0",
        "8" + VALID[1:],  # a 131st bit
        VALID[:-1] + "I",
        VALID[:-1] + "L",
        VALID[:-1] + "O",
        VALID[:-1] + "U",
        VALID[:-1] + "-",
        VALID + "\n",
        VALID[:-1] + "\u0660",  # a digit, but not an ASCII one
        "",
        None,
        12345,
    ],
)
def test_bad_id_strings_are_refused(value):
    assert not ids.is_id(value)
    with pytest.raises(InvalidName):
        ids.check_id(value)
    with pytest.raises(InvalidName):
        ids.id_time_ms(value)


def test_check_id_names_what_it_checked():
    with pytest.raises(InvalidName) as caught:
        ids.check_id("nope", "run id")
    assert caught.value.fields["what"] == "run id"
    assert ids.check_id(VALID) == VALID


def test_the_short_form_is_the_last_eight_characters_its_entropy_alone() -> None:
    made = [ids.new_id(1_800_000_000_000, bytes([n]) * 10) for n in range(3)]
    assert [ids.short(i) for i in made] == [i[-8:] for i in made]
    assert len({ids.short(i) for i in made}) == 3  # one millisecond, three short forms
    assert len({i[: ids.MIN_PREFIX + 4] for i in made}) == 1  # and one time prefix


@pytest.mark.parametrize(
    ("typed", "read"),
    [("01kbx7", "01KBX7"), ("za1b2c3d", "ZA1B2C3D"), ("I1LO0o", "111000"), ("", "")],
)
def test_what_an_operator_types_is_read_by_crockfords_rules(typed: str, read: str) -> None:
    assert ids.typed(typed) == read


@pytest.mark.parametrize(
    ("text", "could"),
    [("01KB", True), ("ZA1B", True), ("U1", False), ("", False), ("01-KB", False)],
)
def test_only_id_characters_could_be_part_of_an_id(text: str, could: bool) -> None:
    assert ids.could_be(text) is could
