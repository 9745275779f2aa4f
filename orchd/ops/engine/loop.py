"""The loop (ops layer): ``Engine``, composed from the engine's parts, with its steps (what ended
recorded, dependencies settled, jobs admitted and leased, then started), its loop until idle or
stopped, a failing disk as a degraded state, and stopping and draining.
"""

from __future__ import annotations

from collections.abc import Callable

from orchd import crash
from orchd.core.policy import Policy
from orchd.core.ports import Exit
from orchd.errors import StorageError

from .base import DEGRADED_RETRY_MS, MAX_SLEEP_MS, Tally, Writer
from .dependencies import Dependencies
from .loading import Loading


class Engine(Loading, Dependencies):
    """The engine of one site: loading and recovery, runs and recording (``Loading``), admission
    and dependencies (``Dependencies``), and the loop that steps them."""

    def run(
        self,
        *,
        until_idle: bool,
        max_wait_ms: int = 60_000,
        should_stop: Callable[[], bool] = lambda: False,
        tick: Callable[[], bool] | None = None,
        max_sleep_ms: int = MAX_SLEEP_MS,
        on_storage: Callable[[StorageError | None], None] | None = None,
        writer: Writer | None = None,
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

        ``writer`` (the daemon's): each tick and step takes the ledger's writer if it is free.
        While another connection holds it (an import), ``writable`` is False: the tick writes
        nothing (the daemon's parts look at it) and the step only enforces timeouts and keeps
        what ended in memory; the first step with the writer commits it. The engine never
        returns with a record held back.
        """
        self.recover()
        self.load()
        degraded = False
        began = self._clock.monotonic_ms()
        while True:
            self.writable = writer is None or writer.take()
            try:
                wake_in, degraded = self._turn(tick, should_stop, on_storage, degraded)
            finally:
                if self.writable and writer is not None:
                    writer.give_back()
            if self.writable and self._stopped():
                self._detach()
                return self.tally
            idle = not self._active and (wake_in is None or wake_in > max_wait_ms)
            if idle and self.writable:
                if until_idle:
                    return self.tally
                if wake_in is None and tick is None:
                    self.load()  # a long-running worker looks for new work now and then
            sleep_ms = max_sleep_ms if wake_in is None else min(max_sleep_ms, wake_in)
            tick_ms = self._clock.monotonic_ms() - began
            self.tally.longest_tick_ms = max(self.tally.longest_tick_ms, tick_ms)
            exits = self._executor.wait(sleep_ms)
            began = self._clock.monotonic_ms()  # the next tick: noting these exits, then a step
            if self._note_exits(exits, on_storage):
                degraded = True

    def _turn(
        self,
        tick: Callable[[], bool] | None,
        should_stop: Callable[[], bool],
        on_storage: Callable[[StorageError | None], None] | None,
        degraded: bool,
    ) -> tuple[int | None, bool]:
        """One tick and one step: (milliseconds until the next is due, degraded)."""
        try:
            if should_stop() and not self._stopping:
                self.stop()
            if tick is not None and tick():
                self.take_new()
            wake_in = self.step(writable=self.writable)
            if degraded and on_storage is not None and self.writable:
                degraded = False
                on_storage(None)
        except StorageError as exc:
            if on_storage is None:
                raise
            on_storage(exc)
            return DEGRADED_RETRY_MS, True
        return wake_in, degraded

    def _note_exits(
        self, exits: list[Exit], on_storage: Callable[[StorageError | None], None] | None
    ) -> bool:
        """Note the end of each run of ``exits``; True when noting one failed on a failing disk
        (its end is unrecorded: recovery retries the job)."""
        failed = False
        for ended in exits:
            try:
                self._ended(ended)
            except StorageError as exc:
                if on_storage is None:
                    raise
                failed = True
                on_storage(exc)
        return failed

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
        """Admit nothing more; let the runs going on here finish (``stop`` interrupts them).
        The remote ones are served as ever (heartbeats, results) while the loop goes on, and
        left to their workers when it ends, for the daemon started next (``_detach``)."""
        self._stopping = True

    def stop(self) -> None:
        """Admit nothing more; ask every group running here to stop (SIGKILL after the grace);
        the remote runs are not stopped: they go on on their workers."""
        self._stopping = True
        now = self._clock.monotonic_ms()
        for active in self._active.values():
            if active.ending is None and not active.remote:
                self._signal(active, "interrupted", now)

    def _stopped(self) -> bool:
        """Stopping, with nothing left running here and nothing left to record."""
        local = any(not active.remote for active in self._active.values())
        return self._stopping and not local and not self._drafts and not self._endings

    def step(self, *, writable: bool = True) -> int | None:
        """Do what is due; return milliseconds until something else is, None if nothing is.
        Not ``writable`` (another connection holds the writer): only what writes nothing."""
        mono = self._clock.monotonic_ms()
        self._enforce_timeouts(mono)
        now_ms = self._clock.now_ms()
        self._hear(mono, now_ms)
        if self._held_since is None and (self._drafts or self._endings):
            self._held_since = mono  # records to commit, from now
        if not writable:
            return self._wake_in(now_ms, mono, held=True)
        self._settle_endings()
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
        if self._held_since is not None:
            delay_ms = self._clock.monotonic_ms() - self._held_since
            self.tally.longest_record_delay_ms = max(self.tally.longest_record_delay_ms, delay_ms)
            self._held_since = None
        for job, run_id, attempt in leased:
            self._start(job, run_id, attempt, mono)
        self._heartbeat(mono)
        return self._wake_in(now_ms, mono)

    def _wake_in(self, now_ms: int, mono: int, *, held: bool = False) -> int | None:
        """Milliseconds until something is due; ``held`` (no writer): only a timeout's signal,
        since nothing else can be done until the writer is free (whose end wakes the loop)."""
        waits = []
        for active in self._active.values():
            if active.kill_at_ms is not None:
                waits.append(active.kill_at_ms - mono)
            elif active.ending is None:
                waits.append(active.deadline_ms - mono)
            # else: SIGKILL was sent; its exit wakes the executor
        waits.extend(held_ms.until_ms - mono for held_ms in self._leases.held.values())
        if held:
            return max(0, min(waits)) if waits else None
        if self._next_heartbeat_ms is not None:
            waits.append(self._next_heartbeat_ms - mono)
        if self._drafts or self._endings:
            waits.append(0)
        if not self._stopping:  # only pending candidates have a time in _not_before
            waits.extend(at - now_ms for at in self._not_before.values())
        return max(0, min(waits)) if waits else None
