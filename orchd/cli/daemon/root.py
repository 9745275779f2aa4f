"""The daemon's loop (entry layer): it composes the parts, owns the clock and their order, and
handles signals, policy reloads, storage reports and the start and end of serving.

One thread, the loop, runs the engine, and before each step ``tick``, which calls each part's
``tick(now_ms)`` with the monotonic time: signals, the clock watch, the control API's calls,
then (unless draining) the spool, the inbox, the requests imports brought, due schedule slots
and pruning, and last systemd's status and watchdog. It writes the ledger but for the long
writes (an import, from the API or the inbox; a prune), which run on the write lane holding the
ledger's writer, while the loop goes on without writing (``lanes.py``; ``Engine.run``). The
other threads wake that loop or hand it work (the wake-ups, ``wake.py``, and the control
socket's server threads), or read beside it on connections of their own: the API's reads and
exports (``lanes.py``) and the daily whole-file check. The truth is always re-read: the spool
is rescanned every ``--rescan`` seconds (and at start), and due slots are computed from the
ledger.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import FrameType
from typing import Any

from orchd.adapters import config, keys, policy_files, spool
from orchd.adapters.notify import Notifier
from orchd.adapters.runner import SubprocessExecutor
from orchd.core import drafts, timefmt
from orchd.core.policy import Policy
from orchd.core.progress import OnProgress
from orchd.errors import OrchdError, StorageError
from orchd.ops import engine, jobs

from ..actions import WRITE_LANE, checkpoint_signer
from ..context import Site
from ..sitefiles import check_ledger_file
from . import calls, dispatching, env, serving
from .common import Audit, Health, JsonLog
from .housekeeping import ClockWatch, FileCheck, Prune, Report
from .inbox import Inbox, Requests
from .intake import SpoolIntake
from .lanes import Lanes, Writer
from .operations import Operations
from .schedules import Schedules
from .wake import WakeUp

LANE_CACHE_MIB = 8  # each lane thread's page cache (the loop's is run.DAEMON_CACHE_MIB)


class Daemon:
    """``orchd run``'s daemon: ``serve`` runs the engine's loop with ``tick`` before each step
    until a signal has drained it."""

    def __init__(
        self,
        site: Site,
        policy: Policy,
        executor: SubprocessExecutor,
        log: JsonLog,
        *,
        settings: config.Settings,
    ) -> None:
        self.site, self.policy, self.executor, self.log = site, policy, executor, log
        self.settings = settings
        self.grace_ms = settings.drain_grace_s * 1000
        self.notifier = Notifier(os.environ)
        self.actor = site.actor(engine.SCOPE, jobs.SUBMIT_SCOPE)
        self.dispatch = dispatching.dispatcher(site, settings, policy, executor.wake, log)
        self.engine = engine.Engine(
            site.ledger,
            policy,
            site.clock,
            site.entropy,
            executor,
            self.actor,
            holder=f"{socket.gethostname()}:{os.getpid()}",
            kill_grace_ms=settings.kill_grace_s * 1000,
            heartbeat_ms=settings.heartbeat_s * 1000,
            lease_ms=settings.lease_s * 1000,
            on_settled=self._settled,
            dispatch=self.dispatch,
            claim_secret=keys.claim_secret(site.config.state_dir) if self.dispatch else b"",
            remote_lease_ms=settings.remote_lease_s * 1000,
        )
        self.spool = site.config.state_dir / env.SPOOL_DIR
        self.inbox = env.inbox_dir(site, settings)
        self.signals: list[int] = []
        self.drain_started: int | None = None
        self.health = Health()
        self.audit = Audit(site.ledger, site.clock, self.actor, log)
        self.socket_path = env.settings_socket(site, settings)
        self._parts()

    def _settled(self, told: engine.Settled) -> None:
        """A line for every run that did not succeed, once its end is recorded: failed or timed
        out, then retried (when) or dead, so that ``journalctl -u orchd`` explains a stale
        feed; a run stopped for a cancel or a stop is said at info."""
        if told.outcome == "succeeded":
            return
        job = told.job
        fields = {
            "job_id": job.job_id,
            "job_type": job.job_type,
            "source": job.source,
            "run_id": told.run_id,
            "attempt": told.attempt,
            "exit_code": told.exit_code,
            "cause": told.cause,
        }
        if told.job_state == "retry_wait":
            retry = told.eligible_at
            self.log("warning", f"run {told.outcome}; retry at {retry}", retry_at=retry, **fields)
        elif told.job_state == "dead":
            self.log("error", f"run {told.outcome}; job dead", **fields)
        else:
            self.log("info", f"run {told.outcome}", job_state=told.job_state, **fields)

    def _parts(self) -> None:
        """Each part, given only what it uses (the policy as a getter: SIGHUP replaces it)."""
        site, settings, log, policy = self.site, self.settings, self.log, self.current_policy
        ledger, clock, entropy = site.ledger, site.clock, site.entropy
        actor, health = self.actor, self.health
        mono = clock.monotonic_ms()
        self.writer, self.wrote = Writer(), threading.Event()
        self.lanes = Lanes(site, LANE_CACHE_MIB, self.writer, self._written)
        self.operations = operations = Operations()
        if self.dispatch is not None:
            health.workers = self._workers
        self.calls = calls.Calls(
            site,
            settings,
            policy,
            health=health,
            audit=self.audit,
            log=log,
            wake=self.executor.wake,
            feed=self.feed,
            reload=self.engine.reload,
            lanes=self.lanes,
            operations=operations,
        )
        self.intake = SpoolIntake(
            self.spool, ledger, clock, entropy, actor, policy, log, more=self.executor.wake
        )
        self.beside: set[str] = set()  # the daemon's own work under way on the write lane
        self.lane_inbox: Inbox | None = None  # the inbox part on the write lane's connection
        self.requests = Requests(ledger, clock, entropy, actor, policy, health, log)
        self.schedules = Schedules(
            ledger,
            clock,
            entropy,
            actor,
            policy,
            rescan_ms=settings.rescan_s * 1000,
            arm=self._arm,
            health=health,
            log=log,
        )
        self.wake = WakeUp(
            self.executor.wake, [self.spool / "new", self.inbox / "new"], self.schedules.timer_fired
        )
        self._housekeeping(mono)

    def _housekeeping(self, mono: int) -> None:
        """The parts that keep the site: its status line, the clock, pruning, the file check."""
        site, log, health = self.site, self.log, self.health
        self.report = Report(
            self.notifier,
            health,
            lambda: (self.engine.queued, self.engine.running),
            self.operations.running,
        )
        self.clock_watch = ClockWatch(site.clock, self.audit, log, self._look_at_schedules, mono)
        first_ms = 1000 if os.environ.get("ORCHD_TEST_HOOKS") == "1" else 60_000  # tests wait less
        self.prune = Prune(
            site,
            self.settings,
            self.current_policy,
            log,
            first_ms=mono + first_ms,
            track=lambda: self._track(stoppable=True),
            submit=lambda work: self._on_writer("prune", work),
        )
        self.file_check = FileCheck(
            lambda: check_ledger_file(site.config),
            health,
            log,
            first_ms=mono,
            optimize=site.ledger.optimize,
        )

    def _track(self, *, stoppable: bool = False) -> AbstractContextManager[OnProgress]:
        """The progress callback of a big operation of the daemon's own, on the write lane (the
        loop feeds the watchdog meanwhile): on the board; ``stoppable``: interrupted (rolled
        back) once the daemon is told to stop."""
        return self.operations.tracked(
            pid=os.getpid(),
            uid=os.getuid(),
            log=self.log,
            cancelled=self._stopping if stoppable else lambda: None,
        )

    def _stopping(self) -> str | None:
        if self.drain_started is not None or any(s != signal.SIGHUP for s in self.signals):
            return "the daemon was told to stop"
        return None

    def current_policy(self) -> Policy:
        return self.policy

    # --- the loop's tick --------------------------------------------------------------------

    def tick(self) -> bool:
        """Everything the daemon does before an engine step; True if it recorded new jobs.
        While an import on the write lane holds the ledger's writer, only what writes nothing
        (signals but SIGHUP's reload, systemd's status and watchdog); the calls, files and
        slots wait for the tick after it."""
        self._test_stall()
        now_ms = self.site.clock.monotonic_ms()
        self._signals(now_ms)
        tally = self.engine.tally  # as of the ticks before this one, for the metrics
        self.health.longest_tick_ms = tally.longest_tick_ms
        self.health.longest_record_delay_ms = tally.longest_record_delay_ms
        if not self.engine.writable:
            self.report.tick(now_ms)
            return False
        if self.wrote.is_set():  # an import on the write lane ended
            self.wrote.clear()
            self.requests.due = True
            self.engine.reload()  # what it brought (quota overrides, pauses) takes effect now
        self.clock_watch.tick(now_ms)
        added = self.calls.tick(now_ms)
        if self.drain_started is None:
            added |= self.intake.tick(now_ms)
            if spool.pending(self.inbox):
                self._on_writer("inbox", lambda site: self._inbox(site).tick(now_ms))
            added |= self.requests.tick(now_ms)
            added |= self.schedules.tick(now_ms)
            self.prune.tick(now_ms)
        self.file_check.tick(now_ms)
        self.report.tick(now_ms)
        return added

    def _workers(self) -> list[dict[str, Any]]:
        """The remote workers as the engine's last step heard from them (``orchd workers``;
        on any thread: it reads the step's tuple, made whole before it is published)."""
        return [
            {
                "worker": name,
                "version": seen.version or None,
                "concurrency": seen.concurrency or None,
                "last_heard_at": timefmt.format_ms(seen.heard_ms),
                "running": running,
            }
            for name, seen, running in self.engine.heard
        ]

    def _on_writer(self, name: str, work: Callable[[Site], object]) -> None:
        """``work(site)`` on the write lane with the lane's own site, unless the work ``name``
        is under way there: the daemon's own long writes (the inbox's imports, the daily
        prune), during which the loop goes on without writing. A failure is logged; a failing
        disk leaves the work for a later tick (an inbox file stays in ``cur/``)."""
        if name in self.beside:
            return
        self.beside.add(name)

        def run() -> None:
            try:
                work(self.lanes.site())
            except OrchdError as exc:
                self.health.last_error = exc.message
                self.log("error", f"{name} failed; trying again", error=exc.message)
            except Exception as exc:  # a bug must not end the lane's thread
                self.log("error", f"{name} failed", error=repr(exc))
            finally:
                self.beside.discard(name)

        if not self.lanes.submit(WRITE_LANE, run):
            self.beside.discard(name)

    def _inbox(self, site: Site) -> Inbox:
        """The inbox part on the write lane's site (made at its first use, on that thread)."""
        if self.lane_inbox is None:
            self.lane_inbox = Inbox(
                self.inbox,
                site.ledger,
                site.clock,
                self.settings,
                Audit(site.ledger, site.clock, self.actor, self.log),
                self.log,
                lambda: self._track(),
                checkpoint_signer(site),
            )
        return self.lane_inbox

    def _written(self) -> None:  # on the write lane's thread
        self.wrote.set()
        self.executor.wake()

    def feed(self) -> None:
        """Systemd's status and watchdog, now (a long step between ticks calls it)."""
        self.report.tick(self.site.clock.monotonic_ms())

    def _look_at_schedules(self) -> None:
        self.schedules.due = True

    def _arm(self, at_ms: int | None) -> None:
        self.wake.arm(at_ms)

    def _test_stall(self) -> None:
        """Test-only: with ORCHD_TEST_HOOKS=1, the loop hangs while STATE_DIR/test-stall exists
        (to show that the systemd watchdog pings stop when the loop does). Off otherwise."""
        if os.environ.get("ORCHD_TEST_HOOKS") != "1":
            return
        stall = self.site.config.state_dir / "test-stall"
        while stall.exists():
            time.sleep(0.05)

    def _signals(self, now_ms: int) -> None:
        held: list[int] = []
        while self.signals:
            signum = self.signals.pop(0)
            if signum == signal.SIGHUP and not self.engine.writable:
                held.append(signum)  # its reload is audited: once the loop holds the writer
            elif signum == signal.SIGHUP:
                self._reload()
            elif self.drain_started is None:
                self.drain_started = now_ms
                self.log("info", "draining", grace_s=self.grace_ms // 1000)
                self.notifier.stopping()
                self.engine.drain()
        self.signals[:0] = held
        if self.drain_started is not None and now_ms - self.drain_started >= self.grace_ms:
            self.engine.stop()

    def _reload(self) -> None:
        try:
            policy = env.with_daemon_env(
                policy_files.load(self.site.config.policy_dir), self.site, self.settings
            )
        except OrchdError as exc:
            self.health.last_error = exc.message
            event = self.audit(drafts.policy_reload_failed, error=exc.message)
            self.log(
                "error",
                "policy reload refused; the old policy stays",
                error=exc.message,
                event=event,
            )
            return
        self.policy = policy
        self.engine.set_policy(policy)
        if self.dispatch is not None:  # a new remote type's consumer, a changed pending limit
            self.dispatch.reconfigure(dispatching.type_concurrency(policy))
        self.schedules.due = True
        event = self.audit(
            drafts.policy_reloaded,
            job_types=len(policy.job_types),
            schedules=len(policy.schedules),
        )
        self.log("info", "policy reloaded", schedules=len(policy.schedules), event=event)

    def on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.signals.append(signum)
        self.executor.wake()

    # --- running ------------------------------------------------------------------------------

    def serve(self) -> engine.Tally:
        spool.ensure(self.spool)
        spool.ensure(self.inbox, spool.INBOX_SUBDIRS)
        with serving.serving(self):
            watchdog = self.notifier.watchdog_ms
            sleep_ms = engine.MAX_SLEEP_MS if watchdog is None else min(1000, watchdog // 4)
            return self.engine.run(
                until_idle=False,
                tick=self.tick,
                max_sleep_ms=max(1, sleep_ms),
                on_storage=self._storage,
                writer=self.writer,
            )

    def _storage(self, exc: StorageError | None) -> None:
        """The engine's report on the disk: failing (degraded: writes fail and wait, reads and
        the API go on) or, with None, writable again."""
        if exc is None:
            self.health.degraded = False
            self.health.last_error = ""
            self.log("info", "storage writable again: recovered")
            return
        if not self.health.degraded:
            self.log("error", "storage failing: degraded, retrying every second", error=exc.message)
        self.health.degraded = True
        self.health.last_error = exc.message
        self.feed()
