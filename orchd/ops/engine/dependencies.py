"""Dependencies (ops layer): ``waiting`` jobs moved once what they run ``after:`` settled
(``core.outcomes.readiness``): queued when every upstream job succeeded, cancelled with cause
``upstream_failed`` when one ended without success.
"""

from __future__ import annotations

from orchd.core import outcomes

from .admission import Admission


class Dependencies(Admission):
    """Which waiting jobs may join the line, read from the ledger's upstream jobs."""

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
