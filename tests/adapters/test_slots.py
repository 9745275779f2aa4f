"""Schedule slots over APScheduler: exact instants, window edges, the limit, zones and DST days."""

from __future__ import annotations

from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from hypothesis import example, given, settings
from hypothesis import strategies as st

from orchd.adapters.slots import check_cron, count_slots, slot_key, slots
from orchd.core.names import check_name
from orchd.core.timefmt import format_at, format_ms, from_ms, parse_canonical
from orchd.errors import BadInput, InvalidName

PROPERTY = settings(derandomize=True, database=None, deadline=None)
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SPRING = "2026-03-28T01:00:00.000Z"  # a day before Europe's spring change


def ms(text: str) -> int:
    return parse_canonical(text)


def listed(expression: str, zone: str, after: str, until: str, limit: int = 1000) -> list[str]:
    return [format_ms(t) for t in slots(expression, zone, ms(after), ms(until), limit=limit)]


# --- exact instants ---------------------------------------------------------------------------


def test_hourly_in_utc():
    assert listed("0 * * * *", "UTC", "2026-01-31T10:00:00.000Z", "2026-01-31T13:00:00.000Z") == [
        "2026-01-31T11:00:00.000Z",
        "2026-01-31T12:00:00.000Z",
        "2026-01-31T13:00:00.000Z",
    ]


def test_every_quarter_hour():
    assert listed(
        "*/15 6 * * *", "UTC", "2026-01-31T06:20:00.000Z", "2026-02-01T06:15:00.000Z"
    ) == [
        "2026-01-31T06:30:00.000Z",
        "2026-01-31T06:45:00.000Z",
        "2026-02-01T06:00:00.000Z",
        "2026-02-01T06:15:00.000Z",
    ]


def test_daily_in_utc():
    assert listed("30 2 * * *", "UTC", "2026-01-30T00:00:00.000Z", "2026-02-02T00:00:00.000Z") == [
        "2026-01-30T02:30:00.000Z",
        "2026-01-31T02:30:00.000Z",
        "2026-02-01T02:30:00.000Z",
    ]


def test_weekdays_by_name():
    # 2026-01-05 is a Monday; 09:00 in Berlin is 08:00Z in winter.
    assert listed(
        "0 9 * * mon-fri", "Europe/Berlin", "2026-01-03T00:00:00.000Z", "2026-01-12T00:00:00.000Z"
    ) == [f"2026-01-{day:02d}T08:00:00.000Z" for day in range(5, 10)]


def test_weekend_list_and_upper_case_names():
    assert listed(
        "0 12 * * SAT,sun", "UTC", "2026-01-05T00:00:00.000Z", "2026-01-19T00:00:00.000Z"
    ) == [
        "2026-01-10T12:00:00.000Z",
        "2026-01-11T12:00:00.000Z",
        "2026-01-17T12:00:00.000Z",
        "2026-01-18T12:00:00.000Z",
    ]


def test_last_day_of_month_and_month_names():
    assert listed(
        "0 0 last jan-mar *", "UTC", "2028-01-01T00:00:00.000Z", "2028-12-31T00:00:00.000Z"
    ) == [
        "2028-01-31T00:00:00.000Z",
        "2028-02-29T00:00:00.000Z",
        "2028-03-31T00:00:00.000Z",
    ]


def test_a_schedule_with_no_slot_in_the_window_gives_none():
    assert listed("0 0 29 2 *", "UTC", "2026-01-01T00:00:00.000Z", "2027-12-31T00:00:00.000Z") == []


# --- window edges -----------------------------------------------------------------------------


def test_the_start_is_exclusive_and_the_end_inclusive():
    at = "2026-01-31T12:00:00.000Z"
    assert listed("0 * * * *", "UTC", at, "2026-01-31T12:59:59.999Z") == []
    assert listed("0 * * * *", "UTC", "2026-01-31T11:59:59.999Z", at) == [at]
    assert listed("0 * * * *", "UTC", "2026-01-31T11:00:00.000Z", "2026-01-31T11:59:59.999Z") == []


def test_an_empty_or_reversed_window_has_no_slots():
    at = ms("2026-01-31T12:00:00.000Z")
    assert slots("* * * * *", "UTC", at, at, limit=10) == []
    assert slots("* * * * *", "UTC", at, at - HOUR_MS, limit=10) == []


@PROPERTY
@given(
    expression=st.sampled_from(
        [
            "0 * * * *",
            "*/7 * * * *",
            "30 2 * * *",
            "*/20 1-3 * * *",
            "0 9 * * mon-fri",
            "15 2,3 * * *",
        ]
    ),
    zone=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Antarctica/Troll"]),
    start=st.sampled_from([SPRING, "2026-10-24T01:00:00.000Z"]),
    cuts=st.lists(st.integers(min_value=0, max_value=4 * DAY_MS), max_size=8),
)
@example(expression="30 2 * * *", zone="Europe/Berlin", start=SPRING, cuts=[DAY_MS - 500])
@example(expression="30 2 * * *", zone="Europe/Berlin", start=SPRING, cuts=[DAY_MS - 1000])
def test_consecutive_windows_concatenate_to_the_whole_window(expression, zone, start, cuts):
    """Split anywhere, e.g. at 01:59:59.5 CET on the day of the spring change (see below)."""
    start, end = ms(start), ms(start) + 4 * DAY_MS
    bounds = [start, *sorted(start + cut for cut in cuts), end]
    pieces = [t for a, b in pairwise(bounds) for t in slots(expression, zone, a, b, limit=2000)]
    assert pieces == slots(expression, zone, start, end, limit=2000)


@PROPERTY
@given(
    expression=st.sampled_from(
        [
            "* * * * *",
            "*/7 * * * *",
            "30 2 * * *",
            "*/20 1-3 * * *",
            "0 9 * * mon-fri",
            "15 2,3 * * *",
            "0 0 last * *",
            "45 23 * feb sun",
        ]
    ),
    zone=st.sampled_from(
        ["UTC", "Europe/Berlin", "America/New_York", "Antarctica/Troll", "Australia/Lord_Howe"]
    ),
    start=st.integers(
        min_value=ms("2025-01-01T00:00:00.000Z"), max_value=ms("2027-01-01T00:00:00.000Z")
    ),
    length=st.integers(min_value=0, max_value=40 * DAY_MS),
)
@example(expression="30 2 * * *", zone="Europe/Berlin", start=ms(SPRING), length=2 * DAY_MS)
@example(expression="* * * * *", zone="UTC", start=ms(SPRING), length=0)
@example(expression="* * * * *", zone="UTC", start=ms("2026-03-28T00:00:00.000Z"), length=DAY_MS)
def test_counting_slots_agrees_with_listing_them(expression, zone, start, length):
    expected = len(slots(expression, zone, start, start + length, limit=100_000))
    assert count_slots(expression, zone, start, start + length) == expected


def test_ten_years_of_minutes_are_counted_without_listing_them():
    start = ms("2026-11-27T10:00:30.000Z")
    end = start + 3652 * DAY_MS

    assert count_slots("* * * * *", "Europe/Berlin", start, end) == 3652 * 1440


# --- the limit --------------------------------------------------------------------------------


def test_a_window_with_exactly_limit_slots_is_listed():
    assert len(slots("0 * * * *", "UTC", 0, 3 * HOUR_MS, limit=3)) == 3


def test_a_window_with_more_than_limit_slots_is_refused_not_truncated():
    with pytest.raises(BadInput) as caught:
        slots("0 * * * *", "UTC", 0, 4 * HOUR_MS, limit=3)
    message = caught.value.message
    assert "more than 3 slots" in message
    assert "(1970-01-01T00:00:00.000Z, 1970-01-01T04:00:00.000Z]" in message
    assert "narrow the window to end before 1970-01-01T04:00:00.000Z" in message


def test_windows_beyond_apscheduler_years_are_cut_not_crashed():
    assert listed(
        "0 0 1 1 *", "Etc/GMT-14", "1900-01-01T00:00:00.000Z", "1971-06-01T00:00:00.000Z"
    ) == [
        "1969-12-31T10:00:00.000Z",
        "1970-12-31T10:00:00.000Z",
    ]
    assert slots("0 0 1 1 *", "UTC", ms("9999-01-02T00:00:00.000Z"), 2**62, limit=5) == []


def test_a_limit_of_zero_refuses_any_slot():
    assert slots("0 * * * *", "UTC", 0, HOUR_MS - 1, limit=0) == []
    with pytest.raises(BadInput):
        slots("0 * * * *", "UTC", 0, HOUR_MS, limit=0)


# --- time zones and daylight saving -----------------------------------------------------------


def test_nine_in_berlin_is_eight_z_in_winter_and_seven_z_in_summer():
    assert listed(
        "0 9 * * *", "Europe/Berlin", "2026-01-15T00:00:00.000Z", "2026-01-16T00:00:00.000Z"
    ) == ["2026-01-15T08:00:00.000Z"]
    assert listed(
        "0 9 * * *", "Europe/Berlin", "2026-07-15T00:00:00.000Z", "2026-07-16T00:00:00.000Z"
    ) == ["2026-07-15T07:00:00.000Z"]


def test_spring_forward_skips_a_daily_time_in_the_gap():
    # 2026-03-29: Berlin's clocks go from 02:00 CET to 03:00 CEST; 02:30 does not happen.
    assert listed(
        "30 2 * * *", "Europe/Berlin", "2026-03-28T00:00:00.000Z", "2026-03-31T00:00:00.000Z"
    ) == [
        "2026-03-28T01:30:00.000Z",
        "2026-03-30T00:30:00.000Z",
    ]


def test_spring_forward_skips_every_time_in_the_gap_but_not_after_it():
    assert listed(
        "0,30 2,3 * * *", "Europe/Berlin", "2026-03-29T00:00:00.000Z", "2026-03-29T02:00:00.000Z"
    ) == ["2026-03-29T01:00:00.000Z", "2026-03-29T01:30:00.000Z"]  # 03:00 and 03:30 CEST


def test_fall_back_gives_a_daily_time_in_the_repeated_hour_twice():
    # 2026-10-25: Berlin's clocks go from 03:00 CEST back to 02:00 CET; 02:30 happens twice.
    assert listed(
        "30 2 * * *", "Europe/Berlin", "2026-10-24T00:00:00.000Z", "2026-10-27T00:00:00.000Z"
    ) == [
        "2026-10-24T00:30:00.000Z",
        "2026-10-25T00:30:00.000Z",
        "2026-10-25T01:30:00.000Z",
        "2026-10-26T01:30:00.000Z",
    ]


@pytest.mark.parametrize("day", ["2026-03-29", "2026-10-25"])
def test_hourly_keeps_an_even_pace_across_the_change(day):
    midnight = ms(f"{day}T00:00:00.000Z")
    found = slots("0 * * * *", "Europe/Berlin", midnight - DAY_MS, midnight + DAY_MS, limit=100)
    assert len(found) == 48
    assert {b - a for a, b in pairwise(found)} == {HOUR_MS}


def test_a_two_hour_gap_keeps_the_real_times_after_it():
    # Antarctica/Troll jumps from 01:00 +00 to 03:00 +02 at 2026-03-29T01:00Z; 02:15 does not
    # happen, 03:15 +02 (01:15Z) does.
    found = listed(
        "15 2,3 * * *", "Antarctica/Troll", "2026-03-29T00:00:00.000Z", "2026-03-29T12:00:00.000Z"
    )
    assert found == ["2026-03-29T01:15:00.000Z"]


def test_a_half_hour_change():
    # Lord Howe Island: 02:00 +10:30 becomes 02:30 +11 (2026-10-03T15:30Z); 01:30 +10:30 repeats
    # from 02:00 +11 on 2026-04-04T15:00Z.
    spring = listed(
        "*/20 2 * * *",
        "Australia/Lord_Howe",
        "2026-10-03T12:00:00.000Z",
        "2026-10-03T18:00:00.000Z",
    )
    assert spring == ["2026-10-03T15:40:00.000Z"]
    autumn = listed(
        "45 1 * * *", "Australia/Lord_Howe", "2026-04-04T12:00:00.000Z", "2026-04-04T18:00:00.000Z"
    )
    assert autumn == ["2026-04-04T14:45:00.000Z", "2026-04-04T15:15:00.000Z"]


def test_a_skipped_calendar_day():
    # Samoa skipped 2011-12-30 (from -10 to +14): noon of the 29th, then noon of the 31st.
    assert listed(
        "0 12 * * *", "Pacific/Apia", "2011-12-29T00:00:00.000Z", "2011-12-31T00:00:00.000Z"
    ) == [
        "2011-12-29T22:00:00.000Z",
        "2011-12-30T22:00:00.000Z",
    ]


def test_ten_years_of_dst_changes_end_and_lose_no_slot():
    # Twice a day at 02:00 and 02:30: each spring day loses two slots, each autumn day gains two.
    after, until = ms("2020-01-01T00:00:00.000Z"), ms("2030-01-01T00:00:00.000Z")
    found = slots("0,30 2 * * *", "Europe/Berlin", after, until, limit=10_000)
    assert len(found) == 2 * 3653
    assert found == sorted(set(found))
    berlin = ZoneInfo("Europe/Berlin")
    assert {from_ms(t).astimezone(berlin).strftime("%H:%M") for t in found} == {"02:00", "02:30"}
    summer = ms("2025-07-01T00:00:00.000Z")
    assert [format_ms(t) for t in found if summer <= t < summer + DAY_MS] == [
        "2025-07-01T00:00:00.000Z",
        "2025-07-01T00:30:00.000Z",
    ]


def test_the_first_of_the_month_and_midnight_after_spring_forward():
    # Where APScheduler's own Berlin trigger answers 1 May and 31 March (see below).
    monthly = listed(
        "0 0 1 * *", "Europe/Berlin", "2026-03-28T12:00:00.000Z", "2026-05-02T00:00:00.000Z"
    )
    assert monthly == ["2026-03-31T22:00:00.000Z", "2026-04-30T22:00:00.000Z"]
    daily = listed(
        "0 0 * * *", "Europe/Berlin", "2026-03-28T23:30:00.000Z", "2026-03-31T00:00:00.000Z"
    )
    assert daily == ["2026-03-29T22:00:00.000Z", "2026-03-30T22:00:00.000Z"]


def test_a_two_hour_repeat_gives_both_passes():
    # Antarctica/Troll goes back from 03:00 +02 to 01:00 +00 at 2026-10-25T01:00Z: 01:00 shows
    # twice, 00:00 once.
    found = listed(
        "0 0,1 * * *", "Antarctica/Troll", "2026-10-24T12:00:00.000Z", "2026-10-25T12:00:00.000Z"
    )
    assert found == [
        "2026-10-24T22:00:00.000Z",
        "2026-10-24T23:00:00.000Z",
        "2026-10-25T01:00:00.000Z",
    ]


@pytest.mark.parametrize(
    ("expression", "now", "apscheduler_says"),
    [
        ("0 0 1 * *", "2026-03-28T12:00:00.000Z", "2026-04-30T22:00:00.000Z"),  # 1 April skipped
        ("0 0 * * *", "2026-03-28T23:30:00.000Z", "2026-03-30T22:00:00.000Z"),  # 30 March skipped
        ("30 2 * * *", "2026-03-29T00:59:59.000Z", "2026-03-29T01:30:00.000Z"),  # 02:30 in the gap
        ("30 2 * * *", "2026-03-29T00:59:59.500Z", "2026-03-30T00:30:00.000Z"),  # ... or not
    ],
)
def test_why_apscheduler_does_not_run_in_the_zone(expression, now, apscheduler_says):
    """APScheduler 3.11's own trigger in Berlin: a day or month skipped, gap times path dependent.

    If this fails, APScheduler changed its DST handling; revisit the module docstring.
    """
    trigger = CronTrigger.from_crontab(expression, timezone=ZoneInfo("Europe/Berlin"))
    assert format_at(trigger.get_next_fire_time(None, from_ms(ms(now)))) == apscheduler_says


# --- against a minute-by-minute oracle around real DST changes ----------------------------------

CHANGES = [  # (zone, an instant where its UTC offset changes, local hours the change touches)
    ("Europe/Berlin", "2026-03-29T01:00:00.000Z", (1, 2, 3)),
    ("Europe/Berlin", "2026-10-25T01:00:00.000Z", (1, 2, 3)),
    ("America/New_York", "2026-03-08T07:00:00.000Z", (1, 2, 3)),
    ("America/New_York", "2026-11-01T06:00:00.000Z", (0, 1, 2)),
    ("Australia/Lord_Howe", "2026-04-04T15:00:00.000Z", (1, 2)),
    ("Australia/Lord_Howe", "2026-10-03T15:30:00.000Z", (1, 2, 3)),
    ("Antarctica/Troll", "2026-03-29T01:00:00.000Z", (0, 1, 2, 3, 4)),
    ("Antarctica/Troll", "2026-10-25T01:00:00.000Z", (0, 1, 2, 3)),
    ("Pacific/Apia", "2011-12-30T10:00:00.000Z", (0, 11, 12, 23)),
    ("UTC", "2026-03-29T01:00:00.000Z", (1, 2, 3)),
]
# Spans mostly hours long (Hypothesis favours small integers), at any millisecond.
SPANS = st.builds(
    lambda h, extra: h * HOUR_MS + extra, st.integers(0, 35), st.integers(0, HOUR_MS - 1)
)


def field(values: set[int] | None, names: tuple[str, ...] | None = None) -> str:
    if values is None:
        return "*"
    return ",".join(names[v] if names else str(v) for v in sorted(values))


@st.composite
def schedules(draw: st.DrawFn) -> tuple[str, int, set[int] | None]:
    zone, at, touched = draw(st.sampled_from(CHANGES))
    near = st.sets(st.sampled_from(touched), min_size=1)
    anywhere = st.sets(st.integers(0, 23), min_size=1, max_size=4)
    return zone, ms(at), draw(st.none() | near | anywhere)


@PROPERTY
@given(
    schedule=schedules(),
    minutes=st.sets(st.integers(min_value=0, max_value=59), min_size=1, max_size=4),
    weekdays=st.none() | st.sets(st.integers(min_value=0, max_value=6), min_size=1, max_size=6),
    lead_ms=SPANS,
    trail_ms=SPANS,
)
def test_slots_are_the_instants_whose_wall_time_matches(
    schedule, minutes, weekdays, lead_ms, trail_ms
):
    zone_name, change_ms, hours = schedule
    after, until = change_ms - lead_ms, change_ms + trail_ms
    expression = f"{field(minutes)} {field(hours)} * * {field(weekdays, WEEKDAYS)}"
    zone = ZoneInfo(zone_name)
    expected = []
    for t in range((after // 60_000 + 1) * 60_000, until + 1, 60_000):
        wall = from_ms(t).astimezone(zone)
        if (
            wall.minute in minutes
            and (hours is None or wall.hour in hours)
            and (weekdays is None or wall.weekday() in weekdays)
        ):
            expected.append(t)
    assert slots(expression, zone_name, after, until, limit=3000) == expected


# --- check_cron -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "* * * * *",
        "0 9 * * mon-fri",
        "*/5 0-6/2 1,15 * *",
        "0 0 last * *",
        "0 0 1 jan,jul *",
        "5/10 * * 1-12/3 *",
        "0 0 */2 * mon",
        "30 2 29 2 *",
        " 0  9 * *  sun ",
    ],
)
def test_check_cron_accepts(expression):
    assert check_cron(expression, "Europe/Berlin") is None


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("0 0 * * * *", "5 fields (minute hour day month weekday), not 6"),
        ("0 0 * *", "not 4"),
        ("", "not 0"),
        ("   ", "not 0"),
        ("garbage", "not 1"),
        ("61 * * * *", "minute '61': the last value (61) is higher than the maximum value (59)"),
        ("* 25 * * *", "hour '25': the last value (25) is higher than the maximum value (23)"),
        ("0 0 0 * *", "day of month '0': the first value (0) is lower than the minimum value (1)"),
        ("0 0 32 * *", "day of month '32'"),
        ("0 0 * 13 *", "month '13'"),
        ("0 0 * foo *", "month 'foo'"),
        ("*/0 * * * *", "minute '*/0'"),
        ("5-1 * * * *", "minute '5-1'"),
        ("1,,2 * * * *", "minute '1,,2': expected 0-59"),
        ("x * * * *", "minute 'x': expected 0-59"),
        ("\u0663 * * * *", "minute '\u0663'"),  # an Arabic-Indic three
        ("0 0 * * 1-5", "day of week '1-5': expected * or names mon-sun"),
        ("0 0 * * */2", "day of week '*/2'"),
        ("0 0 * * mon-fri/2", "day of week 'mon-fri/2'"),
        ("0 0 * * funday", "day of week 'funday'"),
        ("0 0 * * fun", "day of week 'fun': Invalid weekday name \"fun\""),
        ("0 0 * jan-mar/2 *", "month 'jan-mar/2'"),
        ("0 0 lastly * *", "day of month 'lastly'"),
        ("0 0 1 * mon", "day of month or day of week, not both"),
        ("0 0 31 2 *", "never fires"),
        ("0 0 31 4,6 *", "never fires"),
    ],
)
def test_check_cron_refuses_naming_the_fault(expression, says):
    with pytest.raises(InvalidName) as caught:
        check_cron(expression, "UTC")
    assert caught.value.message.startswith(f"invalid cron expression {expression!r}: ")
    assert says in caught.value.message
    assert caught.value.message.endswith("e.g. '30 2 * * mon-fri'")


@pytest.mark.parametrize(
    "zone",
    [
        "",
        "Mars/Olympus_Mons",
        "europe/berlin",
        "Europe/Berlin ",
        "Europe",
        "../etc/passwd",
        "/etc/localtime",
        "localtime",
        "CEST",
        "+01:00",
    ],
)
def test_check_cron_refuses_an_unknown_zone(zone):
    with pytest.raises(InvalidName) as caught:
        check_cron("0 9 * * *", zone)
    assert caught.value.message == (
        f"invalid time zone {zone!r}: an IANA name such as Europe/Berlin or UTC"
    )


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/New_York", "Etc/GMT-14"])
def test_check_cron_accepts_iana_zones(zone):
    assert check_cron("0 9 * * *", zone) is None


def test_slots_refuses_what_check_cron_refuses():
    with pytest.raises(InvalidName, match="day of week '1-5'"):
        slots("0 9 * * 1-5", "UTC", 0, DAY_MS, limit=10)
    with pytest.raises(InvalidName, match="time zone"):
        slots("0 9 * * *", "Nowhere", 0, DAY_MS, limit=10)


# --- slot keys --------------------------------------------------------------------------------


def test_slot_key_is_the_schedule_at_the_canonical_utc_instant():
    key = slot_key("nightly-backup", ms("2026-10-25T01:30:00.000Z"))
    assert key == "nightly-backup@2026-10-25T01:30:00.000Z"
    assert check_name("idempotency key", key) == key


def test_the_two_fall_back_slots_have_distinct_keys():
    after, until = ms("2026-10-25T00:00:00.000Z"), ms("2026-10-25T02:00:00.000Z")
    found = slots("30 2 * * *", "Europe/Berlin", after, until, limit=10)
    assert [slot_key("s", t) for t in found] == [
        "s@2026-10-25T00:30:00.000Z",
        "s@2026-10-25T01:30:00.000Z",
    ]
