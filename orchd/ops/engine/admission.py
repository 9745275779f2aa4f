"""Admission (ops layer): the pending jobs in line (priority descending, then arrival), leased in
order under the limits (``core.limits``), held ones throttled with their cause and time, and
the job transitions each decision records.
"""

from __future__ import annotations

from orchd.core import drafts, ids, limits, timefmt
from orchd.core.machines import JOB
from orchd.core.projection import JobView

from .base import CANDIDATE_STATES, EngineBase, candidate


class Admission(EngineBase):
    """Which pending jobs run now, and what holds the others."""

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
            if job.state not in CANDIDATE_STATES or self._not_before.get(job.job_id, 0) > now_ms:
                kept.append(entry)
                continue
            decision = limits.admit(candidate(job, arrival), self._state, self._limits, now_ms)
            if decision.verdict == "run" and self._undispatchable(job):
                decision = limits.Decision(
                    verdict="throttled", state=self._state, cause="dispatch_unavailable"
                )
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
        self._drafts.append(
            drafts.run_leased(
                self._actor,
                run_id=run_id,
                job_id=job.job_id,
                attempt=attempt,
                lease_expires_at=timefmt.format_ms(now_ms + self._lease_ms),
            )
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
            draft = drafts.job_throttled(
                self._actor, job_id=job.job_id, from_state=job.state, decision=decision, extra=extra
            )
        else:
            draft = drafts.job_transitioned(
                self._actor,
                job_id=job.job_id,
                from_state=job.state,
                to=to,
                attempts=job.attempts,
                extra=extra,
            )
        self._drafts.append(draft)
        moved = job._replace(state=JOB.advance(job.job_id, job.state, to), cause=extra.get("cause"))
        if job.job_id in self._pending:
            self._pending[job.job_id] = (moved, self._pending[job.job_id][1])
        return moved
