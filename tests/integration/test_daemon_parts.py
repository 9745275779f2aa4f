"""The daemon's parts (``orchd/cli/daemon/``) driven in process: each part's ``tick(now_ms)`` with
a fixed time, a real ledger and real folders in tmp_path, the clock the test moves, and no
daemon process (docs/STYLE: "A daemon made of parts with tick(now)")."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

import orchd.cli
from orchd.adapters import config, control, spool
from orchd.adapters.ledger import SqliteLedger
from orchd.adapters.notify import Notifier
from orchd.cli.daemon.calls import Calls
from orchd.cli.daemon.common import Audit, Health
from orchd.cli.daemon.housekeeping import (
    FILE_CHECK_EVERY_MS,
    STATUS_EVERY_MS,
    ClockWatch,
    FileCheck,
    Report,
)
from orchd.cli.daemon.inbox import Inbox, Requests
from orchd.cli.daemon.intake import BUDGET_MS, PER_TICK, SpoolIntake
from orchd.cli.daemon.operations import KEPT, Operations
from orchd.cli.daemon.schedules import Schedules
from orchd.cli.daemon.wake import WakeUp
from orchd.core import timefmt
from orchd.core.events import Actor
from orchd.core.policy import JobType, Policy, Schedule
from orchd.core.progress import Meter, Progress, quiet
from orchd.errors import Interrupted, LedgerCorrupt
from orchd.ops import site as site_ops
from tests.fakes import CountingEntropy, FakeClock

orchd.cli.load_all()  # every command's actions, which the calls part routes to
DAEMON = Actor(uid=0, user="orchd", scopes=("orch:operate", "orch:run"))
T0 = timefmt.parse_canonical("2026-03-01T12:00:30.000Z")
MINUTE = 60_000
POLICY = Policy(
    job_types={"echo": JobType(name="echo", argv=("/bin/true",))},
    schedules={"tick": Schedule(name="tick", job_type="echo", cron="* * * * *", misfire="all")},
)


class Logged:
    """The daemon's log, kept: (level, message, fields)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def __call__(self, level: str, message: str, **fields: Any) -> None:
        self.lines.append((level, message, fields))

    def messages(self) -> list[str]:
        return [message for _, message, _ in self.lines]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def ledger(tmp_path: Path, clock: FakeClock) -> Iterator[SqliteLedger]:
    first = site_ops.initialized("hq", DAEMON, "test")
    made = SqliteLedger.create(tmp_path / "ledger.db", "hq", clock, CountingEntropy(), first)
    yield made
    made.verify()
    made.close()


@pytest.fixture
def log() -> Logged:
    return Logged()


def types_of(ledger: SqliteLedger, event_type: str) -> list[dict[str, Any]]:
    return [dict(e.payload) for e in ledger.events_of_type(event_type)]


# --- the spool ----------------------------------------------------------------------------------


@pytest.fixture
def intake(tmp_path: Path, ledger: SqliteLedger, clock: FakeClock, log: Logged) -> SpoolIntake:
    folder = tmp_path / "spool"
    spool.ensure(folder)
    return SpoolIntake(folder, ledger, clock, CountingEntropy(), DAEMON, lambda: POLICY, log)


def test_the_spool_part_takes_a_backlog_a_few_at_a_tick_and_wakes_the_loop_for_the_rest(
    tmp_path: Path, ledger: SqliteLedger, clock: FakeClock, log: Logged
) -> None:
    folder, woken = tmp_path / "spool", []
    spool.ensure(folder)
    part = SpoolIntake(
        folder,
        ledger,
        clock,
        CountingEntropy(),
        DAEMON,
        lambda: POLICY,
        log,
        more=lambda: woken.append(1),
    )
    for n in range(PER_TICK + 5):
        spool.drop(folder, f"r{n:03d}.json", {"job_type": "echo"})

    assert part.tick(T0) is True
    assert len(list(ledger.jobs(state=None, source=None))) == PER_TICK and woken == [1]
    assert part.tick(T0 + 1) is True  # the rest, and no more waking
    assert len(list(ledger.jobs(state=None, source=None))) == PER_TICK + 5 and woken == [1]


def test_the_spool_part_records_a_request_once_and_removes_its_file(
    intake: SpoolIntake, ledger: SqliteLedger
) -> None:
    spool.drop(intake.folder, "one.json", {"job_type": "echo"})

    assert intake.tick(T0) is True
    assert intake.tick(T0 + 1000) is False  # nothing left to take

    [job] = list(ledger.jobs(state=None, source=None))
    assert (job.job_type, job.key) == ("echo", "spool:one.json")
    assert ledger.events_of(job.job_id)[0].actor.uid == os.getuid()  # the file's owner asked
    assert list((intake.folder / "new").iterdir()) == []
    assert list((intake.folder / "cur").iterdir()) == []


def test_the_spool_part_rejects_what_the_policy_lacks_with_the_reason(
    intake: SpoolIntake, ledger: SqliteLedger, log: Logged
) -> None:
    spool.drop(intake.folder, "bad.json", {"job_type": "nope"})

    assert intake.tick(T0) is False

    [rejected] = types_of(ledger, "spool.rejected")
    assert rejected["file"] == "bad.json" and "nope" in str(rejected["reason"])
    assert (intake.folder / "rejected" / "bad.json").exists()
    assert "nope" in (intake.folder / "rejected" / "bad.json.reason").read_text()
    assert "spool request rejected" in log.messages()
    assert list(ledger.jobs(state=None, source=None)) == []


def test_a_file_a_crash_left_in_cur_is_taken_again_and_records_nothing_new(
    intake: SpoolIntake, ledger: SqliteLedger
) -> None:
    spool.drop(intake.folder, "again.json", {"job_type": "echo", "key": "k1"})
    intake.tick(T0)
    spool.drop(intake.folder, "again.json", {"job_type": "echo", "key": "k1"})
    os.link(intake.folder / "new" / "again.json", intake.folder / "cur" / "again.json")
    (intake.folder / "new" / "again.json").unlink()

    assert intake.tick(T0 + 1000) is True  # recorded (the same job: a no-op in the ledger)

    assert len(list(ledger.jobs(state=None, source=None))) == 1


# --- the inbox and the requests -----------------------------------------------------------------


def test_the_inbox_part_quarantines_what_is_not_a_bundle(
    tmp_path: Path, ledger: SqliteLedger, clock: FakeClock, log: Logged
) -> None:
    folder = tmp_path / "inbox"
    spool.ensure(folder, spool.INBOX_SUBDIRS)
    (folder / "new" / "junk.orchkit").write_bytes(b"not a bundle")
    inbox = Inbox(
        folder,
        ledger,
        clock,
        config.Settings(),
        Audit(ledger, clock, DAEMON, log),
        log,
        lambda: contextlib.nullcontext(quiet),
        lambda kind, payload: b"",  # joins no origin: never called
    )

    assert inbox.tick(T0) is False

    [quarantined] = types_of(ledger, "bundle.quarantined")
    assert quarantined["file"] == "junk.orchkit"
    assert (folder / "quarantine" / "junk.orchkit").exists()
    assert (folder / "quarantine" / "junk.orchkit.reason").exists()
    assert inbox.tick(T0 + 1000) is False  # nothing left
    assert "bundle quarantined" in log.messages()


def test_the_requests_part_looks_only_when_due(
    ledger: SqliteLedger, clock: FakeClock, log: Logged
) -> None:
    health = Health()
    part = Requests(ledger, clock, CountingEntropy(), DAEMON, lambda: POLICY, health, log)

    assert part.due is True  # at the start: requests imported before it
    assert part.tick(T0) is False
    assert part.due is False
    assert part.tick(T0 + 1000) is False
    assert health.last_error == ""


# --- schedules ----------------------------------------------------------------------------------


@pytest.fixture
def armed() -> list[int | None]:
    """What the schedules part armed the timer at, in order."""
    return []


@pytest.fixture
def schedules(
    ledger: SqliteLedger, clock: FakeClock, log: Logged, armed: list[int | None]
) -> Schedules:
    return Schedules(
        ledger,
        clock,
        CountingEntropy(),
        DAEMON,
        lambda: POLICY,
        rescan_ms=MINUTE,
        arm=armed.append,
        health=Health(),
        log=log,
    )


def test_the_schedules_part_arms_then_fires_the_due_slot_when_the_timer_says(
    schedules: Schedules, ledger: SqliteLedger, clock: FakeClock, armed: list[int | None]
) -> None:
    mono = 5_000
    assert schedules.tick(mono) is False  # a new schedule is armed: nothing from before runs
    assert armed == [T0 + 30_000]  # 12:01:00

    clock.advance(30_000)
    assert schedules.tick(mono + 30_000) is False  # not due: neither timer nor rescan said so
    schedules.timer_fired()
    assert schedules.tick(mono + 30_001) is True

    [job] = list(ledger.jobs(state=None, source=None))
    assert job.slot_at == "2026-03-01T12:01:00.000Z"
    assert armed[-1] == T0 + 90_000  # 12:02:00


def test_the_schedules_part_looks_again_every_rescan(
    schedules: Schedules, ledger: SqliteLedger, clock: FakeClock
) -> None:
    schedules.tick(0)
    clock.advance(2 * MINUTE)
    assert schedules.tick(MINUTE - 1) is False  # not yet a rescan
    assert schedules.tick(MINUTE) is True  # the rescan: 12:01 and 12:02 (misfire all)
    assert len(list(ledger.jobs(state=None, source=None))) == 2


# --- the control API's calls --------------------------------------------------------------------


def call(path: str, body: dict[str, Any], scopes: tuple[str, ...]) -> control.Call:
    peer = control.Peer(pid=1, uid=os.getuid(), gid=os.getgid())
    return control.Call(method="POST", path=path, query={}, body=body, peer=peer, scopes=scopes)


@pytest.fixture
def done() -> dict[str, int]:
    """How often the calls part woke the loop, fed the watchdog and reloaded the engine."""
    return {"wake": 0, "feed": 0, "reload": 0}


@pytest.fixture
def calls(ledger: SqliteLedger, clock: FakeClock, log: Logged, done: dict[str, int]) -> Calls:
    site: Any = SimpleNamespace(ledger=ledger, clock=clock, entropy=CountingEntropy())

    def count(name: str) -> Any:
        return lambda: done.__setitem__(name, done[name] + 1)

    return Calls(
        site,
        config.Settings(),
        lambda: POLICY,
        health=Health(),
        audit=Audit(ledger, clock, DAEMON, log),
        log=log,
        wake=count("wake"),
        feed=count("feed"),
        reload=count("reload"),
    )


def test_the_calls_part_routes_a_call_to_its_action_and_reloads_once_after_writes(
    calls: Calls, ledger: SqliteLedger, done: dict[str, int]
) -> None:
    first = call(control.ACTIONS_PATH + "jobs.submit", {"job_type": "echo"}, ("orch:operate",))
    second = call(control.ACTIONS_PATH + "jobs.list", {}, ("orch:read",))
    calls.enqueue(first)
    calls.enqueue(second)

    assert calls.tick(T0) is False  # the engine reloads instead

    status, payload = first.answer.result(timeout=0)
    assert status == 200 and payload["created"] is True
    status, listed = second.answer.result(timeout=0)
    assert status == 200 and [j["job_type"] for j in listed] == ["echo"]
    assert done == {"wake": 2, "feed": 2, "reload": 1}


def test_the_calls_part_denies_a_caller_without_the_scope_and_audits_it(
    calls: Calls, ledger: SqliteLedger, done: dict[str, int]
) -> None:
    denied = call(control.ACTIONS_PATH + "jobs.submit", {"job_type": "echo"}, ("orch:read",))
    unknown = call(control.ACTIONS_PATH + "no.such", {}, ("orch:operate",))
    bad = call(control.ACTIONS_PATH + "jobs.submit", {"job_type": "nope"}, ("orch:operate",))
    for each in (denied, unknown, bad):
        calls.enqueue(each)

    calls.tick(T0)

    assert denied.answer.result(timeout=0)[0] == 403
    assert unknown.answer.result(timeout=0)[0] == 404
    assert bad.answer.result(timeout=0)[0] == 400  # NotInPolicy, exit code 18
    [event] = types_of(ledger, "api.denied")
    assert event["scope"] == "orch:operate"
    assert list(ledger.jobs(state=None, source=None)) == []
    assert done["reload"] == 0  # nothing was written


def test_the_board_keeps_each_report_for_the_stream_and_the_status_line(log: Logged) -> None:
    board, fed = Operations(), []
    with board.tracked(pid=7, uid=1000, log=log, feed=lambda: fed.append(1)) as progress:
        meter = Meter("ledger verify", "chains", 3, progress, every=2)
        meter.add(2)
        assert [p.line() for p in board.running()] == ["ledger verify: chains 2/3 events"]
        meter.end(3)
    assert board.running() == [] and len(fed) == 3  # the watchdog, at every report
    items = board.after(0)
    assert [(i["done"], i["state"]) for i in items] == [
        (0, "running"),
        (2, "running"),
        (3, "running"),
        (3, "done"),
    ]
    assert {(i["id"], i["pid"], i["uid"]) for i in items} == {(1, 7, 1000)}
    assert board.after(items[1]["position"]) == items[2:]
    [(level, message, ended)] = log.lines
    assert (level, message, ended["state"], ended["done"]) == ("info", "operation ended", "done", 3)


def test_a_caller_gone_stops_its_operation_at_the_next_report_and_the_end_says_so(
    log: Logged,
) -> None:
    board, gone = Operations(), threading.Event()
    with (
        pytest.raises(Interrupted, match="went away"),
        board.tracked(
            pid=7, uid=0, log=log, cancelled=lambda: "it went away" if gone.is_set() else None
        ) as progress,
    ):
        meter = Meter("bundle import", "events", 10, progress, every=1)
        gone.set()
        meter.add(1)
    assert [i["state"] for i in board.after(0)] == ["running", "interrupted"]
    assert log.lines[-1][2]["state"] == "interrupted"


def test_an_action_that_never_reports_leaves_no_trace_and_a_failure_is_kept(log: Logged) -> None:
    board = Operations()
    with board.tracked(pid=1, uid=0, log=log):
        pass  # a status call: no big operation
    with pytest.raises(RuntimeError), board.tracked(pid=1, uid=0, log=log) as progress:
        progress(Progress(operation="ledger prune", step="fold", done=0, total=9))
        raise RuntimeError("the disk")
    assert [(i["id"], i["state"]) for i in board.after(0)] == [(1, "running"), (1, "failed")]
    assert [line[0] for line in log.lines] == ["warning"]
    for n in range(KEPT):
        board.start(pid=1, uid=0)
        board.report(n + 2, Progress(operation="x", step="y", done=n, total=None))
    assert len(board.after(0)) == KEPT  # the newest only


# --- housekeeping -------------------------------------------------------------------------------


def test_the_clock_watch_audits_a_wall_clock_jump_and_says_so(
    ledger: SqliteLedger, clock: FakeClock, log: Logged
) -> None:
    jumps: list[int] = []
    watch = ClockWatch(clock, Audit(ledger, clock, DAEMON, log), log, lambda: jumps.append(1), 0)

    clock.advance(1000)
    watch.tick(1000)  # both clocks moved a second
    assert jumps == [] and types_of(ledger, "clock.jumped") == []

    clock.advance(2 * MINUTE)
    watch.tick(2000)  # the wall clock jumped two minutes ahead
    [jumped] = types_of(ledger, "clock.jumped")
    assert jumped["jump_ms"] == 2 * MINUTE - 1000  # the wall moved 2 min, the monotonic 1 s
    assert jumps == [1]


class Notes:
    """Stands in for the sd_notify ``Notifier``."""

    def __init__(self, watchdog_ms: int | None) -> None:
        self.watchdog_ms = watchdog_ms
        self.sent: list[str] = []

    def status(self, status: str) -> None:
        self.sent.append(status)

    def watchdog(self) -> None:
        self.sent.append("WATCHDOG")


def test_the_status_line_names_the_operations_under_way_every_second() -> None:
    notes, under_way = Notes(watchdog_ms=None), []
    report = Report(cast(Notifier, notes), Health(), lambda: (0, 0), lambda: under_way)
    report.tick(0)
    under_way.append(Progress(operation="ledger verify", step="chains", done=5, total=9))
    report.tick(10)  # at once: an operation started
    report.tick(500)
    report.tick(1010)  # a second later
    under_way.clear()
    report.tick(1020)  # at once: it ended
    assert notes.sent == [
        "queue 0, running 0",
        "queue 0, running 0; ledger verify: chains 5/9 events",
        "queue 0, running 0; ledger verify: chains 5/9 events",
        "queue 0, running 0",
    ]


def test_the_report_part_paces_status_and_watchdog() -> None:
    notes, health = Notes(watchdog_ms=4000), Health()
    report = Report(cast(Notifier, notes), health, lambda: (3, 1))

    report.tick(0)
    report.tick(1000)  # neither is due
    health.last_error = "disk full"
    report.tick(2000)  # the watchdog at half its interval
    report.tick(STATUS_EVERY_MS)

    assert notes.sent == [
        "queue 3, running 1",
        "WATCHDOG",
        "WATCHDOG",
        "queue 3, running 1, last error: disk full",
        "WATCHDOG",
    ]


# --- the wake-up adapter ------------------------------------------------------------------------


def test_the_wake_up_adapter_wakes_for_a_file_and_for_the_armed_time(tmp_path: Path) -> None:
    folder = tmp_path / "new"
    folder.mkdir()
    woken, timed = threading.Event(), threading.Event()
    wake = WakeUp(woken.set, [folder], timed.set)
    wake.start()
    try:
        (folder / "x").write_text(json.dumps({}))
        assert woken.wait(5)
        woken.clear()
        wake.arm(int(time.time() * 1000) + 50)
        assert timed.wait(5) and woken.wait(5)
        timed.clear()
        wake.arm(None)  # disarmed: nothing more
        assert not timed.wait(0.2)
    finally:
        wake.stop()


def test_the_file_check_part_runs_beside_the_loop_at_start_then_daily_and_alarms(
    log: Logged,
) -> None:
    """The whole-file check runs in a thread of its own (the loop's tick never waits for it),
    first at once, then a day later; a damaged page is logged at error level, kept as the last
    error and as file_ok False (orchd_ledger_file_ok 0), and a later clean check clears file_ok."""
    release, results = threading.Event(), [LedgerCorrupt(path=Path("l.db"), detail="page 7"), None]

    def check() -> None:
        release.wait(5)
        found = results.pop(0)
        if found is not None:
            raise found

    health, optimized = Health(), []
    part = FileCheck(check, health, log, first_ms=0, optimize=lambda: optimized.append(1))
    started = time.monotonic()
    part.tick(0)
    part.tick(10)  # still running: the tick returns at once
    assert time.monotonic() - started < 1 and health.file_ok is None
    assert optimized == [1]  # the planner's statistics, on the loop, as each check starts
    release.set()
    assert part.running is not None
    part.running.join(5)
    part.tick(20)
    assert health.file_ok is False and "page 7" in health.last_error
    assert any(level == "error" and msg == "ledger file damaged" for level, msg, _ in log.lines)
    part.tick(30)  # not due again before a day
    assert part.running is None
    part.tick(FILE_CHECK_EVERY_MS)
    assert part.running is not None and optimized == [1, 1]
    part.running.join(5)
    part.tick(FILE_CHECK_EVERY_MS + 5000)  # the loop comes back 5 s later...
    assert health.file_ok is True
    [(_, _, checked)] = [line for line in log.lines if line[1].startswith("ledger file checked")]
    assert checked["ms"] < 1000  # ...but the log gives the check's own time


def test_the_spool_part_stops_taking_once_its_time_is_spent(
    tmp_path: Path, ledger: SqliteLedger, clock: FakeClock, log: Logged
) -> None:
    """A slow disk (each commit here moves the clock 15 ms) ends a tick's intake after
    BUDGET_MS, not after PER_TICK requests; the loop is woken for the rest."""
    folder, woken = tmp_path / "spool", []
    spool.ensure(folder)
    slow = SlowLedger(ledger, clock)
    wake = lambda: woken.append(1)  # noqa: E731
    part = SpoolIntake(
        folder, slow, clock, CountingEntropy(), DAEMON, lambda: POLICY, log, more=wake
    )
    for n in range(5):
        spool.drop(folder, f"r{n:03d}.json", {"job_type": "echo"})

    assert part.tick(T0) is True
    taken = -(-BUDGET_MS // 15)  # the request that passed the budget is the last one taken
    assert len(list(ledger.jobs(state=None, source=None))) == taken and woken == [1]


class SlowLedger:
    """The ledger, each append of which takes 15 ms of the clock."""

    def __init__(self, ledger: SqliteLedger, clock: FakeClock) -> None:
        self.ledger, self.clock = ledger, clock

    def append(self, drafts: Any) -> Any:
        self.clock.advance(15)
        return self.ledger.append(drafts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ledger, name)
