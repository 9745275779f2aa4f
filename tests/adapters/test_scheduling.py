"""Schedules into jobs (ops.scheduling.fire) on a real ledger, with the clock the test moves."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchd.adapters.ledger import SqliteLedger
from orchd.adapters.slots import count_slots, first_slots
from orchd.core import timefmt
from orchd.core.events import Actor
from orchd.core.policy import JobType, Policy, Schedule
from orchd.ops import schedule_views, scheduling
from orchd.ops import site as site_ops
from tests.fakes import CountingEntropy, FakeClock

ACTOR = Actor(uid=0, user="orchd", scopes=("orch:operate",))
T0 = timefmt.parse_canonical("2026-03-01T12:00:00.000Z")
MINUTE = 60_000
GRACE = MINUTE


def policy(misfire: str, cron: str = "* * * * *", limit: int = 24) -> Policy:
    return Policy(
        job_types={"echo": JobType(name="echo", argv=("/bin/true",))},
        schedules={
            "tick": Schedule(
                name="tick", job_type="echo", cron=cron, misfire=misfire, catch_up_limit=limit
            )
        },
    )


@pytest.fixture
def setup(tmp_path: Path):  # type: ignore[no-untyped-def]
    clock, entropy = FakeClock(T0), CountingEntropy()
    ledger = SqliteLedger.create(
        tmp_path / "ledger.db", "hq", clock, entropy, site_ops.initialized("hq", ACTOR, "test")
    )
    yield ledger, clock, entropy
    ledger.close()


def fire(setup, rules: Policy) -> int:  # type: ignore[no-untyped-def]
    ledger, clock, entropy = setup
    return scheduling.fire(
        ledger, clock, entropy, ACTOR, rules, first_slots, count_slots, grace_ms=GRACE
    )


def slots_run(ledger: SqliteLedger) -> list[str]:
    return sorted(str(j.slot_at) for j in ledger.jobs(state=None, source=None))


def skipped(ledger: SqliteLedger) -> list[dict[str, object]]:
    return [dict(e.payload) for e in ledger.events_of_type("schedule.skipped")]


def test_a_new_schedule_is_armed_and_runs_nothing_from_before(setup) -> None:  # type: ignore[no-untyped-def]
    ledger, clock, _ = setup
    assert fire(setup, policy("all")) == 0
    clock.advance(MINUTE)
    assert fire(setup, policy("all")) == 1
    assert slots_run(ledger) == ["2026-03-01T12:01:00.000Z"]


@pytest.mark.parametrize(
    ("misfire", "runs", "skipped_count"),
    [("skip", 1, 4), ("once", 2, 3), ("all", 5, 0)],
)
def test_five_slots_missed_while_down_follow_the_misfire_policy(
    setup,
    misfire: str,
    runs: int,
    skipped_count: int,  # type: ignore[no-untyped-def]
) -> None:
    ledger, clock, _ = setup
    fire(setup, policy(misfire))
    clock.advance(5 * MINUTE + 30_000)  # down across 12:01 .. 12:05; 12:05 is 30 s old: on time

    assert fire(setup, policy(misfire)) == runs

    assert len(slots_run(ledger)) == runs
    assert slots_run(ledger)[-1] == "2026-03-01T12:05:00.000Z"
    if skipped_count:
        [range_] = skipped(ledger)
        assert range_["count"] == skipped_count
        assert range_["first_slot"] == "2026-03-01T12:01:00.000Z"
    else:
        assert skipped(ledger) == []


def test_firing_again_or_after_the_clock_went_back_creates_nothing(setup) -> None:  # type: ignore[no-untyped-def]
    ledger, clock, _ = setup
    fire(setup, policy("all"))
    clock.advance(3 * MINUTE)
    assert fire(setup, policy("all")) == 3
    assert fire(setup, policy("all")) == 0
    clock.advance(-86_400_000)  # a day back
    assert fire(setup, policy("all")) == 0
    clock.advance(86_400_000)
    assert fire(setup, policy("all")) == 0
    assert len(slots_run(ledger)) == 3


def test_a_jump_of_ten_years_is_one_skipped_range_not_a_storm(setup) -> None:  # type: ignore[no-untyped-def]
    ledger, clock, _ = setup
    fire(setup, policy("once", cron="0 * * * *"))
    clock.advance(10 * 365 * 86_400_000 + 30 * MINUTE)  # the newest slot is 30 min old: missed

    assert fire(setup, policy("once", cron="0 * * * *")) == 1

    [range_] = skipped(ledger)
    assert range_["count"] > 87_000
    assert ledger.verify().events < 10


def test_a_backfilled_slot_is_not_created_again(setup) -> None:  # type: ignore[no-untyped-def]
    ledger, clock, entropy = setup
    fire(setup, policy("all"))
    clock.advance(2 * MINUTE)
    from orchd.ops import backfill

    request = backfill.Request(
        schedule="tick", from_ms=T0, to_ms=T0 + 2 * MINUTE, reason="outage", ticket="OPS-1"
    )
    backfill.backfill(ledger, clock, entropy, ACTOR, policy("all"), first_slots, request)

    assert fire(setup, policy("all")) == 0  # the backfill dealt with those slots
    assert len(slots_run(ledger)) == 3  # 12:00 (both ends included), 12:01, 12:02: once each


def views(setup, rules: Policy) -> list[schedule_views.ScheduleRow]:  # type: ignore[no-untyped-def]
    ledger, clock, _ = setup
    return schedule_views.schedules(ledger, rules, clock, first_slots, count_slots)


def test_schedules_list_says_the_next_and_last_slot_the_due_and_the_skipped(setup) -> None:  # type: ignore[no-untyped-def]
    ledger, clock, _ = setup
    rules = policy("skip", cron="*/10 * * * *")
    [before] = views(setup, rules)
    assert (before.last_slot, before.next_slot, before.due) == (None, "2026-03-01T12:10:00.000Z", 0)
    fire(setup, rules)  # armed at 12:00
    clock.advance(10 * MINUTE)
    fire(setup, rules)  # 12:10 made
    [made] = views(setup, rules)
    assert (made.last_slot, made.last_state, made.next_slot) == (
        "2026-03-01T12:10:00.000Z",
        "queued",
        "2026-03-01T12:20:00.000Z",
    )
    assert made.last_job == ledger.job_by_key("tick@2026-03-01T12:10:00.000Z").job_id  # type: ignore[union-attr]
    clock.advance(30 * MINUTE + 30_000)  # down across 12:20, 12:30; 12:40 is 30 s old: on time
    [down] = views(setup, rules)
    assert (down.due, down.skipped, down.last_slot) == (3, 0, "2026-03-01T12:10:00.000Z")
    fire(setup, rules)  # skip: 12:20 and 12:30 skipped, 12:40 made
    [back] = views(setup, rules)
    assert (back.due, back.skipped, back.last_slot) == (0, 2, "2026-03-01T12:40:00.000Z")
    assert back.last_state == "queued"


def test_a_schedules_next_slots_across_a_dst_change_keep_its_wall_time(setup) -> None:  # type: ignore[no-untyped-def]
    """Europe/Berlin at 03:30 every day: one hour earlier in UTC once summer time begins (the
    night of 28 to 29 March 2026, when 02:00 becomes 03:00)."""
    _, clock, _ = setup
    zoned = Schedule(name="tick", job_type="echo", cron="30 3 * * *", timezone="Europe/Berlin")
    rules = Policy(
        job_types={"echo": JobType(name="echo", argv=("/bin/true",))},
        schedules={"tick": zoned},
    )
    clock.now = timefmt.parse_canonical("2026-03-28T12:00:00.000Z")
    seen = []
    for _ in range(3):
        [row] = views(setup, rules)
        seen.append(row.next_slot)
        clock.now = timefmt.parse_canonical(row.next_slot or "") + MINUTE
    assert seen == [
        "2026-03-29T01:30:00.000Z",  # 03:30 CEST (summer time from 02:00 that night)
        "2026-03-30T01:30:00.000Z",
        "2026-03-31T01:30:00.000Z",
    ]
    clock.now = timefmt.parse_canonical("2026-03-27T12:00:00.000Z")
    assert views(setup, rules)[0].next_slot == "2026-03-28T02:30:00.000Z"  # 03:30 CET
