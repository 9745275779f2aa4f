"""The daemon's housekeeping parts (entry layer): pruning by the policy's retention once a day,
the wall clock watched against the monotonic one, and systemd told the status and fed the
watchdog."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

from orchd.adapters import config
from orchd.adapters.notify import Notifier
from orchd.adapters.system import actor_for_uid
from orchd.core import drafts, timefmt
from orchd.core.policy import Policy
from orchd.core.ports import Clock
from orchd.core.progress import OnProgress, Progress, quiet
from orchd.errors import Interrupted, OrchdError, StorageError
from orchd.ops import retention

from .. import actions
from ..context import Site
from .common import Audit, Health, Log

PRUNE_EVERY_MS = 86_400_000
FILE_CHECK_EVERY_MS = 86_400_000
CLOCK_JUMP_MS = 60_000
STATUS_EVERY_MS = 10_000
STATUS_BUSY_MS = 1_000  # while a big operation runs: its progress on the status line


class Prune:
    """``tick`` prunes what the policy's retention allows, once a day from ``first_ms`` (the
    monotonic time of the first run): ``submit`` hands the prune to where it runs, with the
    site to prune (the daemon's write lane; by default here, on ``site``); a failing disk makes
    it try again at the next tick. ``track()`` gives the prune its progress callback (the
    daemon's board, which stops the prune, rolled back, once the daemon is told to stop)."""

    def __init__(
        self,
        site: Site,
        settings: config.Settings,
        policy: Callable[[], Policy],
        log: Log,
        *,
        first_ms: int,
        track: Callable[[], AbstractContextManager[OnProgress]] = lambda: nullcontext(quiet),
        submit: Callable[[Callable[[Site], None]], None] | None = None,
    ) -> None:
        self.site, self.settings, self.policy, self.log = site, settings, policy, log
        self.due_at, self.track = first_ms, track
        self.submit = submit or (lambda work: work(self.site))

    def tick(self, now_ms: int) -> None:
        if self.policy().retention_days is None or now_ms < self.due_at:
            return
        self.due_at = now_ms + PRUNE_EVERY_MS
        self.submit(self._prune)

    def _prune(self, site: Site) -> None:
        try:
            with self.track() as progress:
                done = actions.ACTIONS["ledger.prune"].run(self._request(site, progress))
        except StorageError:
            self.due_at = 0  # the disk: again once it is back
            raise
        except Interrupted as exc:
            self.log("info", "pruning stopped; again after the start", error=exc.message)
            return
        except OrchdError as exc:
            self.log("error", "pruning failed; trying again tomorrow", error=exc.message)
            return
        if done["removed"]:
            self.log("info", "pruned", events=done["removed"], cutoff=done["cutoff"])

    def _request(self, site: Site, progress: OnProgress) -> actions.Request:
        return actions.Request(
            site=site,
            actor=actor_for_uid(os.getuid(), retention.SCOPE),
            policy=self.policy,
            settings=self.settings,
            body={"dry_run": False},
            progress=progress,
        )


class FileCheck:
    """``tick`` runs the whole-file check of the ledger (``PRAGMA quick_check``, every page
    read) in a thread of its own, on its own read-only connection, at the daemon's start and
    then once a day: READY is never waited for it, and the loop goes on meanwhile. A damaged page
    is logged at error level and kept as the daemon's last error and ``file_ok`` (the status
    line, ``orchd_ledger_file_ok`` 0), until a later check passes. ``optimize`` (the loop's
    ledger: statistics for the planner) runs on the loop as each check starts."""

    def __init__(
        self,
        check: Callable[[], None],
        health: Health,
        log: Log,
        *,
        first_ms: int,
        optimize: Callable[[], None] = lambda: None,
    ):
        self.check, self.health, self.log, self.optimize = check, health, log, optimize
        self.due_at = first_ms
        self.running: threading.Thread | None = None
        self.found: OrchdError | None = None
        self.took_ms = 0  # the last check's own time (not the wait for the loop's next tick)

    def tick(self, now_ms: int) -> None:
        if self.running is not None:
            if self.running.is_alive():
                return
            self.running = None
            self._report(now_ms)
        if now_ms >= self.due_at:
            self.due_at = now_ms + FILE_CHECK_EVERY_MS
            self.optimize()
            self.found = None
            self.running = threading.Thread(target=self._run, name="ledger-check", daemon=True)
            self.running.start()

    def _run(self) -> None:
        started = time.monotonic()
        try:
            self.check()
        except OrchdError as exc:
            self.found = exc
        finally:
            self.took_ms = int((time.monotonic() - started) * 1000)

    def _report(self, now_ms: int) -> None:
        if self.found is None:
            self.health.file_ok = True
            self.log("info", "ledger file checked: every page ok", ms=self.took_ms)
            return
        self.health.file_ok = False
        self.health.last_error = self.found.message
        self.log("error", "ledger file damaged", error=self.found.message, hint=self.found.hint)


class ClockWatch:
    """``tick`` compares how far the wall clock and the monotonic ``now_ms`` moved since the last
    tick; a jump over a minute is audited and logged, and ``jumped`` is called (schedules look
    again)."""

    def __init__(
        self, clock: Clock, audit: Audit, log: Log, jumped: Callable[[], None], now_ms: int
    ) -> None:
        self.clock, self.audit, self.log, self.jumped = clock, audit, log, jumped
        self.seen = (clock.now_ms(), now_ms)

    def tick(self, now_ms: int) -> None:
        wall = self.clock.now_ms()
        seen_wall, seen_mono = self.seen
        self.seen = (wall, now_ms)
        drift = (wall - seen_wall) - (now_ms - seen_mono)
        if abs(drift) > CLOCK_JUMP_MS:
            event = self.audit(
                drafts.clock_jumped,
                before=timefmt.format_ms(seen_wall),
                after=timefmt.format_ms(wall),
                jump_ms=drift,
            )
            self.log("warning", "wall clock jumped", jump_ms=drift, event=event)
            self.jumped()


class Report:
    """``tick`` tells systemd the status line every 10 s (queue, running, the last error), every
    second while big operations run (the newest report of each, from ``operations``), and feeds
    its watchdog at half its interval; ``counts`` gives (queued, running)."""

    def __init__(
        self,
        notifier: Notifier,
        health: Health,
        counts: Callable[[], tuple[int, int]],
        operations: Callable[[], list[Progress]] = lambda: [],
    ) -> None:
        self.notifier, self.health, self.counts = notifier, health, counts
        self.operations = operations
        self.next_status = self.next_watchdog = 0
        self.busy = False  # the last status line named an operation under way

    def tick(self, now_ms: int) -> None:
        under_way = self.operations()
        if now_ms >= self.next_status or self.busy != bool(under_way):
            self.busy = bool(under_way)
            self.next_status = now_ms + (STATUS_BUSY_MS if under_way else STATUS_EVERY_MS)
            queued, running = self.counts()
            status = f"queue {queued}, running {running}"
            if self.health.last_error:
                status += f", last error: {self.health.last_error[:200]}"
            status += "".join(f"; {p.line()}" for p in under_way)
            self.notifier.status(status)
        watchdog = self.notifier.watchdog_ms
        if watchdog is not None and now_ms >= self.next_watchdog:
            self.next_watchdog = now_ms + watchdog // 2
            self.notifier.watchdog()
