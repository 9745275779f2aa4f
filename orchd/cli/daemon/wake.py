"""The daemon's wake-ups (entry layer): watchdog's inotify observer on the folders producers
rename files into, and APScheduler's timer at the next due schedule slot, behind one adapter.

Both only wake the loop (its threads never touch the ledger): the truth is re-read there."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer


class _Wake(FileSystemEventHandler):
    def __init__(self, wake: Callable[[], None]) -> None:
        self.wake = wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.wake()


class WakeUp:
    """``start``, ``arm(at_ms)`` (the timer; None disarms it) and ``stop``.

    ``wake`` wakes the loop (the executor's wake pipe); ``on_timer`` runs on the timer's thread
    when an armed time comes, before ``wake``."""

    def __init__(
        self, wake: Callable[[], None], folders: Sequence[Path], on_timer: Callable[[], None]
    ) -> None:
        self.wake, self.folders, self.on_timer = wake, list(folders), on_timer
        self.timer = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        )
        self.observer = Observer()

    def start(self) -> None:
        # the folders are new/ only: producers' renames arrive as IN_MOVED_TO, and claims (link,
        # unlink) make no move events, whose unpaired halves watchdog would hold for 0.5 s
        for folder in self.folders:
            self.observer.schedule(_Wake(self.wake), str(folder), recursive=False)
        self.observer.start()
        self.timer.start()

    def arm(self, at_ms: int | None) -> None:
        self.timer.remove_all_jobs()
        if at_ms is not None:
            when = datetime.fromtimestamp(at_ms / 1000, UTC)
            self.timer.add_job(self._fired, DateTrigger(run_date=when, timezone=UTC))

    def stop(self) -> None:
        self.timer.shutdown(wait=False)
        self.observer.stop()
        self.observer.join(timeout=5)

    def _fired(self) -> None:  # on APScheduler's thread: only wake the loop
        self.on_timer()
        self.wake()
