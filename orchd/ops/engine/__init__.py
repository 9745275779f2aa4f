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

``loop.Engine`` is composed from the parts in this package, each a class over the state that
``base`` declares (with the settings, the runs held and ``Tally``): ``loading`` (recovery, the
pending jobs and the limits read), ``admission`` (the line, leases, throttling, transitions),
``dependencies`` (waiting jobs released), ``runs`` (start, exit, timeouts, stops, heartbeats)
and ``recording`` (what ended settled against its job, each step's one transaction); ``loop``
adds the steps and the loop itself.
"""

from .base import (
    DEGRADED_RETRY_MS,
    HEARTBEAT_MS,
    KILL_GRACE_MS,
    MAX_SLEEP_MS,
    SCOPE,
    Seen,
    Settled,
    Tally,
    Writer,
)
from .loop import Engine

__all__ = [
    "DEGRADED_RETRY_MS",
    "HEARTBEAT_MS",
    "KILL_GRACE_MS",
    "MAX_SLEEP_MS",
    "SCOPE",
    "Engine",
    "Seen",
    "Settled",
    "Tally",
    "Writer",
]
