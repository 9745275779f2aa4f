"""Runs (ops layer): a leased job's process started from its type's template, its exit noted,
timeouts and stops enforced (SIGTERM to the group, SIGKILL after the grace), and the lease rows
kept current by heartbeats while runs live.
"""

from __future__ import annotations

from orchd import crash
from orchd.core import canonical, drafts, limits, outcomes, timefmt
from orchd.core.policy import JobType
from orchd.core.ports import Exit, RunSpec
from orchd.core.projection import JobView
from orchd.errors import BadInput, NotInPolicy, SpawnFailed

from .base import Active, EngineBase, candidate


class Runs(EngineBase):
    """The processes of the admitted jobs, from start to exit."""

    def _start(self, job: JobView, run_id: str, attempt: int, mono: int) -> None:
        job_type = self._policy.job_types.get(job.job_type)
        timeout_ms = (job_type.timeout_s if job_type else 0) * 1000
        active = Active(run_id=run_id, job=job, attempt=attempt, deadline_ms=mono + timeout_ms)
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

    def _release(self, job: JobView) -> None:
        self._state = limits.release(candidate(job, 0), self._state)

    def _record_started(self, active: Active) -> None:
        active.started_recorded = True
        self._drafts.append(
            drafts.run_started(
                self._actor, run_id=active.run_id, job_id=active.job.job_id, pid=active.pid
            )
        )

    def _enforce_timeouts(self, mono: int) -> None:
        for active in self._active.values():
            if not active.started_recorded and active.pid is not None:
                self._record_started(active)
            if active.kill_at_ms is not None and mono >= active.kill_at_ms:
                self._executor.signal(active.run_id, kill=True)
                active.kill_at_ms = None
            elif active.ending is None and mono >= active.deadline_ms:
                self._signal(active, "timed_out", mono)

    def _signal(self, active: Active, ending: str, mono: int) -> None:
        active.ending = ending
        active.kill_at_ms = mono + self._kill_grace_ms
        self._executor.signal(active.run_id, kill=False)

    # --- leases ---------------------------------------------------------------------------

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
