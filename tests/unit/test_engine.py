"""The engine (``orchd.ops.engine``) on the memory ledger (``tests/memory_ledger.py``, held to
``SqliteLedger``'s behaviour by ``tests/contract/``), with a fake clock and a fake executor: no
file is written, no process is started and no time passes but the fake clock's.

The fake executor plays each job's runs from a script the test writes (an exit code per attempt,
or HANG for a run that ends only when signalled); ``wait`` moves the clock by its timeout when no
run is due to end. Every test ends with ``ledger.verify()`` (in the ledger fixture).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchd.core import drafts, ids, timefmt
from orchd.core.events import Actor, Draft
from orchd.core.policy import Backoff, JobType, Policy, Quota, Source
from orchd.core.ports import Exit, RunSpec
from orchd.core.projection import JobView
from orchd.errors import SpawnFailed, StorageError
from orchd.ops import jobs, site, sources
from orchd.ops.engine import Engine, Settled
from orchd.ops.jobs import SubmitRequest
from tests.fakes import CountingEntropy, FakeClock
from tests.memory_ledger import MemoryLedger

OPERATOR = Actor(uid=1000, user="alice", scopes=("orch:operate",))
WORKER = Actor(uid=999, user="orchd", scopes=("orch:run",))
HANG = None  # in a script: the run ends only when it is signalled
SLOT_MS = 1_764_115_200_000  # 2025-11-26T00:00:00.000Z, a day before the fake clock's start
OTHER_SLOT_MS = SLOT_MS + 3_600_000
GRACE_MS = 500
MAX_WAITS = 2_000  # far more than any test needs: more means the engine spins


# --- the fake executor --------------------------------------------------------------------------


@dataclass
class _Live:
    spec: RunSpec
    ends_at: int | None  # None: until signalled
    exit_code: int


class FakeExecutor:
    """The ``Executor`` port over a script of exits; it records what the engine asked of it."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.exits: dict[str, list[int | None]] = {}  # job id -> per attempt; default exit 0
        self.duration_ms: dict[str, int] = {}  # job id -> how long each run takes; default 0
        self.stubborn: set[str] = set()  # job ids whose runs ignore SIGTERM
        self.missing: set[str] = set()  # programs (argv[0]) that cannot be started
        self.output: dict[str, bytes] = {}  # job id -> what its runs print
        self.survivors = 0  # what sweep reports it killed
        self.on_start: Callable[[RunSpec], None] = lambda spec: None
        self.specs: list[RunSpec] = []  # every started run, in start order
        self.spans: dict[str, list[int | None]] = {}  # run id -> [started at, ended at]
        self.signals: list[tuple[str, bool, int]] = []  # (run id, kill, at)
        self.swept: list[list[str]] = []
        self.waits = 0
        self._live: dict[str, _Live] = {}

    def start(self, spec: RunSpec) -> int:
        if spec.argv[0] in self.missing:
            raise SpawnFailed(argv0=spec.argv[0], detail="No such file or directory")
        self.on_start(spec)
        script = self.exits.get(spec.job_id, [])
        code = script.pop(0) if script else 0
        now = self.clock.now_ms()
        ends_at = None if code is HANG else now + self.duration_ms.get(spec.job_id, 0)
        self._live[spec.run_id] = _Live(spec, ends_at, 0 if code is None else code)
        self.specs.append(spec)
        self.spans[spec.run_id] = [now, None]
        return 4000 + len(self.specs)

    def wait(self, timeout_ms: int) -> list[Exit]:
        self.waits += 1
        assert self.waits <= MAX_WAITS, "the engine keeps waiting without progress"
        if not self._due():
            self.clock.advance(timeout_ms)
        ended = []
        for live in self._due():
            del self._live[live.spec.run_id]
            self.spans[live.spec.run_id][1] = self.clock.now_ms()
            output = self.output.get(live.spec.job_id, b"")
            ended.append(
                Exit(run_id=live.spec.run_id, exit_code=live.exit_code, output_tail=output)
            )
        return ended

    def signal(self, run_id: str, *, kill: bool) -> None:
        self.signals.append((run_id, kill, self.clock.now_ms()))
        live = self._live.get(run_id)
        if live is None or (not kill and live.spec.job_id in self.stubborn):
            return
        live.ends_at, live.exit_code = self.clock.now_ms(), -9 if kill else -15

    def sweep(self, run_ids: Sequence[str]) -> int:
        self.swept.append(list(run_ids))
        return self.survivors

    def _due(self) -> list[_Live]:
        now = self.clock.now_ms()
        due = [live for live in self._live.values() if live.ends_at is not None]
        return sorted((live for live in due if live.ends_at <= now), key=lambda x: x.ends_at)

    # --- what happened ------------------------------------------------------------------------

    def started_at(self) -> list[int]:
        return [self.spans[spec.run_id][0] or 0 for spec in self.specs]

    def peak(self, job_ids: set[str] | None = None) -> int:
        """The most runs (of ``job_ids``, default all) that were going at once."""
        moments = []
        for spec in self.specs:
            if job_ids is None or spec.job_id in job_ids:
                start, end = self.spans[spec.run_id]
                moments += [(start, 1), (end if end is not None else 2**62, -1)]
        going = peak = 0
        for _at, change in sorted(moments, key=lambda m: (m[0], m[1])):
            going += change
            peak = max(peak, going)
        return peak


# --- fixtures and helpers -----------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def entropy() -> CountingEntropy:
    return CountingEntropy()


@pytest.fixture
def ledger(clock: FakeClock, entropy: CountingEntropy) -> Iterator[MemoryLedger]:
    first = site.initialized("hq", OPERATOR, "test")
    made = MemoryLedger.create("hq", clock, entropy, first)
    yield made
    made.verify()  # every test leaves a chain that verifies and projections equal to a rebuild
    made.close()


@pytest.fixture
def executor(clock: FakeClock) -> FakeExecutor:
    return FakeExecutor(clock)


@dataclass
class World:
    ledger: MemoryLedger
    clock: FakeClock
    entropy: CountingEntropy
    executor: FakeExecutor

    def engine(
        self,
        policy: Policy,
        executor: FakeExecutor | None = None,
        *,
        ledger: Any = None,
        **options: int,
    ) -> Engine:
        return Engine(
            ledger or self.ledger,
            policy,
            self.clock,
            self.entropy,
            executor or self.executor,
            WORKER,
            holder="test:1",
            kill_grace_ms=GRACE_MS,
            **options,
        )

    def submit(self, policy: Policy, job_type: str = "fetch", **changes: Any) -> str:
        fields: dict[str, Any] = {"source": None, "params": {}, "key": None, **changes}
        request = SubmitRequest(job_type=job_type, **fields)
        return jobs.submit(
            self.ledger, self.clock, self.entropy, OPERATOR, policy, request
        ).job.job_id

    def submit_for_slot(self, job_type: str, slot_ms: int, *, state: str = "queued") -> str:
        """A scheduled job of source nvd for the slot, as the scheduler records it."""
        job_id = ids.new_id(self.clock.now_ms(), self.entropy.token(ids.ENTROPY_BYTES))
        slot = timefmt.format_ms(slot_ms)
        draft = drafts.job_submitted(
            OPERATOR,
            job_id=job_id,
            job_type=job_type,
            key=f"{job_type}-{slot_ms}",
            params={},
            priority=0,
            state=state,
            source="nvd",
            schedule=f"{job_type}-daily",
            slot_at=slot,
        )
        self.ledger.append([draft])
        return job_id

    def job(self, job_id: str) -> JobView:
        found = self.ledger.job(job_id)
        assert found is not None
        return found

    def runs(self, job_id: str) -> list[tuple[str, int | None]]:
        return [(run.state, run.exit_code) for run in self.ledger.runs_of(job_id)]

    def payloads(self, job_id: str, event_type: str) -> list[dict[str, Any]]:
        return [dict(e.payload) for e in self.ledger.events_of(job_id) if e.type == event_type]

    def types(self, job_id: str) -> list[str]:
        return [e.type for e in self.ledger.events_of(job_id)]


@pytest.fixture
def world(
    ledger: MemoryLedger, clock: FakeClock, entropy: CountingEntropy, executor: FakeExecutor
) -> World:
    return World(ledger, clock, entropy, executor)


def kind(name: str = "fetch", **changes: Any) -> JobType:
    fields: dict[str, Any] = {
        "argv": ("/bin/true",),
        "max_attempts": 3,
        "backoff": Backoff(base_s=2, cap_s=60, jitter_pct=0),
    }
    return JobType(name=name, **{**fields, **changes})


def policy(*types: JobType, concurrency: int = 4, quotas: Sequence[Quota] = ()) -> Policy:
    return Policy(
        concurrency=concurrency,
        sources={"nvd": Source(name="nvd")},
        job_types={t.name: t for t in types or (kind(),)},
        quotas={q.target: q for q in quotas},
    )


def at(ms: int) -> str:
    return timefmt.format_ms(ms)


def leased(run_id: str, job_id: str, expires_ms: int) -> Draft:
    """The ``run.leased`` a worker records before it starts a run."""
    payload = {"run_id": run_id, "job_id": job_id, "attempt": 1, "lease_expires_at": at(expires_ms)}
    return Draft(
        type="run.leased", actor=WORKER, idempotency_key=f"lease:{run_id}", payload=payload
    )


# --- success, retries and the dead-letter state -------------------------------------------------


def test_a_job_that_exits_0_succeeds_and_its_output_is_kept(world: World) -> None:
    rules = policy()
    job_id = world.submit(rules)
    world.executor.output[job_id] = b"fetched 3 feeds\n"

    tally = world.engine(rules).run(until_idle=True)

    assert (tally.started, tally.ended) == (1, {"succeeded": 1})
    job = world.job(job_id)
    assert (job.state, job.attempts) == ("succeeded", 1)
    assert world.runs(job_id) == [("succeeded", 0)]
    assert world.types(job_id) == ["job.submitted", "run.leased", "run.started", "run.ended"]
    (run,) = world.ledger.runs_of(job_id)
    assert world.payloads(job_id, "run.started") == [
        {"run_id": run.run_id, "job_id": job_id, "pid": 4001}
    ]
    assert world.payloads(job_id, "run.ended") == [
        {
            "run_id": run.run_id,
            "job_id": job_id,
            "outcome": "succeeded",
            "exit_code": 0,
            "output": "fetched 3 feeds\n",
            "job_state": "succeeded",
        }
    ]


@pytest.mark.parametrize(("options", "lease_ms"), [({}, 30_000), ({"lease_ms": 45_000}, 45_000)])
def test_a_lease_lasts_three_heartbeats_or_what_it_is_set_to(
    world: World, options: dict[str, int], lease_ms: int
) -> None:
    rules = policy()
    job_id = world.submit(rules)
    leased_at = world.clock.now_ms()

    world.engine(rules, heartbeat_ms=10_000, **options).run(until_idle=True)

    [leased] = world.payloads(job_id, "run.leased")
    assert leased["lease_expires_at"] == timefmt.format_ms(leased_at + lease_ms)


def test_a_failure_is_retried_after_the_backoff_then_succeeds(world: World) -> None:
    rules = policy(kind(backoff=Backoff(base_s=2, cap_s=60, jitter_pct=0)))
    job_id = world.submit(rules)
    world.executor.exits[job_id] = [1, 0]
    start = world.clock.now_ms()

    world.engine(rules).run(until_idle=True)

    assert world.runs(job_id) == [("failed", 1), ("succeeded", 0)]
    assert world.executor.started_at() == [start, start + 2000]
    first, _second = world.payloads(job_id, "run.ended")
    assert (first["job_state"], first["cause"], first["eligible_at"]) == (
        "retry_wait",
        "failed",
        at(start + 2000),
    )
    job = world.job(job_id)
    assert (job.state, job.attempts) == ("succeeded", 2)


def test_a_job_failing_every_attempt_is_dead_with_attempts_exhausted(world: World) -> None:
    rules = policy(kind(max_attempts=3))
    job_id = world.submit(rules)
    world.executor.exits[job_id] = [2, 2, 2, 0]

    tally = world.engine(rules).run(until_idle=True)

    assert world.runs(job_id) == [("failed", 2)] * 3
    job = world.job(job_id)
    assert (job.state, job.cause, job.attempts) == ("dead", "attempts_exhausted", 3)
    last = world.payloads(job_id, "run.ended")[-1]
    assert (last["job_state"], last["cause"]) == ("dead", "attempts_exhausted")
    assert "eligible_at" not in last
    assert tally.ended == {"retry_wait": 2, "dead": 1}


def test_each_runs_end_is_told_once_recorded_with_its_jobs_fate(world: World) -> None:
    rules = policy(kind(max_attempts=2, backoff=Backoff(base_s=2, cap_s=60, jitter_pct=0)))
    job_id = world.submit(rules)
    world.executor.exits[job_id] = [4, 4]
    start = world.clock.now_ms()
    told: list[tuple[Settled, int]] = []

    def on_settled(settled: Settled) -> None:  # what the ledger holds when told
        told.append((settled, len(world.payloads(job_id, "run.ended"))))

    Engine(
        world.ledger,
        rules,
        world.clock,
        world.entropy,
        world.executor,
        WORKER,
        holder="test:1",
        on_settled=on_settled,
    ).run(until_idle=True)

    said = [
        (s.attempt, s.outcome, s.exit_code, s.cause, s.job_state, s.eligible_at) for s, _ in told
    ]
    assert said == [
        (1, "failed", 4, "failed", "retry_wait", at(start + 2000)),
        (2, "failed", 4, "attempts_exhausted", "dead", None),
    ]
    assert [recorded for _, recorded in told] == [1, 2]  # each told after its commit
    assert {s.job.job_id for s, _ in told} == {job_id}


def test_an_exit_code_retry_on_does_not_list_is_dead_not_retryable(world: World) -> None:
    rules = policy(kind(retry_on=frozenset({75})))
    job_id = world.submit(rules)
    world.executor.exits[job_id] = [3, 0]

    world.engine(rules).run(until_idle=True)

    assert world.runs(job_id) == [("failed", 3)]
    job = world.job(job_id)
    assert (job.state, job.cause) == ("dead", "not_retryable")


def test_an_exit_code_retry_on_lists_is_retried(world: World) -> None:
    rules = policy(kind(retry_on=frozenset({75})))
    job_id = world.submit(rules)
    world.executor.exits[job_id] = [75, 0]

    world.engine(rules).run(until_idle=True)

    assert world.runs(job_id) == [("failed", 75), ("succeeded", 0)]


def test_a_program_that_cannot_start_is_dead_spawn_failed_with_the_reason(world: World) -> None:
    rules = policy(kind(argv=("/opt/absent/fetch", "--all")))
    job_id = world.submit(rules)
    world.executor.missing.add("/opt/absent/fetch")

    tally = world.engine(rules).run(until_idle=True)

    assert tally.started == 0
    job = world.job(job_id)
    assert (job.state, job.cause, job.attempts) == ("dead", "spawn_failed", 1)
    assert world.runs(job_id) == [("failed", None)]
    assert "run.started" not in world.types(job_id)
    (ended,) = world.payloads(job_id, "run.ended")
    assert (ended["outcome"], ended["job_state"], ended["cause"]) == (
        "failed",
        "dead",
        "spawn_failed",
    )
    assert ended["output"] == "orchd: cannot start /opt/absent/fetch: No such file or directory\n"


def test_a_job_of_a_type_the_policy_no_longer_defines_is_dead_bad_command(world: World) -> None:
    job_id = world.submit(policy(kind("retired")), job_type="retired")

    world.engine(policy(kind("fetch"))).run(until_idle=True)

    assert world.executor.specs == []
    job = world.job(job_id)
    assert (job.state, job.cause) == ("dead", "bad_command")
    (ended,) = world.payloads(job_id, "run.ended")
    assert ended["output"].startswith("orchd: ")
    assert "'retired'" in ended["output"]


def test_a_job_whose_argv_cannot_be_built_any_more_is_dead_bad_command(world: World) -> None:
    job_id = world.submit(policy(kind()))
    now_requires = kind(argv=("/usr/bin/fetch", "{target}"), params={"target": None})

    world.engine(policy(now_requires)).run(until_idle=True)

    assert world.executor.specs == []
    assert (world.job(job_id).state, world.job(job_id).cause) == ("dead", "bad_command")
    (ended,) = world.payloads(job_id, "run.ended")
    assert "'target'" in ended["output"]


# --- timeouts -----------------------------------------------------------------------------------


def test_a_run_past_its_timeout_gets_sigterm_then_sigkill_after_the_grace(world: World) -> None:
    rules = policy(kind(timeout_s=2, max_attempts=1))
    job_id = world.submit(rules)
    world.executor.exits[job_id] = [HANG]
    world.executor.stubborn.add(job_id)
    start = world.clock.now_ms()

    world.engine(rules).run(until_idle=True)

    (run,) = world.ledger.runs_of(job_id)
    assert world.executor.signals == [
        (run.run_id, False, start + 2000),
        (run.run_id, True, start + 2000 + GRACE_MS),
    ]
    assert world.runs(job_id) == [("timed_out", -9)]
    job = world.job(job_id)
    assert (job.state, job.cause) == ("dead", "attempts_exhausted")


def test_a_run_that_stops_on_sigterm_is_not_killed_and_ends_timed_out(world: World) -> None:
    rules = policy(kind(timeout_s=2, retry_on=frozenset({75})))
    job_id = world.submit(rules)
    world.executor.exits[job_id] = [HANG]

    world.engine(rules).run(until_idle=True)

    (run,) = world.ledger.runs_of(job_id)
    assert [(r, kill) for r, kill, _at in world.executor.signals] == [(run.run_id, False)]
    assert world.runs(job_id) == [("timed_out", -15)]
    (ended,) = world.payloads(job_id, "run.ended")
    assert (ended["outcome"], ended["job_state"], ended["cause"]) == (
        "timed_out",
        "dead",
        "not_retryable",
    )


def test_a_timed_out_run_is_retried_when_retry_on_is_any(world: World) -> None:
    rules = policy(kind(timeout_s=2, retry_on=None))
    job_id = world.submit(rules)
    world.executor.exits[job_id] = [HANG, 0]

    world.engine(rules).run(until_idle=True)

    assert world.runs(job_id) == [("timed_out", -15), ("succeeded", 0)]
    first, _ = world.payloads(job_id, "run.ended")
    assert (first["job_state"], first["cause"]) == ("retry_wait", "timed_out")


# --- order and limits ---------------------------------------------------------------------------


def test_jobs_start_by_priority_then_first_in_first_out(world: World) -> None:
    rules = policy(concurrency=1)
    names = {}
    for name, priority in [("a", 0), ("b", 5), ("c", 0), ("d", 5), ("e", -1), ("f", 0)]:
        names[world.submit(rules, priority=priority)] = name

    world.engine(rules).run(until_idle=True)

    assert [names[spec.job_id] for spec in world.executor.specs] == list("bdacfe")


def test_the_job_types_priority_orders_jobs_submitted_without_one(world: World) -> None:
    rules = policy(kind("low", priority=-3), kind("high", priority=7), concurrency=1)
    low = world.submit(rules, job_type="low")
    high = world.submit(rules, job_type="high")

    world.engine(rules).run(until_idle=True)

    assert [spec.job_id for spec in world.executor.specs] == [high, low]


def test_the_global_concurrency_cap_is_never_exceeded(world: World) -> None:
    rules = policy(concurrency=2)
    job_ids = [world.submit(rules) for _ in range(6)]
    for n, job_id in enumerate(job_ids):
        world.executor.duration_ms[job_id] = [3000, 1000, 2500, 500, 1500, 2000][n]

    tally = world.engine(rules).run(until_idle=True)

    assert world.executor.peak() == 2
    assert tally.ended == {"succeeded": 6}
    assert all(world.job(job_id).state == "succeeded" for job_id in job_ids)


def test_jobs_waiting_for_the_global_cap_stay_queued_without_events(world: World) -> None:
    rules = policy(concurrency=1)
    first, second = world.submit(rules), world.submit(rules)
    world.executor.duration_ms[first] = 5000

    world.engine(rules).run(until_idle=True)

    assert world.types(second) == ["job.submitted", "run.leased", "run.started", "run.ended"]
    assert world.executor.started_at()[1] == world.executor.started_at()[0] + 5000


def test_a_job_type_concurrency_quota_holds_the_others_throttled_then_they_run(
    world: World,
) -> None:
    quota = Quota(target=("job_type", "scan"), concurrency=1)
    rules = policy(kind("scan"), kind("fetch"), quotas=[quota])
    scans = [world.submit(rules, job_type="scan") for _ in range(3)]
    fetch = world.submit(rules, job_type="fetch")
    for job_id in [*scans, fetch]:
        world.executor.duration_ms[job_id] = 1000

    world.engine(rules).run(until_idle=True)

    assert world.executor.peak(set(scans)) == 1
    assert world.executor.peak() == 2  # the fetch job ran beside a scan: the quota is per type
    assert all(world.job(job_id).state == "succeeded" for job_id in scans)
    for held in scans[1:]:
        # held through one run or two, the throttle is recorded once: what held it never changed
        assert world.payloads(held, "job.transitioned") == [
            {"job_id": held, "from": "queued", "to": "throttled", "cause": "concurrency"}
        ]
        assert world.runs(held) == [("succeeded", 0)]


def test_a_rate_quota_throttles_until_the_next_token_then_the_jobs_run(world: World) -> None:
    quota = Quota(target=("job_type", "fetch"), rate="6/min", burst=1)
    rules = policy(quotas=[quota])
    job_ids = [world.submit(rules) for _ in range(3)]
    start = world.clock.now_ms()

    world.engine(rules).run(until_idle=True)

    assert world.executor.started_at() == [start, start + 10_000, start + 20_000]
    assert [spec.job_id for spec in world.executor.specs] == job_ids
    second = world.payloads(job_ids[1], "job.transitioned")
    third = world.payloads(job_ids[2], "job.transitioned")
    assert [(p["cause"], p["eligible_at"]) for p in second] == [("rate", at(start + 10_000))]
    assert [(p["to"], p["cause"], p["eligible_at"]) for p in third] == [
        ("throttled", "rate", at(start + 10_000)),
        ("throttled", "rate", at(start + 20_000)),
    ]
    assert all(world.job(job_id).state == "succeeded" for job_id in job_ids)


def test_a_retry_due_while_the_rate_is_spent_is_throttled_then_runs(world: World) -> None:
    quota = Quota(target=("job_type", "fetch"), rate="1/min", burst=1)
    rules = policy(quotas=[quota])
    job_id = world.submit(rules)
    world.executor.exits[job_id] = [1, 0]  # the retry is due after 2 s, the next token after 60
    start = world.clock.now_ms()

    world.engine(rules).run(until_idle=True)

    assert world.executor.started_at() == [start, start + 60_000]
    assert world.payloads(job_id, "job.transitioned") == [
        {"job_id": job_id, "from": "retry_wait", "to": "queued", "cause": "retry_due"},
        {
            "job_id": job_id,
            "from": "queued",
            "to": "throttled",
            "cause": "rate",
            "eligible_at": at(start + 60_000),
        },
    ]
    assert world.runs(job_id) == [("failed", 1), ("succeeded", 0)]


def test_a_restarted_engine_does_not_grant_a_fresh_rate_allowance(world: World) -> None:
    quota = Quota(target=("job_type", "fetch"), rate="1/hour", burst=1)
    rules = policy(quotas=[quota])
    ran = world.submit(rules)
    world.engine(rules).run(until_idle=True)
    held = world.submit(rules)

    world.engine(rules, FakeExecutor(world.clock)).run(until_idle=True)

    assert world.job(ran).state == "succeeded"
    job = world.job(held)
    assert (job.state, job.cause) == ("throttled", "rate")


def test_a_reload_after_another_writer_keeps_the_counts_and_takes_its_pauses(
    world: World,
) -> None:
    """What an import brings (a pause here) takes effect at ``reload``; the rate this engine
    spent stays spent, as it counted it (nothing else records this site's starts)."""
    quota = Quota(target=("job_type", "fetch"), rate="1/hour", burst=1)
    rules = policy(kind(), kind("other"), quotas=[quota])
    engine = world.engine(rules)
    ran = world.submit(rules)
    engine.run(until_idle=True)
    held = world.submit(rules)
    paused = world.submit(rules, job_type="other", source="nvd")
    sources.pause(world.ledger, world.clock, world.entropy, OPERATOR, rules, "nvd", "broken")

    engine.reload()
    engine.run(until_idle=True)

    assert world.job(ran).state == "succeeded"
    assert (world.job(held).state, world.job(held).cause) == ("throttled", "rate")
    assert (world.job(paused).state, world.job(paused).cause) == ("throttled", "paused")


def test_a_paused_sources_jobs_are_throttled_and_the_engine_goes_idle(world: World) -> None:
    rules = policy()
    sources.pause(world.ledger, world.clock, world.entropy, OPERATOR, rules, "nvd", "broken")
    held = world.submit(rules, source="nvd")
    free = world.submit(rules)

    tally = world.engine(rules).run(until_idle=True)

    assert [spec.job_id for spec in world.executor.specs] == [free]
    assert tally.ended == {"succeeded": 1}
    job = world.job(held)
    assert (job.state, job.cause, job.eligible_at) == ("throttled", "paused", None)


def test_a_job_held_by_a_pause_runs_once_the_source_is_resumed(world: World) -> None:
    rules = policy()
    sources.pause(world.ledger, world.clock, world.entropy, OPERATOR, rules, "nvd", "broken")
    job_id = world.submit(rules, source="nvd")
    world.engine(rules).run(until_idle=True)
    sources.resume(world.ledger, world.clock, world.entropy, OPERATOR, rules, "nvd", "fixed")

    world.engine(rules).run(until_idle=True)

    assert world.runs(job_id) == [("succeeded", 0)]
    assert world.job(job_id).state == "succeeded"


# --- dependencies -------------------------------------------------------------------------------


def with_dependency(**upstream: Any) -> Policy:
    return policy(kind("up", **upstream), kind("down", after=("up",)))


def test_a_dependent_runs_after_its_upstream_of_the_same_slot_succeeded(world: World) -> None:
    rules = with_dependency(max_attempts=1)
    up = world.submit_for_slot("up", SLOT_MS)
    other_slot = world.submit_for_slot("up", OTHER_SLOT_MS)
    down = world.submit_for_slot("down", SLOT_MS, state="waiting")
    world.executor.duration_ms[up] = 3000
    world.executor.exits[other_slot] = [1]  # another slot's failure does not concern it

    world.engine(rules).run(until_idle=True)

    assert world.job(other_slot).state == "dead"
    assert world.job(down).state == "succeeded"
    up_run, down_run = (world.ledger.runs_of(job_id)[0] for job_id in (up, down))
    assert up_run.ended_at is not None and down_run.leased_at >= up_run.ended_at
    assert world.payloads(down, "job.transitioned") == [
        {"job_id": down, "from": "waiting", "to": "queued", "cause": "upstream_succeeded"}
    ]


def test_a_dependent_is_cancelled_when_its_upstream_ends_dead(world: World) -> None:
    rules = with_dependency(max_attempts=1)
    up = world.submit_for_slot("up", SLOT_MS)
    down = world.submit_for_slot("down", SLOT_MS, state="waiting")
    world.executor.exits[up] = [1]

    world.engine(rules).run(until_idle=True)

    assert [spec.job_id for spec in world.executor.specs] == [up]
    job = world.job(down)
    assert (job.state, job.cause) == ("cancelled", "upstream_failed")
    assert world.payloads(down, "job.transitioned") == [
        {"job_id": down, "from": "waiting", "to": "cancelled", "cause": "upstream_failed"}
    ]


def test_a_dependent_waits_through_its_upstreams_retries(world: World) -> None:
    rules = with_dependency(max_attempts=2)
    up = world.submit_for_slot("up", SLOT_MS)
    down = world.submit_for_slot("down", SLOT_MS, state="waiting")
    world.executor.exits[up] = [1, 0]

    world.engine(rules).run(until_idle=True)

    assert world.runs(up) == [("failed", 1), ("succeeded", 0)]
    assert world.job(down).state == "succeeded"


def test_a_dependent_whose_upstream_was_never_submitted_waits_and_the_engine_idles(
    world: World,
) -> None:
    rules = with_dependency()
    down = world.submit_for_slot("down", SLOT_MS, state="waiting")
    world.submit_for_slot("up", OTHER_SLOT_MS)  # another slot's upstream

    world.engine(rules).run(until_idle=True)

    assert world.job(down).state == "waiting"
    assert world.types(down) == ["job.submitted"]


# --- recovery, environment, stopping ------------------------------------------------------------


def test_a_run_left_open_by_a_dead_worker_is_interrupted_swept_and_retried(world: World) -> None:
    rules = policy()
    job_id = world.submit(rules)
    run_id = ids.new_id(world.clock.now_ms(), world.entropy.token(ids.ENTROPY_BYTES))
    world.ledger.append([leased(run_id, job_id, world.clock.now_ms() + 30_000)])
    world.clock.advance(60_000)
    world.executor.survivors = 2
    now = world.clock.now_ms()

    tally = world.engine(rules).run(until_idle=True)

    assert world.executor.swept == [[run_id]]
    assert (tally.interrupted, tally.survivors_killed) == (1, 2)
    assert world.runs(job_id) == [("interrupted", None), ("succeeded", 0)]
    first, _ = world.payloads(job_id, "run.ended")
    assert first == {
        "run_id": run_id,
        "job_id": job_id,
        "outcome": "interrupted",
        "job_state": "retry_wait",
        "cause": "lease_lost",
        "eligible_at": at(now),
    }
    job = world.job(job_id)
    assert (job.state, job.attempts) == ("succeeded", 2)


def test_a_start_with_nothing_left_open_sweeps_nothing(world: World) -> None:
    world.engine(policy()).run(until_idle=True)
    assert world.executor.swept == []


def test_a_run_gets_its_argv_and_the_orchd_environment(world: World) -> None:
    fetch = kind(
        argv=("/usr/bin/fetch", "--window={window}", "{key}", "{attempt}"),
        params={"window": "24h"},
        env={"LANG": "C", "ORCHD_JOB_ID": "forged"},
        workdir="/srv/feeds",
    )
    rules = policy(fetch)
    job_id = world.submit(rules, source="nvd", key="nightly-1", params={"window": "48h"})
    world.executor.exits[job_id] = [1, 0]

    world.engine(rules).run(until_idle=True)

    first, second = world.executor.specs
    run_ids = [run.run_id for run in world.ledger.runs_of(job_id)]
    assert [first.run_id, second.run_id] == run_ids
    assert first.argv == ("/usr/bin/fetch", "--window=48h", "nightly-1", "1")
    assert second.argv[-1] == "2"
    assert first.workdir == "/srv/feeds"
    assert first.env == {
        "LANG": "C",
        "ORCHD_JOB_ID": job_id,
        "ORCHD_RUN_ID": run_ids[0],
        "ORCHD_IDEMPOTENCY_KEY": "nightly-1",
        "ORCHD_ATTEMPT": "1",
        "ORCHD_JOB_TYPE": "fetch",
        "ORCHD_SOURCE": "nvd",
    }
    assert (second.env["ORCHD_RUN_ID"], second.env["ORCHD_ATTEMPT"]) == (run_ids[1], "2")


def test_stop_interrupts_the_running_runs_and_their_jobs_may_run_again_at_once(
    world: World,
) -> None:
    rules = policy()
    job_ids = [world.submit(rules) for _ in range(2)]
    for job_id in job_ids:
        world.executor.exits[job_id] = [HANG, 0]

    tally = world.engine(rules).run(
        until_idle=False, should_stop=lambda: len(world.executor.specs) == 2
    )

    assert [kill for _run, kill, _at in world.executor.signals] == [False, False]
    stopped_at = world.executor.signals[0][2]
    assert tally.ended == {"retry_wait": 2}
    for job_id in job_ids:
        assert world.runs(job_id) == [("interrupted", -15)]
        job = world.job(job_id)
        assert (job.state, job.cause, job.eligible_at) == (
            "retry_wait",
            "interrupted",
            at(stopped_at),
        )

    world.engine(rules).run(until_idle=True)

    for job_id in job_ids:
        assert world.runs(job_id) == [("interrupted", -15), ("succeeded", 0)]


def test_stop_kills_a_run_that_ignores_sigterm_after_the_grace(world: World) -> None:
    rules = policy()
    job_id = world.submit(rules)
    world.executor.exits[job_id] = [HANG]
    world.executor.stubborn.add(job_id)

    world.engine(rules).run(until_idle=False, should_stop=lambda: bool(world.executor.specs))

    [(_, term, term_at), (_, kill, kill_at)] = world.executor.signals
    assert (term, kill, kill_at - term_at) == (False, True, GRACE_MS)
    assert world.runs(job_id) == [("interrupted", -9)]
    assert world.job(job_id).state == "retry_wait"


# --- defects found while writing these tests ----------------------------------------------------


def test_a_retry_held_by_a_paused_source_lets_the_engine_go_idle(world: World) -> None:
    rules = policy()
    job_id = world.submit(rules, source="nvd")
    world.executor.exits[job_id] = [1, 0]
    world.engine(rules).run(until_idle=True, max_wait_ms=0)  # returns in the backoff
    assert world.job(job_id).state == "retry_wait"
    sources.pause(world.ledger, world.clock, world.entropy, OPERATOR, rules, "nvd", "broken")

    world.engine(rules, FakeExecutor(world.clock)).run(until_idle=True)

    job = world.job(job_id)
    assert (job.state, job.cause) == ("throttled", "paused")


def test_every_change_of_what_holds_a_job_is_recorded(world: World) -> None:
    quota = Quota(target=("job_type", "fetch"), rate="1/min", burst=1, concurrency=1)
    rules = policy(quotas=[quota])
    job_ids = [world.submit(rules) for _ in range(4)]
    last = job_ids[-1]
    seen: list[str | None] = []
    world.executor.on_start = lambda spec: seen.append(world.job(last).cause)

    world.engine(rules).run(until_idle=True)

    # while each earlier job starts, the last one is held by the concurrency that start takes
    assert seen == ["concurrency", "concurrency", "concurrency", None]
    holds = [p["cause"] for p in world.payloads(last, "job.transitioned")]
    assert holds == ["concurrency", "rate"] * 3


def test_a_retry_held_by_a_concurrency_quota_waits_for_the_run_without_spinning(
    world: World,
) -> None:
    rules = policy(quotas=[Quota(target=("job_type", "fetch"), concurrency=1)])
    retried, long_run = world.submit(rules), world.submit(rules)
    world.executor.exits[retried] = [1, 0]  # eligible again 2 s later, while long_run runs
    world.executor.duration_ms[long_run] = 10_000

    world.engine(rules).run(until_idle=True)

    assert world.runs(retried) == [("failed", 1), ("succeeded", 0)]
    assert world.executor.waits < 100  # about one wait per second of fake time


def test_a_job_type_the_policy_lacks_is_explained_as_a_job_type(world: World) -> None:
    job_id = world.submit(policy(kind("retired")), job_type="retired")

    world.engine(policy(kind("fetch"))).run(until_idle=True)

    (ended,) = world.payloads(job_id, "run.ended")
    assert "--param" not in ended["output"]
    assert "job type 'retired'" in ended["output"]


@pytest.mark.parametrize("exit_code", [0, 1])
def test_a_job_cancelled_after_its_run_ended_but_before_the_next_step_stays_cancelled(
    world: World, exit_code: int
) -> None:
    """The daemon's tick runs between a run's exit and the step that records it; an operator's
    cancel there used to make the step's transaction fail (cancelled -> succeeded) and the
    engine stop."""
    rules = policy()
    job_id = world.submit(rules)
    world.executor.exits[job_id] = [exit_code]
    cancelled: list[JobView] = []

    def tick() -> bool:  # as the daemon's: it records what operators asked for
        if world.executor.specs and not cancelled:
            cancelled.append(jobs.cancel(world.ledger, OPERATOR, rules, job_id, "not needed").job)
            return True
        return False

    tally = world.engine(rules).run(until_idle=True, tick=tick)

    assert cancelled[0].state == "cancelled"
    job = world.job(job_id)
    assert (job.state, job.cause, job.attempts) == ("cancelled", "operator", 1)
    assert world.runs(job_id) == [("succeeded" if exit_code == 0 else "failed", exit_code)]
    (ended,) = world.payloads(job_id, "run.ended")
    assert "job_state" not in ended  # the run ended; the job had moved on
    assert tally.ended == {} and len(world.executor.specs) == 1


@pytest.mark.parametrize("stubborn", [False, True])
def test_cancelling_a_running_job_stops_its_run(world: World, stubborn: bool) -> None:
    rules = policy()
    job_id, other = world.submit(rules), world.submit(rules)
    world.executor.exits[job_id] = [HANG]
    world.executor.duration_ms[other] = 3 * GRACE_MS
    if stubborn:
        world.executor.stubborn.add(job_id)
    cancelled_at: list[int] = []

    def tick() -> bool:  # as the daemon's after an operator's call
        if world.executor.specs and not cancelled_at:
            jobs.cancel(world.ledger, OPERATOR, rules, job_id, "superseded")
            cancelled_at.append(world.clock.monotonic_ms())
            return True
        return False

    tally = world.engine(rules).run(until_idle=True, tick=tick)

    (run_id,) = [spec.run_id for spec in world.executor.specs if spec.job_id == job_id]
    expected = [(run_id, False, cancelled_at[0])]
    if stubborn:
        expected.append((run_id, True, cancelled_at[0] + GRACE_MS))
    assert world.executor.signals == expected
    job = world.job(job_id)
    assert (job.state, job.cause) == ("cancelled", "operator")
    assert world.runs(job_id) == [("interrupted", -9 if stubborn else -15)]
    (ended,) = world.payloads(job_id, "run.ended")
    assert (ended["outcome"], ended["cause"]) == ("interrupted", "cancelled")
    assert "job_state" not in ended
    assert world.runs(other) == [("succeeded", 0)]  # the other run went on as it was
    assert tally.ended == {"succeeded": 1}


# --- a failing disk -----------------------------------------------------------------------------


class FailingAppends:
    """The ledger, whose next ``failures`` appends fail as on a full disk (nothing recorded)."""

    def __init__(self, ledger: MemoryLedger, failures: int) -> None:
        self._ledger, self.failures = ledger, failures

    def append(self, drafts: Sequence[Draft]) -> Any:
        if self.failures:
            self.failures -= 1
            raise StorageError(path=Path("ledger.db"), detail="No space left on device")
        return self._ledger.append(drafts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ledger, name)


def test_a_lease_whose_record_failed_is_started_once_it_is_recorded(world: World) -> None:
    rules = policy()
    job_id = world.submit(rules)
    engine = world.engine(rules, ledger=FailingAppends(world.ledger, failures=1))
    told: list[StorageError | None] = []

    engine.run(until_idle=True, on_storage=told.append)

    assert [type(t).__name__ if t else None for t in told] == ["StorageError", None]
    assert world.job(job_id).state == "succeeded"
    assert world.runs(job_id) == [("succeeded", 0)]  # one lease, one process, one end
    assert len(world.executor.specs) == 1


def test_a_refresh_while_a_lease_is_unrecorded_does_not_lease_the_job_twice(world: World) -> None:
    rules = policy()
    job_id = world.submit(rules)
    engine = world.engine(rules, ledger=FailingAppends(world.ledger, failures=1))

    engine.run(until_idle=True, on_storage=lambda exc: None, tick=lambda: True)  # the daemon's

    assert world.runs(job_id) == [("succeeded", 0)]
    assert len(world.executor.specs) == 1


# --- the ledger's writer held by another connection ------------------------------------------


class HeldWriter:
    """The ``Writer`` port: held by another connection for the takes listed in ``held_for``
    (counted from 1), free otherwise; it counts the loop's takes and gives back."""

    def __init__(self, held_for: range) -> None:
        self.held_for, self.takes, self.holding = held_for, 0, False

    def take(self) -> bool:
        assert not self.holding, "taken twice without a give_back"
        self.takes += 1
        self.holding = self.takes not in self.held_for
        return self.holding

    def give_back(self) -> None:
        assert self.holding, "given back without a take"
        self.holding = False


def test_while_the_writer_is_held_a_run_that_times_out_is_signalled_and_its_end_kept_for_after(
    world: World,
) -> None:
    rules = policy(kind(timeout_s=5, max_attempts=1))
    job_id = world.submit(rules)
    world.executor.exits[job_id] = [HANG]
    writer = HeldWriter(range(3, 40))  # held from the third take: the run is started by then
    engine = world.engine(rules)
    appended: list[int] = []
    real_append = world.ledger.append

    def append(found: Sequence[Draft]) -> Any:
        assert writer.holding, "a write without the writer"
        appended.append(writer.takes)
        return real_append(found)

    world.ledger.append = append  # type: ignore[method-assign]
    signalled_held: list[bool] = []
    real_signal = world.executor.signal

    def signal(run_id: str, *, kill: bool) -> None:
        signalled_held.append(not writer.holding)
        real_signal(run_id, kill=kill)

    world.executor.signal = signal  # type: ignore[method-assign]

    tally = engine.run(until_idle=True, writer=writer)

    [(_run_id, kill, _at)] = world.executor.signals
    assert not kill and signalled_held == [True]  # the timeout, while the writer was held
    assert writer.takes >= 40
    assert (world.job(job_id).state, world.runs(job_id)) == ("dead", [("timed_out", -15)])
    assert min(a for a in appended if a > 2) == 40  # its end waited for the writer
    assert tally.longest_record_delay_ms >= 30_000  # some 37 waits of a second (the fake clock)
    assert not writer.holding
