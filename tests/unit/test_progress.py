"""The progress mechanism of the big operations (``orchd/core/progress.py``)."""

from __future__ import annotations

from orchd.core.progress import Meter, Progress, quiet


def test_a_meter_reports_at_its_start_every_so_many_units_and_at_its_end() -> None:
    told: list[Progress] = []
    meter = Meter("ledger verify", "chains", 25, told.append, every=10)
    for count in (4, 4, 4, 9, 3):  # passes 10 at 12, 20 at 21
        meter.add(count)
    meter.end()
    assert [p.done for p in told] == [0, 12, 21, 24]
    assert {(p.operation, p.step, p.total, p.unit) for p in told} == {
        ("ledger verify", "chains", 25, "events")
    }


def test_a_big_step_past_several_marks_reports_once_and_the_next_mark_follows_it() -> None:
    told: list[Progress] = []
    meter = Meter("bundle export", "events", None, told.append, every=10)
    meter.add(35)  # past 10, 20 and 30: one report
    meter.add(4)  # 39: the next mark is 40
    meter.add(1)
    assert [p.done for p in told] == [0, 35, 40]


def test_the_next_step_counts_from_zero_and_the_end_may_name_the_count() -> None:
    told: list[Progress] = []
    meter = Meter("ledger prune", "fold", 7, told.append, every=5)
    meter.add(7)
    following = meter.then("delete", 7)
    following.add(2)
    following.end(7)
    assert [(p.step, p.done) for p in told] == [
        ("fold", 0),
        ("fold", 7),
        ("delete", 0),
        ("delete", 7),
    ]


def test_a_line_says_the_step_its_count_and_its_total_when_known() -> None:
    known = Progress(operation="ledger verify", step="chains", done=20_000, total=120_000)
    unknown = Progress(operation="bundle export", step="events", done=5, total=None)
    assert known.line() == "ledger verify: chains 20,000/120,000 events"
    assert unknown.line() == "bundle export: events 5 events"
    assert quiet(known) is None
