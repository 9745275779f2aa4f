"""Instants are written one way (RFC 3339, UTC, milliseconds, Z) and read back exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sealed import PROPERTY

from orchd.core import timefmt
from orchd.errors import InvalidTime, UnreadableTime

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


NOW = 1_769_860_800_123  # 2026-01-31T12:00:00.123Z, a Saturday
BERLIN = ZoneInfo("Europe/Berlin")
AUCKLAND = ZoneInfo("Pacific/Auckland")  # UTC+13 in January: already the next day at noon UTC


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2026-01-31T12:00:00.123Z", 1_769_860_800_123),
        ("2026-01-31T12:00Z", 1_769_860_800_000),
        ("2026-01-31T13:00:00+01:00", 1_769_860_800_000),
        ("1970-01-01T00:00:00Z", 0),
        ("9999-12-31T23:59:59.999Z", timefmt.MAX_MS),
        (" 2026-01-31T12:00Z ", 1_769_860_800_000),
    ],
)
def test_an_operator_may_type_any_iso_instant_with_a_zone(text: str, ms: int) -> None:
    assert timefmt.parse_operator(text, NOW) == ms
    assert timefmt.parse_given(text) == ms  # what a request body may carry


@pytest.mark.parametrize(
    ("text", "zone", "expected"),
    [
        ("now", UTC, "2026-01-31T12:00:00.123Z"),
        ("NOW", BERLIN, "2026-01-31T12:00:00.123Z"),
        ("-90s", UTC, "2026-01-31T11:58:30.123Z"),
        ("-15m", UTC, "2026-01-31T11:45:00.123Z"),
        ("-2h", UTC, "2026-01-31T10:00:00.123Z"),
        ("-7d", UTC, "2026-01-24T12:00:00.123Z"),
        ("-2w", UTC, "2026-01-17T12:00:00.123Z"),
        ("-0h", UTC, "2026-01-31T12:00:00.123Z"),
        ("today", UTC, "2026-01-31T00:00:00.000Z"),
        ("Yesterday", UTC, "2026-01-30T00:00:00.000Z"),
        ("today", BERLIN, "2026-01-30T23:00:00.000Z"),  # local midnight
        ("today", AUCKLAND, "2026-01-31T11:00:00.000Z"),  # 1 February there
        ("yesterday", AUCKLAND, "2026-01-30T11:00:00.000Z"),
        ("2026-11-20", UTC, "2026-11-20T00:00:00.000Z"),  # a date: its midnight
        ("2026-11-20", BERLIN, "2026-11-19T23:00:00.000Z"),
        ("2026-07-20", BERLIN, "2026-07-19T22:00:00.000Z"),  # in summer time
        ("2026-11-20T08:00:00+05:30", BERLIN, "2026-11-20T02:30:00.000Z"),  # its own zone wins
    ],
)
def test_an_operator_may_type_a_date_a_word_or_a_time_ago(
    text: str, zone: tzinfo, expected: str
) -> None:
    assert timefmt.format_ms(timefmt.parse_operator(text, NOW, zone)) == expected


def test_a_time_finer_than_a_millisecond_is_rounded_toward_the_inside_of_its_window() -> None:
    text = "2026-01-31T12:00:00.0005Z"
    assert timefmt.parse_operator(text, NOW) == 1_769_860_800_001  # a start: up
    assert timefmt.parse_operator(text, NOW, upper=True) == 1_769_860_800_000  # an end: down
    assert timefmt.parse_given(text) == 1_769_860_800_001
    assert timefmt.parse_given(text, upper=True) == 1_769_860_800_000
    whole = "2026-01-31T12:00:00.001Z"  # a whole millisecond is as it is either way
    assert timefmt.parse_operator(whole, NOW) == timefmt.parse_operator(whole, NOW, upper=True)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("2026-01-31T12:00:00", "it has no zone"),  # refused rather than guessed
        ("tomorrow", ""),
        ("2h", ""),  # a time ago has its minus
        ("-2y", ""),
        ("-2.5h", ""),
        ("", ""),
        (None, ""),
        ("1969-12-31T23:59:59.999Z", "before 1970 or after 9999"),
        ("9999-12-31T23:59:59.999-01:00", "before 1970 or after 9999"),
        ("-99999999d", "before 1970 or after 9999"),
    ],
)
def test_an_unreadable_operator_time_is_refused_with_the_forms_it_may_take(
    text: object, why: str
) -> None:
    with pytest.raises(UnreadableTime) as caught:
        timefmt.parse_operator(text, NOW)  # type: ignore[arg-type]
    assert why in caught.value.message
    assert "RFC 3339" in (caught.value.hint_text or "") and "-2h" in (caught.value.hint_text or "")


@pytest.mark.parametrize("text", ["now", "-2h", "2026-11-20", None])
def test_a_request_carries_an_instant_with_its_zone_and_nothing_else(text: object) -> None:
    with pytest.raises(UnreadableTime):
        timefmt.parse_given(text)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "canonical"),
    [("2026-01-31T12:00:00.123Z", True), ("2026-01-31T12:00:00Z", False), ("queued", False)],
)
def test_only_the_one_written_form_is_canonical(text: str, canonical: bool) -> None:
    assert timefmt.is_canonical(text) is canonical
