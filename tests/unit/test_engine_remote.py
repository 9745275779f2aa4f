"""Remote runs in the engine (``orchd.ops.engine.remote``), on the memory ledger with a fake clock
and a fake dispatcher: offers after the lease is committed, claims granted once the run's start
is committed, heartbeats, results folded once, lapses on the daemon's clock, stops told at the
next heartbeat, and a daemon started anew adopting what its workers still run. Every refusal is
answered, audited, and changes nothing else. Every test ends with ``ledger.verify()``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from orchd.core import remote
from orchd.core.policy import JobType, Policy
from orchd.ops import jobs, site
from orchd.ops.engine import Engine
from tests.fakes import CountingEntropy, FakeClock
from tests.memory_ledger import MemoryLedger
from tests.unit.test_engine import OPERATOR, FakeExecutor, World, kind, policy

SECRET = b"k" * 32
LEASE_MS = 2000
WORKERS = {"w-1": frozenset({"scan"}), "w-2": frozenset({"scan"}), "w-3": frozenset({"other"})}


@dataclass(frozen=True)
class Heard:
    kind: str
    worker: str
    data: bytes


@dataclass
class FakeDispatch:
    """The ``Dispatch`` port: what the engine offered, answered and acknowledged."""

    available: bool = True
    offers: dict[str, dict[str, Any]] = field(default_factory=dict)  # run id -> the offer
    settled_runs: list[str] = field(default_factory=list)
    heard: list[Heard] = field(default_factory=list)
    answers: list[tuple[Heard, remote.Message]] = field(default_factory=list)
    acked: list[Heard] = field(default_factory=list)

    def offer(self, run_id: str, job_type: str, data: bytes) -> None:
        self.offers[run_id] = dict(remote.decode(data, "offer", sender="the engine").fields)

    def settled(self, run_id: str) -> None:
        self.settled_runs.append(run_id)

    def take(self) -> list[Heard]:
        taken, self.heard = self.heard, []
        return taken

    def answer(self, said: Any, data: bytes) -> None:
        kinds = ("granted", "refused", "renewed", "stop")
        self.answers.append((said, remote.decode(data, kinds, sender="the engine")))

    def done(self, said: Any) -> None:
        self.acked.append(said)

    # --- a worker's side ----------------------------------------------------------------------

    def say(self, kind: str, worker: str, **fields: Any) -> Heard:
        message = {"site": "hq", "worker": worker, **fields}
        heard = Heard(kind, worker, remote.encode(_KIND[kind], **message))
        self.heard.append(heard)
        return heard

    def answer_to(self, heard: Heard) -> remote.Message:
        (answer,) = [a for h, a in self.answers if h is heard]
        return answer


_KIND = {"claim": "claim", "hb": "beat", "results": "result"}


@pytest.fixture
def world() -> Iterator[World]:
    clock, entropy = FakeClock(), CountingEntropy()
    ledger = MemoryLedger.create("hq", clock, entropy, site.initialized("hq", OPERATOR, "test"))
    yield World(ledger, clock, entropy, FakeExecutor(clock))
    ledger.verify()  # a chain that verifies, projections equal to a rebuild
    ledger.close()


def remote_policy(*types: JobType) -> Policy:
    made = policy(*types or (kind("scan", remote=True, timeout_s=60), kind("other", remote=True)))
    return dataclasses.replace(made, workers=WORKERS)


def engine(world: World, dispatch: FakeDispatch | None, pol: Policy | None = None) -> Engine:
    made = Engine(
        world.ledger,
        pol or remote_policy(),
        world.clock,
        world.entropy,
        world.executor,
        OPERATOR,
        holder="test:1",
        dispatch=dispatch,
        claim_secret=SECRET,
        remote_lease_ms=LEASE_MS,
    )
    made.recover()
    made.load()
    return made


def claim(dispatch: FakeDispatch, run_id: str, worker: str = "w-1") -> Heard:
    log = f"/logs/{run_id}.log"
    return dispatch.say("claim", worker, run_id=run_id, version="0.1.0", concurrency=2, log=log)


def token(run_id: str, worker: str = "w-1") -> str:
    return remote.claim_token(SECRET, run_id, worker)


def result(
    dispatch: FakeDispatch,
    run_id: str,
    worker: str = "w-1",
    outcome: str = "succeeded",
    **more: Any,
) -> Heard:
    fields = {"token": token(run_id, worker), "outcome": outcome, "exit_code": 0}
    fields |= {"output_tail": "done\n", "log_path": f"/logs/{run_id}.log", **more}
    return dispatch.say("results", worker, run_id=run_id, **fields)


def refusals(ledger: MemoryLedger) -> list[dict[str, Any]]:
    return [dict(e.payload) for e in ledger.events_of_type("remote.refused")]


def offered(world: World, dispatch: FakeDispatch) -> tuple[Engine, str, str]:
    """An engine that offered one scan job: (engine, job id, run id)."""
    job_id = world.submit(remote_policy(), "scan")
    made = engine(world, dispatch)
    made.step()
    (run_id,) = dispatch.offers
    return made, job_id, run_id


def claimed(world: World, dispatch: FakeDispatch) -> tuple[Engine, str, str]:
    """``offered``, its run claimed by w-1 and granted (the step taken)."""
    made, job_id, run_id = offered(world, dispatch)
    claim(dispatch, run_id)
    made.step()
    return made, job_id, run_id


def test_a_remote_run_is_offered_claimed_heartbeated_and_ended_by_its_result(
    world: World,
) -> None:
    dispatch = FakeDispatch()
    made, job_id, run_id = offered(world, dispatch)
    offer = dispatch.offers[run_id]
    assert world.types(job_id)[-1] == "run.leased"  # committed before the offer
    assert (offer["job_type"], offer["attempt"], offer["argv"], offer["timeout_ms"]) == (
        "scan",
        1,
        ["/bin/true"],
        60_000,
    )
    assert world.executor.specs == []  # nothing runs on this host

    asked = claim(dispatch, run_id)
    made.step()
    granted = dispatch.answer_to(asked)
    assert granted.kind == "granted" and granted["token"] == token(run_id)
    (started,) = world.payloads(job_id, "run.started")
    assert started == {
        "run_id": run_id,
        "job_id": job_id,
        "worker": "w-1",
        "log": f"/logs/{run_id}.log",
    }
    (run,) = world.ledger.runs_of(job_id)
    assert (run.state, run.worker, run.worker_log) == ("running", "w-1", f"/logs/{run_id}.log")
    assert dispatch.settled_runs == [run_id]  # offered no more
    assert (made.seen["w-1"].version, made.seen["w-1"].concurrency) == ("0.1.0", 2)
    assert made.running_on() == {"w-1": 1}

    world.clock.advance(1500)
    beat = dispatch.say("hb", "w-1", run_id=run_id, token=token(run_id))
    made.step()
    assert dispatch.answer_to(beat).kind == "renewed"

    done = result(dispatch, run_id)
    made.step()
    assert world.job(job_id).state == "succeeded"
    assert world.runs(job_id) == [("succeeded", 0)]
    assert dispatch.acked == [done]  # once run.ended was committed
    assert refusals(world.ledger) == []


def test_remote_jobs_wait_throttled_while_nats_is_unreachable_then_go(world: World) -> None:
    dispatch = FakeDispatch(available=False)
    mixed = remote_policy(kind("scan", remote=True), kind())
    job_id = world.submit(mixed, "scan")
    local = world.submit(mixed, "fetch")
    made = engine(world, dispatch, mixed)
    made.step()
    assert (world.job(job_id).state, world.job(job_id).cause) == (
        "throttled",
        "dispatch_unavailable",
    )
    assert world.job(local).state == "running"  # local work goes on
    assert dispatch.offers == {}

    dispatch.available = True
    made.step()
    assert world.job(job_id).state == "running" and len(dispatch.offers) == 1


def test_without_nats_configured_remote_jobs_wait_and_no_run_is_adopted(world: World) -> None:
    job_id = world.submit(remote_policy(), "scan")
    made = engine(world, None)
    made.step()
    assert world.job(job_id).cause == "dispatch_unavailable"
    assert made.run(until_idle=True).started == 0  # idle: only an event can lift it


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("unknown protocol", "speaks worker protocol 9"),
        ("malformed", "claim: missing log"),
        ("another worker's subject", "it speaks for w-2 at hq on the subject of w-1"),
        ("a type it may not run", "it may not run job type scan"),
        ("a run not leased here", "is not leased here"),
    ],
)
def test_a_bad_claim_is_refused_and_audited_and_nothing_else_changes(
    world: World, case: str, reason: str
) -> None:
    dispatch = FakeDispatch()
    made, job_id, run_id = offered(world, dispatch)
    fields = {"site": "hq", "worker": "w-1", "run_id": run_id, "version": "0.1", "log": "/l"}
    fields["concurrency"] = 1
    worker = "w-1"
    if case == "unknown protocol":
        data = remote.encode("claim", **fields).replace(b'"v":1', b'"v":9')
    elif case == "malformed":
        data = remote.encode("claim", **fields).replace(b',"log":"/l"', b"")
    elif case == "another worker's subject":
        data = remote.encode("claim", **{**fields, "worker": "w-2"})
    elif case == "a type it may not run":
        worker = "w-3"
        data = remote.encode("claim", **{**fields, "worker": "w-3"})
    else:
        data = remote.encode("claim", **{**fields, "run_id": job_id})
    before = world.types(job_id)
    asked = Heard("claim", worker, data)
    dispatch.heard.append(asked)
    made.step()

    (refused,) = refusals(world.ledger)
    assert refused["worker"] == worker and refused["what"] == "claim"
    assert reason in refused["reason"]
    assert world.types(job_id) == before  # no run.started: nothing runs
    answer = dispatch.answer_to(asked)
    assert answer.kind == "refused" and reason in answer["reason"]
    # dropped only where no worker may claim the run; else handed back for another
    dropped = case == "a run not leased here"
    assert answer["then"] == (remote.DROP if dropped else remote.HAND_BACK)


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 100_000,
        b'{"kind":"claim","v":"' + b"9" * 100_000 + b'"}',
        b'{"kind":"claim","concurrency":' + b"1" * 5000 + b"}",
    ],
    ids=[
        "nested past Python's depth",
        "a reason of 100,000 characters",
        "an integer past Python's 4,300 digits",
    ],
)
@pytest.mark.parametrize("what", ["claim", "hb", "results"])
def test_a_hostile_message_is_refused_and_audited_and_the_engine_goes_on(
    world: World, what: str, data: bytes
) -> None:
    dispatch = FakeDispatch()
    made, job_id, run_id = offered(world, dispatch)
    asked = Heard(what, "w-1", data)
    dispatch.heard.append(asked)
    made.step()
    (refused,) = refusals(world.ledger)
    assert refused["what"] == what and len(refused["reason"]) <= 1000
    if what == "results":
        assert dispatch.acked == [asked]  # never delivered again
    else:
        assert dispatch.answer_to(asked).kind == "refused"
    claim(dispatch, run_id)
    made.step()  # and the next message is heard as ever
    assert world.types(job_id)[-1] == "run.started"


def test_a_second_workers_claim_is_refused_and_the_same_workers_again_is_the_same_grant(
    world: World,
) -> None:
    dispatch = FakeDispatch()
    made, job_id, run_id = offered(world, dispatch)
    first = claim(dispatch, run_id)
    made.step()
    other = claim(dispatch, run_id, "w-2")
    again = claim(dispatch, run_id)  # its first answer was lost
    made.step()
    assert dispatch.answer_to(other).kind == "refused"
    assert dispatch.answer_to(again)["token"] == dispatch.answer_to(first)["token"]
    assert len(world.payloads(job_id, "run.started")) == 1
    assert [r["worker"] for r in refusals(world.ledger)] == ["w-2"]


def test_heartbeats_and_results_count_only_with_the_claims_token_from_its_worker(
    world: World,
) -> None:
    dispatch = FakeDispatch()
    made, job_id, run_id = claimed(world, dispatch)
    wrong_token = dispatch.say("hb", "w-1", run_id=run_id, token=token(run_id, "w-2"))
    other = result(dispatch, run_id, "w-2")  # w-2's token, from w-2: not the holder
    made.step()
    assert dispatch.answer_to(wrong_token).kind == "refused"
    assert dispatch.acked == [other]  # refused results leave the stream
    assert world.job(job_id).state == "running"
    assert [(r["worker"], r["what"]) for r in refusals(world.ledger)] == [
        ("w-1", "hb"),
        ("w-2", "results"),
    ]

    done = result(dispatch, run_id)
    twice = result(dispatch, run_id)  # delivered again
    made.step()
    assert world.runs(job_id) == [("succeeded", 0)]
    assert dispatch.acked == [other, done, twice]
    assert len(world.payloads(job_id, "run.ended")) == 1


def test_a_lease_not_renewed_lapses_on_the_daemons_clock_and_the_job_is_retried(
    world: World,
) -> None:
    dispatch = FakeDispatch()
    made, job_id, run_id = claimed(world, dispatch)
    world.clock.advance(LEASE_MS - 1)
    made.step()
    assert world.job(job_id).state == "running"
    world.clock.advance(1)
    made.step()
    (ended,) = world.payloads(job_id, "run.ended")
    assert (ended["outcome"], ended["cause"]) == ("interrupted", "lease_lost")
    assert "w-1 was not heard from within its lease" in ended["output"]
    assert ended["job_state"] == "retry_wait"

    late = result(dispatch, run_id)  # the fenced run's result, come late: changes nothing
    world.clock.advance(60_000)
    made.step()
    assert dispatch.acked == [late]
    assert len(dispatch.offers) == 2  # the retry: a new run, a new offer


def test_no_lease_runs_out_while_nats_is_unreachable_but_one_lease_after_it_is_back(
    world: World,
) -> None:
    dispatch = FakeDispatch()
    made, job_id, _run_id = claimed(world, dispatch)
    dispatch.available = False  # the daemon cannot hear its worker: its result may be waiting
    world.clock.advance(3 * LEASE_MS)
    made.step()
    dispatch.available = True
    world.clock.advance(LEASE_MS - 1)
    made.step()
    assert world.job(job_id).state == "running"  # one whole lease from when it could hear
    world.clock.advance(1)
    made.step()
    assert world.runs(job_id)[0][0] == "interrupted"  # then a silent worker's run lapses


def test_a_grant_held_back_past_its_lease_is_answered_as_refused(world: World) -> None:
    dispatch = FakeDispatch()
    made, job_id, run_id = offered(world, dispatch)
    asked = claim(dispatch, run_id)
    made.step(writable=False)  # an import holds the writer: run.started waits to be committed
    world.clock.advance(LEASE_MS)
    made.step(writable=False)  # the lease ran out meanwhile
    assert dispatch.answers == []  # nothing answered before its commit
    made.step()
    assert dispatch.answer_to(asked).kind == "refused"  # not granted late
    first = world.ledger.runs_of(job_id)[0]
    assert (first.state, first.worker) == ("interrupted", "w-1")


def test_a_cancel_reaches_a_claimed_run_at_its_next_heartbeat_and_an_unclaimed_one_at_once(
    world: World,
) -> None:
    dispatch = FakeDispatch()
    made, job_id, run_id = offered(world, dispatch)
    waiting = world.submit(remote_policy(), "scan")
    made.take_new()
    claim(dispatch, run_id)
    made.step()
    (waiting_run,) = [r for r in dispatch.offers if r != run_id]
    for ident in (job_id, waiting):
        jobs.cancel(world.ledger, OPERATOR, remote_policy(), ident, "stale feed")
    made.refresh()
    made.step()
    assert world.runs(waiting) == [("interrupted", None)]  # no worker held it
    assert waiting_run in dispatch.settled_runs

    beat = dispatch.say("hb", "w-1", run_id=run_id, token=token(run_id))
    made.step()
    assert dispatch.answer_to(beat).kind == "stop"
    result(dispatch, run_id, outcome="interrupted", exit_code=-15)
    made.step()
    (ended,) = world.payloads(job_id, "run.ended")
    assert (ended["outcome"], ended["cause"]) == ("interrupted", "cancelled")
    assert world.job(job_id).state == "cancelled"


def test_a_run_past_its_timeout_is_stopped_at_its_next_heartbeat(world: World) -> None:
    dispatch = FakeDispatch()
    made, job_id, run_id = claimed(world, dispatch)
    for _ in range(40):  # heartbeats keep it alive past its 60 s timeout
        world.clock.advance(1600)
        dispatch.say("hb", "w-1", run_id=run_id, token=token(run_id))
        made.step()
    assert dispatch.answers[-1][1].kind == "stop"
    result(dispatch, run_id, outcome="interrupted", exit_code=-15)
    made.step()
    assert world.runs(job_id)[0][0] == "timed_out"


def test_a_daemon_started_anew_adopts_its_remote_runs_and_ends_only_the_local_ones(
    world: World,
) -> None:
    dispatch = FakeDispatch()
    both = remote_policy(kind("scan", remote=True, timeout_s=60), kind())
    claimed = world.submit(both, "scan")
    unclaimed = world.submit(both, "scan")
    local = world.submit(both, "fetch")
    world.executor.exits[local] = [None]  # HANG: it runs until the daemon is gone
    made = engine(world, dispatch, both)
    made.step()
    by_job = {offer["job_id"]: run_id for run_id, offer in dispatch.offers.items()}
    claim(dispatch, by_job[claimed])
    made.step()
    # the daemon is killed: nothing of its runs is ended, its memory is gone

    again = FakeDispatch()
    world.clock.advance(500)
    restarted = engine(world, again, both)  # recovery
    assert world.runs(local) == [("interrupted", None)]  # ended: no process here survives
    assert world.executor.swept == [[world.ledger.runs_of(local)[0].run_id]]
    assert list(again.offers) == [by_job[unclaimed]]  # offered again, same message id
    beat = again.say("hb", "w-1", run_id=by_job[claimed], token=token(by_job[claimed]))
    restarted.step()
    assert again.answer_to(beat).kind == "renewed"  # the token derived again
    result(again, by_job[claimed])
    restarted.step()
    assert world.job(claimed).state == "succeeded"
    assert len(world.payloads(claimed, "run.started")) == 1


def test_a_stopping_daemon_serves_its_remote_runs_then_leaves_them_to_their_workers(
    world: World,
) -> None:
    dispatch = FakeDispatch()
    first = world.submit(remote_policy(), "scan")
    second = world.submit(remote_policy(), "scan")
    made = engine(world, dispatch)
    made.step()
    by_job = {offer["job_id"]: run for run, offer in dispatch.offers.items()}
    for run_id in by_job.values():
        claim(dispatch, run_id)
    made.step()

    made.stop()  # while the loop goes on (local runs draining), the workers are served as ever
    world.clock.advance(LEASE_MS // 2)
    beat = dispatch.say("hb", "w-1", run_id=by_job[first], token=token(by_job[first]))
    result(dispatch, by_job[second])
    made.step()
    assert dispatch.answer_to(beat).kind == "renewed"  # not told to stop
    assert world.job(second).state == "succeeded"  # its result recorded

    again = engine(world, dispatch)  # a daemon told to stop with only remote runs left
    assert again.run(until_idle=False, should_stop=lambda: True).started == 0
    assert again.running == 0
    assert world.types(first)[-1] == "run.started"  # nothing ended: adopted when started again


def test_an_offer_nats_stopped_delivering_ends_its_run_and_the_job_is_retried(
    world: World,
) -> None:
    dispatch = FakeDispatch()
    made, job_id, run_id = offered(world, dispatch)
    offer = remote.encode("offer", **dispatch.offers[run_id])
    news = Heard("undeliverable", "", offer)
    dispatch.heard.append(news)
    made.step()
    assert dispatch.acked == [news]  # done with once the run's end is committed
    (ended,) = world.payloads(job_id, "run.ended")
    assert (ended["outcome"], ended["cause"]) == ("interrupted", "undeliverable")
    assert "every one that was offered it handed it back" in ended["output"]
    assert len(dispatch.offers) == 2  # retried at once: a new run, a new message
    again = Heard("undeliverable", "", offer)
    dispatch.heard.append(again)  # told twice (after a restart): nothing more, done with
    made.step()
    assert len(world.payloads(job_id, "run.ended")) == 1
    assert dispatch.acked == [news, again]
