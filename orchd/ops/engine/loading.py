"""Loading and recovery (ops layer): the runs a dead worker left open ended, the pending jobs and
the limits read (policy, overrides, the last day's starts), and the runs of jobs an operator
cancelled stopped once the engine reads the ledger again.
"""

from __future__ import annotations

from dataclasses import replace

from orchd.core import limits, timefmt
from orchd.core.projection import JobView
from orchd.ops import quota

from .admission import Admission
from .recording import Recording
from .remote import Remote


class Loading(Recording, Remote, Admission):
    """What the engine reads from the ledger: at start, after new jobs, after a reload."""

    def recover(self) -> None:
        """End the runs a dead worker left open, after killing whatever of them survives; hold
        the remote ones again (``Remote._adopt``: their workers may still run them)."""
        stale = self._ledger.open_runs()
        if not stale:
            return
        held = self._ledger.jobs_by_id({run.job_id for run in stale})
        mono = self._clock.monotonic_ms()
        for run in [r for r in stale if self._adoptable(held.get(r.job_id))]:
            self._adopt(held[run.job_id], run, mono)
        stale = [run for run in stale if run.run_id not in self._active]
        if not stale:
            return
        self.tally.survivors_killed += self._executor.sweep([run.run_id for run in stale])
        now_ms = self._clock.now_ms()
        for run in stale:
            job = held.get(run.job_id)
            if job is None:  # the projection holds the run, so it holds its job
                continue
            self._end(
                job, run.run_id, run.attempt, "interrupted", None, b"", now_ms, cause="lease_lost"
            )
        self.tally.interrupted += len(stale)
        self._flush()

    def _adoptable(self, job: JobView | None) -> bool:
        """A run of a remote type, with NATS configured: its worker, not this host, runs it."""
        job_type = None if job is None else self._policy.job_types.get(job.job_type)
        return job_type is not None and job_type.remote and self._dispatch is not None

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

    def reload(self) -> None:
        """``load`` after another connection wrote (an import, a prune): the pending jobs, the
        quota overrides and the pauses again; the limits' counts of this site's own starts
        stay as counted, since only this engine records them (replaying the last day's starts
        is what makes ``load`` grow with the site's rate)."""
        self.refresh()
        self._limits = self._effective_limits()
        paused = frozenset(p.source for p in self._ledger.pauses())
        self._state = replace(self._state, paused=paused)

    def refresh(self) -> None:
        """Read the pending jobs again (new ones were recorded); the limits' counts stay.

        What this engine decided but could not record yet (a full disk) is recorded first: a
        job leased in memory must not be read back as still queued and leased twice.
        """
        self._flush()
        self._pending, self._waiting, self._not_before = {}, set(), {}
        self._take(self._ledger.pending_jobs())

    def take_new(self) -> None:
        """``refresh`` for what a tick just recorded (the spool's, the schedules' and the
        requests' new jobs): only the jobs that arrived after the newest one held are read,
        not every pending job again (what the others changed, a call or an import, reloads)."""
        self._flush()
        newest = max((arrival for _, arrival in self._pending.values()), default=0)
        self._take(self._ledger.pending_jobs(after=newest))

    def _take(self, found: list[tuple[JobView, int]]) -> None:
        """Hold the pending jobs ``found`` (each with its arrival) beside those held."""
        for job, arrival in found:
            self._pending[job.job_id] = (job, arrival)
            self._arrivals[job.job_id] = arrival
            if job.state == "waiting":
                self._waiting.add(job.job_id)
            if job.eligible_at is not None:
                self._not_before[job.job_id] = timefmt.parse_canonical(job.eligible_at)
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


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) else None
