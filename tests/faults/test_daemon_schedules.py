"""``orchd run`` as a real process: schedules across downtime and wall-clock jumps.

The daemon's wall clock is moved through its test hook (``ORCHD_TEST_HOOKS=1``: real time plus
the milliseconds in ``STATE_DIR/test-clock-offset``); its monotonic clock is not, just as when an
administrator sets the time. Every instant below is placed mid-minute (or mid-day) on that moved
clock, seconds away from a slot, so which slots are due never depends on how fast the machine is.
Absence is proven, not waited for: a schedule ``probe-N`` added to the policy (by SIGHUP or before
a start) is armed in the same ledger append as anything else that schedule pass records, so once
the probe is armed, that pass is complete.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchd.core import timefmt
from tests import daemon_harness
from tests.daemon_harness import DaemonProcess

SECOND, MINUTE, HOUR, DAY = 1_000, 60_000, 3_600_000, 86_400_000
TEN_YEARS = 3_652 * DAY  # about ten years
GRACE_MS = 2 * 1_000  # the daemon's on-time window: twice --rescan 1
EVERY_MINUTE = "* * * * *"
EVERY_DAY = "0 0 * * *"
PROBE = '{job_type: noop, cron: "0 0 1 1 *", misfire: skip}'  # armed when added, else quiet
HOOKS = {"ORCHD_TEST_HOOKS": "1"}  # the daemon's and the CLI's wall clock: the moved one


def schedule(cron: str, misfire: str, catch_up_limit: int | None = None) -> str:
    """One schedule's YAML flow mapping."""
    limit = "" if catch_up_limit is None else f", catch_up_limit: {catch_up_limit}"
    return f'{{job_type: noop, cron: "{cron}", misfire: {misfire}{limit}}}'


def policy_yaml(schedules: dict[str, str]) -> str:
    lines = ["version: 1", "job_types:", "  noop: {argv: [/bin/true]}", "schedules:"]
    lines += [f"  {name}: {body}" for name, body in schedules.items()]
    return "\n".join(lines) + "\n"


def real_ms() -> int:
    return time.time_ns() // 1_000_000


def iso(ms: int) -> str:
    return timefmt.format_ms(ms)


def wait_until(check: Callable[[], object], timeout_s: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
        time.sleep(0.1)


class Daemon:
    """One site, its policy directory and its daemon, with a wall clock the test moves."""

    def __init__(self, tmp: Path, schedules: dict[str, str]) -> None:
        self.tmp, self.state, self.policy = tmp, tmp / "site", tmp / "policy"
        self.policy.mkdir()
        self.schedules = dict(schedules)
        self.probes = 0
        self.write_policy()
        self.offset_file = self.state / "test-clock-offset"
        self.running: DaemonProcess | None = None
        self.starts = 0
        done = self.cli("init", "--site-id", "hq")
        assert done.returncode == 0, done.stderr

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return daemon_harness.run_cli(self.state, self.policy, *args, env=HOOKS)

    # --- the moved wall clock ---------------------------------------------------------------

    def set_wall(self, wall_ms: int) -> int:
        """Move the site's wall clock so that it reads ``wall_ms`` now; return the offset."""
        offset = wall_ms - real_ms()
        staged = self.offset_file.with_name("test-clock-offset.new")
        staged.write_text(str(offset))
        staged.replace(self.offset_file)  # atomic: the hook reads a half-written file as 0
        return offset

    def wall(self) -> int:
        """What the site's wall clock reads now."""
        return real_ms() + int(self.offset_file.read_text())

    # --- the process ------------------------------------------------------------------------

    def start(self) -> None:
        self.close()  # the daemon started before: its NOTIFY_SOCKET is bound anew
        self.starts += 1
        self.running = daemon_harness.start(
            self.state,
            self.policy,
            env=HOOKS,
            log_path=self.tmp / f"daemon-{self.starts}.log",
            notify=self.tmp / "notify.sock",
        )

    def stop(self) -> None:
        assert self.running is not None
        self.running.stop(expect=0)

    # --- the policy and schedule passes -----------------------------------------------------

    def write_policy(self) -> None:
        (self.policy / "site.yaml").write_text(policy_yaml(self.schedules))

    def add_probe(self) -> str:
        """Add a schedule ``probe-N`` to the policy file; the next schedule pass arms it."""
        self.probes += 1
        name = f"probe-{self.probes}"
        self.schedules[name] = PROBE
        self.write_policy()
        return name

    def schedule_pass(self) -> None:
        """Return once the running daemon has completed a schedule pass begun after this call."""
        assert self.running is not None
        name = self.add_probe()
        self.running.send(signal.SIGHUP)  # reload, then a schedule pass in the same tick
        wait_until(lambda: self.armed(name), what=f"{name} armed")

    # --- what the ledger holds --------------------------------------------------------------

    def events(self, event_type: str) -> list[dict[str, object]]:
        """Events of a type, read with the ledger adapter (while the daemon holds the lock)."""
        from orchd.adapters.ledger import SqliteLedger
        from orchd.adapters.system import OsEntropy, SystemClock

        ledger = SqliteLedger.open(self.state / "ledger.db", SystemClock(), OsEntropy())
        try:
            return [dict(e.payload) for e in ledger.events_of_type(event_type)]
        finally:
            ledger.close()

    def armed(self, name: str) -> list[dict[str, object]]:
        return [e for e in self.events("schedule.armed") if e["schedule"] == name]

    def submitted(self, name: str) -> list[str]:
        """The slot keys of the jobs recorded for schedule ``name``, in ledger order."""
        return [str(e["key"]) for e in self.events("job.submitted") if e.get("schedule") == name]

    def skipped(self, name: str) -> list[tuple[str, str, int]]:
        """The skipped ranges recorded for schedule ``name``: (first, last, count) each."""
        return [
            (str(e["first_slot"]), str(e["last_slot"]), int(e["count"]))  # type: ignore[call-overload]
            for e in self.events("schedule.skipped")
            if e["schedule"] == name
        ]

    def jobs(self) -> list[dict[str, object]]:
        listed = self.cli("jobs", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        found = json.loads(listed.stdout)
        assert isinstance(found, list)
        return found

    def close(self) -> None:
        if self.running is not None:
            self.running.close()


def keys(name: str, slots: list[int]) -> list[str]:
    return [f"{name}@{iso(slot)}" for slot in slots]


def covered(ranges: list[tuple[str, str, int]], step_ms: int) -> list[int]:
    """Every slot of ``step_ms`` spacing inside the recorded ranges, checking each range's count."""
    slots: list[int] = []
    for first, last, count in ranges:
        first_ms, last_ms = timefmt.parse_canonical(first), timefmt.parse_canonical(last)
        inside = list(range(first_ms, last_ms + 1, step_ms))
        assert len(inside) == count, (first, last, count)
        slots += inside
    return slots


# --- down across five slots -------------------------------------------------------------------

MISFIRE = {
    "skip": schedule(EVERY_MINUTE, "skip"),
    "once": schedule(EVERY_MINUTE, "once"),
    "all": schedule(EVERY_MINUTE, "all"),  # catch_up_limit 24 by default: all five run
    "all-3": schedule(EVERY_MINUTE, "all", catch_up_limit=3),
}


@dataclass(frozen=True)
class Downtime:
    missed: list[int]  # the five slots that passed while the daemon was down, oldest first
    jobs: list[dict[str, object]]  # `jobs list --json` at the end
    after_catch_up: dict[str, tuple[list[str], list[tuple[str, str, int]]]]
    after_restart: dict[str, tuple[list[str], list[tuple[str, str, int]]]]


@pytest.fixture(scope="module")
def downtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Downtime]:
    """Armed at B+20s, down until B+5m30s (slots B+1m to B+5m missed), restarted at B+5m40s."""
    daemon = Daemon(tmp_path_factory.mktemp("downtime"), MISFIRE)
    try:
        base = (real_ms() // MINUTE + 2) * MINUTE
        daemon.set_wall(base + 20 * SECOND)
        daemon.start()
        wait_until(lambda: all(daemon.armed(name) for name in MISFIRE), what="armed")
        daemon.stop()
        for name in MISFIRE:
            [armed] = daemon.armed(name)
            assert iso(base) < str(armed["slot_at"]) < iso(base + MINUTE), "armed too late"
            assert not daemon.submitted(name) and not daemon.skipped(name)

        daemon.set_wall(base + 5 * MINUTE + 30 * SECOND)
        daemon.start()
        wait_until(lambda: daemon.submitted("once"), what="the catch-up pass")
        daemon.schedule_pass()  # a later pass while it runs adds nothing
        daemon.stop()
        after_catch_up = {n: (daemon.submitted(n), daemon.skipped(n)) for n in MISFIRE}

        daemon.set_wall(base + 5 * MINUTE + 40 * SECOND)
        probe = daemon.add_probe()
        daemon.start()
        wait_until(lambda: daemon.armed(probe), what="the first pass after the restart")
        daemon.stop()
        after_restart = {n: (daemon.submitted(n), daemon.skipped(n)) for n in MISFIRE}

        missed = [base + k * MINUTE for k in range(1, 6)]
        yield Downtime(missed, daemon.jobs(), after_catch_up, after_restart)
    finally:
        daemon.close()


def test_down_across_five_slots_with_misfire_skip_runs_none_and_records_each_skipped(
    downtime: Downtime,
) -> None:
    submitted, skipped = downtime.after_catch_up["skip"]

    assert submitted == []
    assert skipped == [(iso(downtime.missed[0]), iso(downtime.missed[-1]), 5)]
    assert covered(skipped, MINUTE) == downtime.missed


def test_down_across_five_slots_with_misfire_once_runs_the_newest_and_records_the_rest(
    downtime: Downtime,
) -> None:
    submitted, skipped = downtime.after_catch_up["once"]

    assert submitted == keys("once", downtime.missed[-1:])
    assert skipped == [(iso(downtime.missed[0]), iso(downtime.missed[3]), 4)]
    assert covered(skipped, MINUTE) == downtime.missed[:4]


def test_down_across_five_slots_with_misfire_all_runs_each_slot_once(downtime: Downtime) -> None:
    submitted, skipped = downtime.after_catch_up["all"]

    assert submitted == keys("all", downtime.missed)
    assert skipped == []


def test_misfire_all_runs_the_newest_catch_up_limit_slots_and_records_the_rest(
    downtime: Downtime,
) -> None:
    submitted, skipped = downtime.after_catch_up["all-3"]

    assert submitted == keys("all-3", downtime.missed[2:])
    assert skipped == [(iso(downtime.missed[0]), iso(downtime.missed[1]), 2)]
    assert covered(skipped, MINUTE) == downtime.missed[:2]


def test_catch_up_jobs_carry_schedule_slot_and_key_and_a_restart_adds_nothing(
    downtime: Downtime,
) -> None:
    assert downtime.after_restart == downtime.after_catch_up
    scheduled = [j for j in downtime.jobs if j["schedule"] in MISFIRE]
    assert len(scheduled) == 1 + 5 + 3
    for job in scheduled:
        assert job["key"] == f"{job['schedule']}@{job['slot_at']}"
        assert job["job_type"] == "noop"
    assert len({j["key"] for j in scheduled}) == len(scheduled)


# --- wall-clock jumps while the daemon runs ---------------------------------------------------


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Daemon]]:
    made: list[Daemon] = []

    def make(schedules: dict[str, str]) -> Daemon:
        made.append(Daemon(tmp_path, schedules))
        return made[-1]

    yield make
    for daemon in made:
        daemon.close()


def jumps(daemon: Daemon) -> list[int]:
    return [int(e["jump_ms"]) for e in daemon.events("clock.jumped")]  # type: ignore[call-overload]


def assert_jump(recorded: int, moved: int) -> None:
    """A recorded jump is the offset's change, give or take the time between two loop ticks."""
    assert abs(recorded - moved) < 2 * SECOND, (recorded, moved)


def test_a_jump_back_a_day_then_forward_days_is_recorded_and_runs_no_slot_twice(
    make_daemon: Callable[[dict[str, str]], Daemon],
) -> None:
    daemon = make_daemon(
        {"once": schedule(EVERY_MINUTE, "once"), "all-3": schedule(EVERY_MINUTE, "all", 3)}
    )
    base = (real_ms() // MINUTE + 2) * MINUTE
    first = base + MINUTE
    offset = daemon.set_wall(base + 55 * SECOND)
    daemon.start()
    wait_until(lambda: daemon.armed("once") and daemon.armed("all-3"), what="armed")
    assert str(daemon.armed("once")[0]["slot_at"]) < iso(first), "armed too late"
    wait_until(lambda: daemon.submitted("once") and daemon.submitted("all-3"), what="first slot")
    assert daemon.submitted("once") == keys("once", [first])
    assert daemon.submitted("all-3") == keys("all-3", [first])

    # back one day, to 2 s before the same minute of yesterday: that slot must not run again
    relived = first - DAY
    moved = daemon.set_wall(relived - 2 * SECOND) - offset
    offset += moved
    wait_until(lambda: jumps(daemon), what="the jump back")
    wait_until(lambda: daemon.wall() > relived + GRACE_MS, what="the relived slot")
    daemon.schedule_pass()
    [back] = jumps(daemon)
    assert_jump(back, moved)
    assert -DAY - MINUTE < back < -DAY
    for name in ("once", "all-3"):
        assert daemon.submitted(name) == keys(name, [first])
        assert daemon.skipped(name) == []

    # forward to three days after the first slot, mid-minute: the missed slots follow the policy
    now = first + 3 * DAY + 30 * SECOND
    moved = daemon.set_wall(now) - offset
    wait_until(lambda: len(jumps(daemon)) == 2, what="the jump forward")
    wait_until(lambda: len(daemon.submitted("once")) == 2, what="the catch-up pass")
    daemon.schedule_pass()
    daemon.stop()

    assert_jump(jumps(daemon)[1], moved)
    assert len(jumps(daemon)) == 2
    newest = first + 3 * DAY  # missed: first + 1m .. newest, 3 days of minutes
    count = 3 * 24 * 60
    assert daemon.submitted("once") == keys("once", [first, newest])
    assert daemon.skipped("once") == [(iso(first + MINUTE), iso(newest - MINUTE), count - 1)]
    caught_up = [newest - 2 * MINUTE, newest - MINUTE, newest]
    assert daemon.submitted("all-3") == keys("all-3", [first, *caught_up])
    assert daemon.skipped("all-3") == [(iso(first + MINUTE), iso(newest - 3 * MINUTE), count - 3)]
    listed = [str(j["key"]) for j in daemon.jobs() if j["schedule"] in ("once", "all-3")]
    assert sorted(listed) == sorted(daemon.submitted("once") + daemon.submitted("all-3"))
    assert len(set(listed)) == len(listed) == 6


def test_a_jump_forward_ten_years_is_recorded_and_gives_the_misfire_result_once(
    make_daemon: Callable[[dict[str, str]], Daemon],
) -> None:
    daemon = make_daemon(
        {"once": schedule(EVERY_DAY, "once"), "all-3": schedule(EVERY_DAY, "all", 3)}
    )
    start = (real_ms() // DAY + 1) * DAY + 12 * HOUR
    offset = daemon.set_wall(start)
    daemon.start()
    wait_until(lambda: daemon.armed("once") and daemon.armed("all-3"), what="armed")

    newest = start - 12 * HOUR + TEN_YEARS  # a midnight, half a day before the new now
    moved = daemon.set_wall(newest + 12 * HOUR) - offset
    wait_until(lambda: daemon.submitted("once"), what="the catch-up pass")
    daemon.schedule_pass()
    daemon.stop()

    [jump] = jumps(daemon)
    assert_jump(jump, moved)
    slots = list(range(start + 12 * HOUR, newest + 1, DAY))
    assert len(slots) == 3_652
    assert daemon.submitted("once") == keys("once", [newest])
    assert daemon.skipped("once") == [(iso(slots[0]), iso(slots[-2]), len(slots) - 1)]
    assert daemon.submitted("all-3") == keys("all-3", slots[-3:])
    assert daemon.skipped("all-3") == [(iso(slots[0]), iso(slots[-4]), len(slots) - 3)]


def test_a_jump_forward_ten_years_with_a_minutely_schedule_is_dealt_with_promptly(
    make_daemon: Callable[[dict[str, str]], Daemon],
) -> None:
    daemon = make_daemon({"once": schedule(EVERY_MINUTE, "once")})
    base = (real_ms() // MINUTE + 2) * MINUTE
    daemon.set_wall(base + 20 * SECOND)
    daemon.start()
    wait_until(lambda: daemon.armed("once"), what="armed")

    newest = base + TEN_YEARS
    daemon.set_wall(newest + 20 * SECOND)
    wait_until(lambda: jumps(daemon), what="the jump")
    wait_until(lambda: daemon.submitted("once"), timeout_s=10, what="the catch-up pass")
    daemon.schedule_pass()
    daemon.stop()

    slots = (newest - base) // MINUTE
    assert daemon.submitted("once") == keys("once", [newest])
    assert daemon.skipped("once") == [(iso(base + MINUTE), iso(newest - MINUTE), slots - 1)]
