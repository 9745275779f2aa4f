"""Instants are written one way (RFC 3339, UTC, milliseconds, Z) and read back exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sealed import PROPERTY

from orchd.core import timefmt
from orchd.errors import InvalidTime

YEAR_1000_MS = -30_610_224_000_000  # 1000-01-01T00:00:00.000Z
YEAR_10000_MS = 253_402_300_800_000  # 10000-01-01T00:00:00.000Z


@PROPERTY
@given(st.integers(min_value=YEAR_1000_MS, max_value=YEAR_10000_MS - 1))
def test_format_then_parse_gives_the_milliseconds_back(ms):
    text = timefmt.format_ms(ms)
    assert len(text) == 24
    assert timefmt.parse_canonical(text) == ms


@PROPERTY
@given(
    st.integers(min_value=YEAR_1000_MS, max_value=YEAR_10000_MS - 1),
    st.integers(min_value=YEAR_1000_MS, max_value=YEAR_10000_MS - 1),
)
def test_formatted_instants_sort_like_the_milliseconds(first, second):
    assert (timefmt.format_ms(first) < timefmt.format_ms(second)) == (first < second)


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        (1_769_860_800_123, "2026-01-31T12:00:00.123Z"),
        (951_782_400_000, "2000-02-29T00:00:00.000Z"),
    ],
)
def test_known_instants(ms, text):
    assert timefmt.format_ms(ms) == text
    assert timefmt.parse_canonical(text) == ms


def test_aware_datetimes_convert_and_naive_ones_are_refused():
    at = datetime(2026, 1, 31, 13, 0, 0, 123_999, tzinfo=timezone(timedelta(hours=1)))
    assert timefmt.format_at(at) == "2026-01-31T12:00:00.123Z"
    assert timefmt.from_ms(timefmt.to_ms(at)) == at.replace(microsecond=123_000).astimezone(UTC)
    with pytest.raises(InvalidTime):
        timefmt.to_ms(datetime(2026, 1, 31))  # noqa: DTZ001  (naive: refused)


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-31T12:00:00Z",
        "2026-01-31T12:00:00.12Z",
        "2026-01-31T12:00:00.1234Z",
        "2026-01-31T12:00:00.123",
        "2026-01-31T12:00:00.123+00:00",
        "2026-01-31 12:00:00.123Z",
        "2026-01-31t12:00:00.123z",
        "2026-02-30T12:00:00.000Z",
        "2026-01-31T24:00:00.000Z",
        "2026-01-31T23:59:60.000Z",
        "0000-01-01T00:00:00.000Z",
        "\uff12026-01-31T12:00:00.000Z",
        " 2026-01-31T12:00:00.000Z",
        "",
        None,
        1_769_860_800_123,
    ],
)
def test_parse_refuses_every_other_form(text):
    for _ in range(2):  # remembered answers are only the good ones
        with pytest.raises(InvalidTime):
            timefmt.parse_canonical(text)


def test_parse_refuses_a_str_subclass_even_in_canonical_form():
    class Text(str):
        pass

    assert timefmt.parse_canonical("2026-01-31T12:00:00.123Z") == 1_769_860_800_123
    with pytest.raises(InvalidTime):
        timefmt.parse_canonical(Text("2026-01-31T12:00:00.123Z"))


def test_instants_before_year_1000_round_trip():
    ms = YEAR_1000_MS - 1
    assert timefmt.parse_canonical(timefmt.format_ms(ms)) == ms


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2026-01-31T12:00:00.123Z", 1_769_860_800_123),
        ("2026-01-31T12:00Z", 1_769_860_800_000),
        ("2026-01-31T13:00:00+01:00", 1_769_860_800_000),
        ("1970-01-01T00:00:00Z", 0),
        ("9999-12-31T23:59:59.999Z", timefmt.MAX_MS),
    ],
)
def test_an_operator_may_type_any_iso_instant_with_a_zone(text: str, ms: int) -> None:
    assert timefmt.parse_operator(text) == ms


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-31T12:00:00",  # no zone: refused rather than guessed
        "yesterday",
        "",
        None,
        "1969-12-31T23:59:59.999Z",  # before the epoch
        "9999-12-31T23:59:59.999-01:00",  # past the last instant the text form holds
    ],
)
def test_an_operator_instant_without_a_zone_or_out_of_range_is_refused(text: object) -> None:
    with pytest.raises(InvalidTime):
        timefmt.parse_operator(text)  # type: ignore[arg-type]
