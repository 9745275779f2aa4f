"""Recording (ops layer): the runs that ended settled against their jobs as the ledger holds them
(fate: succeeded, a retry, dead; a retry back in line), and what a step decided recorded in one
ledger transaction.
"""

from __future__ import annotations

from fractions import Fraction

from orchd.core import drafts, outcomes, timefmt
from orchd.core.projection import JobView
from orchd.errors import OrchdError

from .base import CANDIDATE_STATES, Ending, EngineBase, Settled


class Recording(EngineBase):
    """Each step's drafts, and the ends of runs they record."""

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

    def _record_end(self, e: Ending, current: JobView | None) -> None:
        job_state = eligible_at = None
        cause = e.cause
        if current is not None and current.state == "running":
            fate = self._fate(e.job, e.attempt, e.outcome, e.exit_code, e.at_ms, e.cause)
            job_state, cause = fate.state, fate.cause
            if fate.eligible_at_ms is not None:
                eligible_at = timefmt.format_ms(fate.eligible_at_ms)
            self.tally.ended[fate.state] = self.tally.ended.get(fate.state, 0) + 1
            if fate.state == "retry_wait":
                self._requeue(e.job, e.attempt, fate, e.at_ms)
            else:
                self._deps_dirty = True
        draft = drafts.run_ended(
            self._actor,
            run_id=e.run_id,
            job_id=e.job.job_id,
            outcome=e.outcome,
            exit_code=e.exit_code,
            output=e.output.decode("utf-8", errors="replace") if e.output else None,
            job_state=job_state,
            cause=cause,
            eligible_at=eligible_at,
        )
        self._drafts.append(draft)
        self._settled.append(
            Settled(
                e.job, e.run_id, e.attempt, e.outcome, e.exit_code, cause, job_state, eligible_at
            )
        )

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

    def _flush(self) -> None:
        """Record what this step decided, in one transaction."""
        self._settle_endings()
        if not self._drafts:
            self._answer_committed()  # results of runs ended already: nothing to commit first
            return
        batch, self._drafts = self._drafts, []
        try:
            self._ledger.append(batch)
        except OrchdError:
            self._drafts = batch + self._drafts  # kept for the next try; nothing was recorded
            raise
        touched: set[str] = {d.payload.get("job_id", "") for d in batch} & self._pending.keys()
        found = self._ledger.jobs_by_id(touched)
        for job_id in touched:
            fresh = found.get(job_id)
            if fresh is None or fresh.state not in (*CANDIDATE_STATES, "waiting"):
                del self._pending[job_id]
            else:
                self._pending[job_id] = (fresh, self._pending[job_id][1])
        settled, self._settled = self._settled, []
        for one in settled:
            self._on_settled(one)
        self._answer_committed()
