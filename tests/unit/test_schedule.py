"""Which slots run and which are recorded as skipped (core.schedule.due), from a window's count,
its first slot and its newest slots."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchd.core.schedule import Skipped, due

MINUTE = 60_000
GRACE = MINUTE
PROPERTY = settings(derandomize=True, database=None, deadline=None)


def window(count: int, now: int) -> list[int]:
    """``count`` minutely slots, the newest at ``now``."""
    return [now - (count - 1 - i) * MINUTE for i in range(count)]


@pytest.mark.parametrize(
    ("misfire", "limit", "runs", "skipped"),
    [
        ("skip", 24, 2, 8),  # only the on-time slots (now and a minute ago) run
        ("once", 24, 3, 7),
        ("all", 3, 5, 5),
        ("all", 24, 10, 0),
    ],
)
def test_the_misfire_policy_decides_what_the_missed_slots_become(misfire, limit, runs, skipped):
    now = 100 * MINUTE
    slots = window(10, now)

    got = due(
        slots,
        total=10,
        first_ms=slots[0],
        now_ms=now,
        grace_ms=GRACE,
        misfire=misfire,
        catch_up_limit=limit,
    )

    assert got.run == tuple(slots[10 - runs :])
    expected = (Skipped(first_ms=slots[0], last_ms=slots[skipped - 1], count=skipped),)
    assert got.skipped == (expected if skipped else ())


@PROPERTY
@given(
    total=st.integers(min_value=1, max_value=400),
    misfire=st.sampled_from(["skip", "once", "all"]),
    limit=st.integers(min_value=1, max_value=30),
    extra=st.integers(min_value=0, max_value=10),
)
def test_the_newest_slots_give_what_the_whole_window_gives(total, misfire, limit, extra):
    now = 1000 * MINUTE
    slots = window(total, now)
    whole = due(
        slots,
        total=total,
        first_ms=slots[0],
        now_ms=now,
        grace_ms=GRACE,
        misfire=misfire,
        catch_up_limit=limit,
    )
    newest = slots[max(0, total - (limit + 1 + 2 + extra)) :]  # + the two on time

    part = due(
        newest,
        total=total,
        first_ms=slots[0],
        now_ms=now,
        grace_ms=GRACE,
        misfire=misfire,
        catch_up_limit=limit,
    )

    assert part == whole
    assert len(part.run) + sum(s.count for s in part.skipped) == total


def test_newest_slots_that_miss_the_last_skipped_one_are_refused():
    now = 100 * MINUTE
    slots = window(10, now)

    with pytest.raises(ValueError, match="newest missed slot"):
        due(
            slots[-3:],
            total=10,
            first_ms=slots[0],
            now_ms=now,
            grace_ms=GRACE,
            misfire="once",
            catch_up_limit=24,
        )
