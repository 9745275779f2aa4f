"""The engine: admits jobs under limits, runs them, and records every step (ops layer).

One engine runs per site, under the site lock, in one thread. Each ``step`` records what ended,
moves waiting jobs whose dependencies settled, admits jobs in order under the limits, records
all of that in one ledger transaction, and only then starts the admitted runs.

Rules:
- A run's ``run.leased`` is durable before its process starts, so a crash can never leave a
  process the ledger does not know about. ``run.started`` (with the pid) and ``run.ended`` are
  recorded at the next step, with whatever else that step records: many jobs' events share one
  transaction. What an ended run means for its job (succeeded, retry, dead) is decided in that
  step, from the job as the ledger then holds it (one read for all of them): an operator may
  have cancelled the job meanwhile, and the run then ends without moving it.
- Admission follows ``core.limits``: priority descending, then first in, first out. A job held by
  a quota, a rate, a daily cap or a paused source moves to ``throttled`` with the cause and the
  time it may run again (none: only an event lifts it); a job waiting only for the global
  concurrency cap stays ``queued`` (its place in line is its state).
- Quotas are the policy's, overlaid by the operators' overrides (``ops.quota.effective``). Runs
  started in the last day are replayed into the limits when the engine loads, so a restart never
  grants a fresh rate or daily allowance.
- A run that outlives its type's ``timeout_s`` gets SIGTERM on its process group, then SIGKILL
  after the grace period; it ends ``timed_out``.
- Leases: ``run.leased`` names an expiry; while a run lives, heartbeats keep the unchained
  ``leases`` rows current. The engine holds the site lock, so when it starts, every run still
  open belongs to a worker that died: ``recover`` kills what survives of it and ends it
  ``interrupted`` (cause ``lease_lost``), and the job is retried by policy.
- A job an operator cancels while it runs has its run stopped as a timed-out one is, once the
  engine re-reads the ledger (``refresh``, which the daemon runs after every call that wrote);
  the run ends ``interrupted`` with cause ``cancelled`` and the job stays ``cancelled``.
- Stopping (``stop``) admits nothing more and sends SIGTERM, then SIGKILL, to the running groups;
  their runs end ``interrupted`` and the jobs may run again at once.
- A job whose type the policy no longer defines, or whose argv cannot be built, or whose program
  cannot be started, ends ``dead`` at once with the cause, and orchd's explanation as its output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction

from orchd import crash
from orchd.core import canonical, ids, limits, outcomes, timefmt
from orchd.core.events import Actor, Draft
from orchd.core.machines import JOB
from orchd.core.policy import JobType, Policy
from orchd.core.ports import Clock, Entropy, Executor, Exit, JobLog, RunSpec
from orchd.core.projection import JobView
from orchd.errors import BadInput, NotInPolicy, OrchdError, SpawnFailed, StorageError

from . import quota

SCOPE = "orch:run"
HEARTBEAT_MS = 10_000
KILL_GRACE_MS = 5_000
DEGRADED_RETRY_MS = 1000  # a failing disk: try again this often
MAX_SLEEP_MS = 1_000  # a stop request is noticed within this
_CANDIDATE_STATES = frozenset({"queued", "throttled", "retry_wait"})


@dataclass(slots=True, kw_only=True)
class _Active:
    run_id: str
    job: JobView
    attempt: int
    deadline_ms: int  # monotonic
    pid: int | None = None
    started_recorded: bool = False
    ending: str | None = None  # "timed_out" or "interrupted" once orchd signalled the group
    cause: str | None = None  # why it was interrupted, when not because orchd stops
    kill_at_ms: int | None = None  # monotonic: when SIGKILL follows the SIGTERM


@dataclass(frozen=True, slots=True)
class _Ending:
    """A run that ended; what that means for its job is decided when a step records it."""

    job: JobView
    run_id: str
    attempt: int
    outcome: str
    exit_code: int | None
    output: bytes
    at_ms: int
    cause: str | None


@dataclass(slots=True)
class Tally:
    """What a stretch of work did, for the operator."""

    started: int = 0
    ended: dict[str, int] = field(default_factory=dict)  # job state after the run -> count
    interrupted: int = 0  # runs of a dead worker recovered at start
    survivors_killed: int = 0


class Engine:
    def __init__(
        self,
        ledger: JobLog,
        policy: Policy,
        clock: Clock,
        entropy: Entropy,
        executor: Executor,
        actor: Actor,
        *,
        holder: str,
        kill_grace_ms: int = KILL_GRACE_MS,
        heartbeat_ms: int = HEARTBEAT_MS,
        lease_ms: int | None = None,
    ) -> None:
        self._ledger, self._policy, self._clock = ledger, policy, clock
        self._entropy, self._executor, self._actor = entropy, executor, actor
        self._holder = holder
        self._kill_grace_ms, self._heartbeat_ms = kill_grace_ms, heartbeat_ms
        self._lease_ms = 3 * heartbeat_ms if lease_ms is None else lease_ms
        self.tally = Tally()
        self._pending: dict[str, tuple[JobView, int]] = {}  # job id -> (job, arrival)
        self._arrivals: dict[str, int] = {}  # job id -> its job.submitted seq, kept while it runs
        self._not_before: dict[str, int] = {}  # job id -> wall ms it may be tried again
        self._active: dict[str, _Active] = {}  # run id -> run
        self._drafts: list[Draft] = []
        self._endings: list[_Ending] = []
        # leased, to start once the lease is recorded: a failed record (a full disk) keeps them
        # here until a later step records it, so no leased job is left without its process
        self._leased: list[tuple[JobView, str, int]] = []
        self._deps_dirty = True
        self._stopping = False
        self._next_heartbeat_ms: int | None = None
        self._leases_held = False
        self._limits = limits.Limits()
        self._state = limits.State()
        self._order: list[tuple[int, int, str]] = []

    # --- loading and recovery -------------------------------------------------------------

    def recover(self) -> None:
        """End the runs a dead worker left open, after killing whatever of them survives."""
        stale = self._ledger.open_runs()
        if not stale:
            return
        self.tally.survivors_killed += self._executor.sweep([run.run_id for run in stale])
        now_ms = self._clock.now_ms()
        held = self._ledger.jobs_by_id({run.job_id for run in stale})
        for run in stale:
            job = held.get(run.job_id)
            if job is None:  # the projection holds the run, so it holds its job
                continue
            self._end(
                job, run.run_id, run.attempt, "interrupted", None, b"", now_ms, cause="lease_lost"
            )
        self.tally.interrupted += len(stale)
        self._flush()

    def load(self) -> None:
        """Read the pending jobs, the limits (policy and overrides) and today's starts."""
        self.refresh()
        self._limits = self._effective_limits()
        now_ms = self._clock.now_ms()
        state = limits.State(paused=frozenset(p.source for p in self._ledger.pauses()))
        since = timefmt.format_ms(max(0, now_ms - limits.DAY_MS))
        for leased_at, job_type, source in self._ledger.leased_since(since):
            past = limits.Candidate(job_id="", job_type=job_type, source=source, arrival=0)
            state = limits.count_past(past, state, self._limits, timefmt.parse_canonical(leased_at))
        # runs going on now keep counting
        state = replace(state, running_total=self._state.running_total, running=self._state.running)
        self._state = state

    def refresh(self) -> None:
        """Read the pending jobs again (new ones were recorded); the limits' counts stay.

        What this engine decided but could not record yet (a full disk) is recorded first: a
        job leased in memory must not be read back as still queued and leased twice.
        """
        self._flush()
        self._pending = {job.job_id: (job, arrival) for job, arrival in self._ledger.pending_jobs()}
        self._arrivals.update({job_id: arrival for job_id, (_, arrival) in self._pending.items()})
        self._waiting = {i for i, (job, _) in self._pending.items() if job.state == "waiting"}
        self._not_before = {
            job.job_id: timefmt.parse_canonical(job.eligible_at)
            for job, _ in self._pending.values()
            if job.eligible_at is not None
        }
        self._reorder()
        self._deps_dirty = True
        self._stop_cancelled()

    def _stop_cancelled(self) -> None:
        """Stop the runs whose job an operator cancelled while they ran: SIGTERM to the group,
        SIGKILL after the grace period; each ends ``interrupted`` with cause ``cancelled``."""
        if not self._active:
            return
        held = self._ledger.jobs_by_id({active.job.job_id for active in self._active.values()})
        mono = self._clock.monotonic_ms()
        for active in self._active.values():
            job = held.get(active.job.job_id)
            if active.ending is None and job is not None and job.state == "cancelled":
                active.cause = "cancelled"
                self._signal(active, "interrupted", mono)

    def _effective_limits(self) -> limits.Limits:
        site = self._ledger.site_id
        quotas = {}
        for found in quota.effective(self._policy, self._ledger.overrides(), site):
            kind, name = found.target.split(":", 1)
            v = found.values
            rate = v["rate"]
            quotas[(kind, name)] = limits.Quota(
                rate=None if rate is None else limits.parse_rate(rate),
                burst=_int_or_none(v["burst"]),
                concurrency=_int_or_none(v["concurrency"]),
                daily=_int_or_none(v["daily"]),
            )
        return limits.Limits(concurrency=self._policy.concurrency, quotas=quotas)

    # --- the loop -------------------------------------------------------------------------

    def run(
        self,
        *,
        until_idle: bool,
        max_wait_ms: int = 60_000,
        should_stop: Callable[[], bool] = lambda: False,
        tick: Callable[[], bool] | None = None,
        max_sleep_ms: int = MAX_SLEEP_MS,
        on_storage: Callable[[StorageError | None], None] | None = None,
    ) -> Tally:
        """Recover, then step until idle (``until_idle``) or until stopped and drained.

        Idle: nothing runs and no pending job may run within ``max_wait_ms`` (a retry's backoff,
        a rate limit); jobs that only an event can release (a paused source, a dependency never
        submitted) do not keep the engine busy. ``tick`` (the daemon's) runs before every step
        and returns True when it recorded new jobs; the loop never sleeps longer than
        ``max_sleep_ms`` between ticks.

        ``on_storage`` (the daemon's) makes a failing disk (full, or an I/O error) a degraded
        state rather than the end: it is told each failure, the loop tries again a second later
        (what was not recorded is kept and recorded then), and it is told ``None`` once a step
        succeeds again. Without it the error ends the run.
        """
        self.recover()
        self.load()
        degraded = False
        while True:
            try:
                if should_stop() and not self._stopping:
                    self.stop()
                if tick is not None and tick():
                    self.refresh()
                wake_in = self.step()
                if degraded and on_storage is not None:
                    degraded = False
                    on_storage(None)
            except StorageError as exc:
                if on_storage is None:
                    raise
                degraded = True
                on_storage(exc)
                wake_in = DEGRADED_RETRY_MS
            if not self._active and (wake_in is None or wake_in > max_wait_ms):
                if until_idle or self._stopping:
                    return self.tally
                if wake_in is None and tick is None:
                    self.load()  # a long-running worker looks for new work now and then
            sleep_ms = max_sleep_ms if wake_in is None else min(max_sleep_ms, wake_in)
            for ended in self._executor.wait(sleep_ms):
                try:
                    self._ended(ended)
                except StorageError as exc:  # its end is unrecorded: recovery retries the job
                    if on_storage is None:
                        raise
                    degraded = True
                    on_storage(exc)

    @property
    def running(self) -> int:
        return len(self._active)

    @property
    def queued(self) -> int:
        return len(self._pending)

    def set_policy(self, policy: Policy) -> None:
        """Use a reloaded policy from the next step on (runs going on keep their command)."""
        self._policy = policy
        self._limits = self._effective_limits()
        self._deps_dirty = True

    def drain(self) -> None:
        """Admit nothing more; let the runs going on finish (``stop`` interrupts them)."""
        self._stopping = True

    def stop(self) -> None:
        """Admit nothing more; ask every running group to stop (SIGKILL after the grace)."""
        self._stopping = True
        now = self._clock.monotonic_ms()
        for active in self._active.values():
            if active.ending is None:
                self._signal(active, "interrupted", now)

    def step(self) -> int | None:
        """Do what is due; return milliseconds until something else is, None if nothing is."""
        mono = self._clock.monotonic_ms()
        self._enforce_timeouts(mono)
        self._settle_endings()
        now_ms = self._clock.now_ms()
        if self._deps_dirty and self._waiting:
            self._flush()  # dependencies are read from the ledger: record what ended first
            self._settle_dependencies()
        self._deps_dirty = False
        if not self._stopping:
            self._leased += self._admit(now_ms)
        self._flush()
        leased, self._leased = self._leased, []
        if leased:
            crash.point("engine.leased")
        for job, run_id, attempt in leased:
            self._start(job, run_id, attempt, mono)
        self._heartbeat(mono)
        return self._wake_in(now_ms, mono)

    def _wake_in(self, now_ms: int, mono: int) -> int | None:
        waits = []
        for active in self._active.values():
            if active.kill_at_ms is not None:
                waits.append(active.kill_at_ms - mono)
            elif active.ending is None:
                waits.append(active.deadline_ms - mono)
            # else: SIGKILL was sent; its exit wakes the executor
        if self._next_heartbeat_ms is not None:
            waits.append(self._next_heartbeat_ms - mono)
        if self._drafts or self._endings:
            waits.append(0)
        if not self._stopping:  # only pending candidates have a time in _not_before
            waits.extend(at - now_ms for at in self._not_before.values())
        return max(0, min(waits)) if waits else None

    # --- admission ------------------------------------------------------------------------

    def _reorder(self) -> None:
        self._order = sorted(
            (-job.priority, arrival, job.job_id) for job, arrival in self._pending.values()
        )

    def _admit(self, now_ms: int) -> list[tuple[JobView, str, int]]:
        """Lease, in order, every candidate the limits let run now; throttle the others."""
        cap = self._limits.concurrency
        admitted = []
        kept: list[tuple[int, int, str]] = []
        for index, entry in enumerate(self._order):
            if cap is not None and self._state.running_total >= cap:
                kept.extend(self._order[index:])  # the rest wait in line, as they are
                break
            pending = self._pending.get(entry[2])
            if pending is None:
                continue
            job, arrival = pending
            if job.state not in _CANDIDATE_STATES or self._not_before.get(job.job_id, 0) > now_ms:
                kept.append(entry)
                continue
            decision = limits.admit(_candidate(job, arrival), self._state, self._limits, now_ms)
            if decision.verdict == "run":
                self._state = decision.state
                admitted.append(self._lease(job, now_ms))
                continue
            kept.append(entry)
            if decision.cause != "global_concurrency":
                self._throttle(job, decision, now_ms)
        self._order = kept
        return admitted

    def _lease(self, job: JobView, now_ms: int) -> tuple[JobView, str, int]:
        run_id = ids.new_id(now_ms, self._entropy.token(ids.ENTROPY_BYTES))
        attempt = job.attempts + 1
        self._record(
            "run.leased",
            f"run.leased:{run_id}",
            {
                "run_id": run_id,
                "job_id": job.job_id,
                "attempt": attempt,
                "lease_expires_at": timefmt.format_ms(now_ms + self._lease_ms),
            },
        )
        del self._pending[job.job_id]
        self._not_before.pop(job.job_id, None)
        return job, run_id, attempt

    def _throttle(self, job: JobView, decision: limits.Decision, now_ms: int) -> None:
        """Hold the job; record it when what holds it (cause or time) changed."""
        at = decision.eligible_at_ms
        if at is None:
            self._not_before.pop(job.job_id, None)  # only an event lifts it: no time to wake at
        else:
            self._not_before[job.job_id] = at
        payload: dict[str, str] = {"cause": decision.cause or "throttled"}
        if at is not None:
            payload["eligible_at"] = timefmt.format_ms(at)
        if job.state == "throttled" and (job.cause, job.eligible_at) == (
            payload["cause"],
            payload.get("eligible_at"),
        ):
            return
        if job.state == "retry_wait":
            job = self._transition(job, "queued", {"cause": "retry_due"})
        self._transition(job, "throttled", payload)

    def _transition(self, job: JobView, to: str, extra: dict[str, str]) -> JobView:
        if to == "throttled":  # a job may be held again and again, each time a new decision
            decision = ids.new_id(self._clock.now_ms(), self._entropy.token(ids.ENTROPY_BYTES))
            key = f"job.throttled:{job.job_id}:{decision}"
        else:
            key = f"job.transitioned:{job.job_id}:{job.state}:{to}:{job.attempts}"
        self._record(
            "job.transitioned", key, {"job_id": job.job_id, "from": job.state, "to": to, **extra}
        )
        moved = job._replace(state=JOB.advance(job.job_id, job.state, to), cause=extra.get("cause"))
        if job.job_id in self._pending:
            self._pending[job.job_id] = (moved, self._pending[job.job_id][1])
        return moved

    # --- dependencies ---------------------------------------------------------------------

    def _settle_dependencies(self) -> None:
        for job_id in sorted(self._waiting):
            job, arrival = self._pending[job_id]
            job_type = self._policy.job_types.get(job.job_type)
            if job_type is None or not job_type.after:
                self._transition(job, "queued", {"cause": "no_dependencies"})
                self._waiting.discard(job_id)
                self._order.append((-job.priority, arrival, job.job_id))
                self._order.sort()
                continue
            upstream = {
                name: [
                    j.state
                    for j in self._ledger.upstream_jobs(
                        name, job.source, job.slot_at, job.submitted_at
                    )
                ]
                for name in job_type.after
            }
            verdict = outcomes.readiness(job_type.after, upstream)
            if verdict == "ready":
                self._transition(job, "queued", {"cause": "upstream_succeeded"})
                self._order.append((-job.priority, arrival, job.job_id))
                self._order.sort()
                self._waiting.discard(job_id)
            elif verdict == "upstream_failed":
                self._transition(job, "cancelled", {"cause": "upstream_failed"})
                del self._pending[job.job_id]
                self._waiting.discard(job_id)

    # --- runs -----------------------------------------------------------------------------

    def _start(self, job: JobView, run_id: str, attempt: int, mono: int) -> None:
        job_type = self._policy.job_types.get(job.job_type)
        timeout_ms = (job_type.timeout_s if job_type else 0) * 1000
        active = _Active(run_id=run_id, job=job, attempt=attempt, deadline_ms=mono + timeout_ms)
        self._active[run_id] = active
        try:
            spec = self._spec(job, job_type, run_id, attempt)
            active.pid = self._executor.start(spec)
            crash.point("engine.spawned")
        except (BadInput, SpawnFailed) as exc:
            cause = "spawn_failed" if isinstance(exc, SpawnFailed) else "bad_command"
            del self._active[run_id]
            self._release(job)
            note = f"orchd: {exc.message}\n".encode()
            self._end(job, run_id, attempt, "failed", None, note, self._clock.now_ms(), cause=cause)
            return
        self.tally.started += 1

    def _spec(self, job: JobView, job_type: JobType | None, run_id: str, attempt: int) -> RunSpec:
        if job_type is None:
            known = ", ".join(sorted(self._policy.job_types)) or "none"
            raise NotInPolicy(what="job type", value=job.job_type, expected=f"one of {known}")
        params = outcomes.resolve_params(job_type, canonical.decode(job.params.encode()))
        builtins = {
            "job_id": job.job_id,
            "key": job.key,
            "attempt": str(attempt),
            "source": job.source or "",
            "job_type": job.job_type,
        }
        env = {
            **job_type.env,
            "ORCHD_JOB_ID": job.job_id,
            "ORCHD_RUN_ID": run_id,
            "ORCHD_IDEMPOTENCY_KEY": job.key,
            "ORCHD_ATTEMPT": str(attempt),
            "ORCHD_JOB_TYPE": job.job_type,
            **({"ORCHD_SOURCE": job.source} if job.source else {}),
        }
        argv = outcomes.render_argv(job_type, params, builtins)
        return RunSpec(
            run_id=run_id, job_id=job.job_id, argv=argv, env=env, workdir=job_type.workdir
        )

    def _ended(self, ended: Exit) -> None:
        active = self._active.pop(ended.run_id, None)
        if active is None:
            return
        crash.point("engine.ended")
        self._release(active.job)
        if not active.started_recorded:
            self._record_started(active)
        if active.ending is not None:
            outcome = active.ending
        else:
            outcome = "succeeded" if ended.exit_code == 0 else "failed"
        self._end(
            active.job,
            active.run_id,
            active.attempt,
            outcome,
            ended.exit_code,
            ended.output_tail,
            self._clock.now_ms(),
            cause=active.cause,
        )

    def _end(
        self,
        job: JobView,
        run_id: str,
        attempt: int,
        outcome: str,
        exit_code: int | None,
        output: bytes,
        now_ms: int,
        *,
        cause: str | None = None,
    ) -> None:
        self._endings.append(
            _Ending(job, run_id, attempt, outcome, exit_code, output, now_ms, cause)
        )

    def _settle_endings(self) -> None:
        """Record the runs that ended, each with what it means for its job as the ledger holds
        the job now. Between a run's exit and this step the daemon's tick may have recorded
        something of the job (an operator cancelled it); this thread is the ledger's only
        writer, so nothing else changes the job before the step's transaction."""
        if not self._endings:
            return
        current = self._ledger.jobs_by_id({ending.job.job_id for ending in self._endings})
        endings, self._endings = self._endings, []
        for ending in endings:
            self._record_end(ending, current.get(ending.job.job_id))

    def _record_end(self, e: _Ending, current: JobView | None) -> None:
        payload: dict[str, object] = {
            "run_id": e.run_id,
            "job_id": e.job.job_id,
            "outcome": e.outcome,
        }
        if e.exit_code is not None:
            payload["exit_code"] = e.exit_code
        if e.output:
            payload["output"] = e.output.decode("utf-8", errors="replace")
        if current is not None and current.state == "running":
            fate = self._fate(e.job, e.attempt, e.outcome, e.exit_code, e.at_ms, e.cause)
            payload["job_state"] = fate.state
            if fate.cause is not None:
                payload["cause"] = fate.cause
            if fate.eligible_at_ms is not None:
                payload["eligible_at"] = timefmt.format_ms(fate.eligible_at_ms)
            self.tally.ended[fate.state] = self.tally.ended.get(fate.state, 0) + 1
            if fate.state == "retry_wait":
                self._requeue(e.job, e.attempt, fate, e.at_ms)
            else:
                self._deps_dirty = True
        elif e.cause is not None:
            payload["cause"] = e.cause
        self._record("run.ended", f"run.ended:{e.run_id}", payload)

    def _fate(
        self,
        job: JobView,
        attempt: int,
        outcome: str,
        exit_code: int | None,
        now_ms: int,
        cause: str | None,
    ) -> outcomes.Fate:
        job_type = self._policy.job_types.get(job.job_type)
        if job_type is None:
            return outcomes.Fate(state="dead", cause="bad_command")
        draw = Fraction(int.from_bytes(self._entropy.token(4), "big"), 2**32)
        return outcomes.after_run(
            job_type,
            attempt=attempt,
            outcome=outcome,
            exit_code=exit_code,
            now_ms=now_ms,
            draw=draw,
            cause=cause,
        )

    def _requeue(self, job: JobView, attempt: int, fate: outcomes.Fate, now_ms: int) -> None:
        at = fate.eligible_at_ms if fate.eligible_at_ms is not None else now_ms
        waiting = job._replace(
            state="retry_wait",
            attempts=attempt,
            cause=fate.cause,
            eligible_at=timefmt.format_ms(at),
        )
        arrival = self._arrivals.get(job.job_id, 0)
        self._pending[job.job_id] = (waiting, arrival)
        self._not_before[job.job_id] = at
        self._order.append((-job.priority, arrival, job.job_id))
        self._order.sort()

    def _release(self, job: JobView) -> None:
        self._state = limits.release(_candidate(job, 0), self._state)

    def _record_started(self, active: _Active) -> None:
        active.started_recorded = True
        payload: dict[str, object] = {"run_id": active.run_id, "job_id": active.job.job_id}
        if active.pid is not None:
            payload["pid"] = active.pid
        self._record("run.started", f"run.started:{active.run_id}", payload)

    def _enforce_timeouts(self, mono: int) -> None:
        for active in self._active.values():
            if not active.started_recorded and active.pid is not None:
                self._record_started(active)
            if active.kill_at_ms is not None and mono >= active.kill_at_ms:
                self._executor.signal(active.run_id, kill=True)
                active.kill_at_ms = None
            elif active.ending is None and mono >= active.deadline_ms:
                self._signal(active, "timed_out", mono)

    def _signal(self, active: _Active, ending: str, mono: int) -> None:
        active.ending = ending
        active.kill_at_ms = mono + self._kill_grace_ms
        self._executor.signal(active.run_id, kill=False)

    def _heartbeat(self, mono: int) -> None:
        """Keep one lease row per run older than a heartbeat interval (a younger run's lease is
        its ``run.leased`` expiry); remove the rows once no run is left."""
        if not self._active:
            self._next_heartbeat_ms = None
            if self._leases_held:
                self._write_leases({})
            return
        if self._next_heartbeat_ms is None:
            self._next_heartbeat_ms = mono + self._heartbeat_ms
        elif mono >= self._next_heartbeat_ms:
            self._next_heartbeat_ms = mono + self._heartbeat_ms
            until = timefmt.format_ms(self._clock.now_ms() + self._lease_ms)
            self._write_leases(dict.fromkeys(self._active, until))

    def _write_leases(self, expires: dict[str, str]) -> None:
        now = timefmt.format_ms(self._clock.now_ms())
        self._ledger.heartbeat(self._holder, expires, now)
        self._leases_held = bool(expires)

    # --- recording ------------------------------------------------------------------------

    def _record(self, event_type: str, key: str, payload: dict[str, object]) -> None:
        self._drafts.append(
            Draft(type=event_type, actor=self._actor, idempotency_key=key, payload=payload)
        )

    def _flush(self) -> None:
        """Record what this step decided, in one transaction."""
        self._settle_endings()
        if not self._drafts:
            return
        drafts, self._drafts = self._drafts, []
        try:
            self._ledger.append(drafts)
        except OrchdError:
            self._drafts = drafts + self._drafts  # kept for the next try; nothing was recorded
            raise
        touched = {d.payload["job_id"] for d in drafts if d.payload["job_id"] in self._pending}
        found = self._ledger.jobs_by_id(touched)
        for job_id in touched:
            fresh = found.get(job_id)
            if fresh is None or fresh.state not in (*_CANDIDATE_STATES, "waiting"):
                del self._pending[job_id]
            else:
                self._pending[job_id] = (fresh, self._pending[job_id][1])


def _candidate(job: JobView, arrival: int) -> limits.Candidate:
    return limits.Candidate(
        job_id=job.job_id,
        job_type=job.job_type,
        source=job.source,
        priority=job.priority,
        arrival=arrival,
    )


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) else None
