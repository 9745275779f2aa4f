"""A long command's progress on stderr: a redrawn line on a terminal, JSON lines with --json,
nothing when piped."""

from __future__ import annotations

import io
import json

from orchd.cli.progress_view import Shown, shown
from orchd.core.progress import Progress, quiet


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Ticking:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def report(step: str, done: int, total: int | None = 1_000) -> Progress:
    return Progress(operation="ledger verify", step=step, done=done, total=total)


def test_a_terminal_gets_one_line_redrawn_with_rate_and_time_left() -> None:
    out, clock = Terminal(), Ticking()
    view = Shown(out, as_json=False, clock=clock)
    view(report("chains", 0))
    clock.now += 2.0
    view(report("chains", 400))
    clock.now += 0.05  # too soon to draw again
    view(report("chains", 410))
    clock.now += 1.0
    view(report("chains", 1_000))
    view.close()
    drawn = out.getvalue().split("\r")[1:]
    assert drawn[0].strip() == "ledger verify: chains 0/1,000 events (0%)"
    assert drawn[1].strip() == "ledger verify: chains 400/1,000 events (40%), 200/s, 3s left"
    assert (
        drawn[2].strip() == "ledger verify: chains 1,000/1,000 events (100%), 328/s"
    )  # 1,000 in 3.05 s
    assert len(drawn) == 3 and out.getvalue().endswith("\n")


def test_a_new_step_is_drawn_at_once_over_a_longer_line() -> None:
    out, clock = Terminal(), Ticking()
    view = Shown(out, as_json=False, clock=clock)
    view(report("projections", 500, total=None))
    clock.now += 0.01
    view(report("tail", 1, total=None))
    last = out.getvalue().split("\r")[-1]
    assert last.startswith("ledger verify: tail 1 events")
    assert len(last) == len("ledger verify: projections 500 events")  # the rest blanked


def test_json_lines_follow_restics_status_messages() -> None:
    out, clock = io.StringIO(), Ticking()
    view = Shown(out, as_json=True, clock=clock)
    view(report("chains", 0))
    clock.now += 4.0
    view(report("chains", 500))
    view.close()
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first == {
        "message_type": "status",
        "operation": "ledger verify",
        "step": "chains",
        "done": 0,
        "total": 1_000,
        "unit": "events",
        "percent_done": 0.0,
        "rate_per_s": None,
        "seconds_remaining": None,
    }
    assert (second["percent_done"], second["rate_per_s"], second["seconds_remaining"]) == (
        0.5,
        125.0,
        4.0,
    )


def test_a_pipe_gets_nothing() -> None:
    out = io.StringIO()
    with shown(False, out) as progress:
        assert progress is quiet
    view = Shown(out, as_json=False)
    view(report("chains", 5))
    view.close()
    assert out.getvalue() == ""
