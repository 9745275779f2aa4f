"""The spool part (entry layer): each tick takes the requests in ``spool/new`` (and any a crash
left in ``cur/``) and records their jobs (``orchd.ops.intake``), or moves them to ``rejected/``
with the reason (docs/ARCHITECTURE.md, "The daemon")."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from orchd import crash
from orchd.adapters import spool
from orchd.adapters.system import actor_for_uid
from orchd.core.events import Actor
from orchd.core.policy import Policy
from orchd.core.ports import Clock, Entropy, JobLog
from orchd.errors import OrchdError, StorageError
from orchd.ops import intake, jobs

from .common import Log

PER_TICK = 20  # requests taken per tick (each its own commit): a backlog never makes a long tick
BUDGET_MS = 40  # nor one more taken once a tick spent this long on them (a slow disk's commits)


class SpoolIntake:
    """``tick`` returns True when it recorded a job. A request's actor is the file's owner (with
    the submit scope), else the daemon's own ``actor``. A tick takes ``PER_TICK`` requests at
    most, and none more once it spent ``BUDGET_MS`` on them (a backlog, as one an import's hold
    leaves, goes over the next ticks: ``more`` wakes the loop for them at once)."""

    def __init__(
        self,
        folder: Path,
        ledger: JobLog,
        clock: Clock,
        entropy: Entropy,
        actor: Actor,
        policy: Callable[[], Policy],
        log: Log,
        more: Callable[[], None] = lambda: None,
    ) -> None:
        self.folder, self.ledger, self.clock, self.entropy = folder, ledger, clock, entropy
        self.actor, self.policy, self.log, self.more = actor, policy, log, more

    def tick(self, now_ms: int) -> bool:
        added = False
        pending = spool.pending(self.folder)
        if len(pending) > PER_TICK:
            pending = pending[:PER_TICK]
            self.more()
        started = self.clock.monotonic_ms()
        for taken, name in enumerate(pending):
            if taken and self.clock.monotonic_ms() - started >= BUDGET_MS:
                self.more()  # the rest at the next tick, at once
                break
            claimed = spool.claim(self.folder, name)
            if claimed is None:
                continue
            if claimed.problem is not None:
                self._reject(claimed, claimed.problem)
                continue
            crash.point("spool.claimed")
            try:
                self._submit(claimed)
            except StorageError:
                raise  # the disk, not the request: the file stays in cur/ for the next try
            except OrchdError as exc:
                self._reject(claimed, exc.message)
                continue
            crash.point("spool.recorded")
            spool.done(self.folder, name)
            added = True
        return added

    def _submit(self, claimed: spool.Claimed) -> None:
        actor = self.actor if claimed.uid is None else actor_for_uid(claimed.uid, jobs.SUBMIT_SCOPE)
        done = intake.submit(
            self.ledger,
            self.clock,
            self.entropy,
            actor,
            self.policy(),
            claimed.request or {},
            claimed.name,
        )
        self.log(
            "info",
            "spool request recorded",
            file=claimed.name,
            job=done.job.job_id,
            new=done.created,
            event=done.event_id,
        )

    def _reject(self, claimed: spool.Claimed, reason: str) -> None:
        event = intake.reject(self.ledger, self.actor, claimed.name, claimed.identity, reason)
        moved = spool.reject(self.folder, claimed.name, reason)
        self.log(
            "warning",
            "spool request rejected",
            file=claimed.name,
            moved_to=moved,
            reason=reason,
            event=event.event_id,
        )
