"""The big operations under way in the daemon (entry layer): every progress report
(``core/progress.py``) of a verify, a prune, an export or an import, whoever runs it (a caller
through the API, on the loop or a lane; the daemon's own daily prune), kept here.

Three readers, one source: the progress stream (``GET /v1/stream/progress?after=N``, the
``progress`` action: each report an item numbered by ``position``, the newest ``KEPT`` of them
replayable), systemd's status line (``running``: the newest report of each operation under way)
and the log (an operation's end). Each item names the operation's ``id`` (one per operation in
this daemon's life), the caller's ``pid`` and ``uid`` (the daemon's own for its prune), and its
``state``: ``running`` until its last item says ``done``, ``failed`` or ``interrupted``.
Reports come from any thread; one lock keeps the board whole.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import threading
from collections.abc import Callable, Iterator
from typing import Any

from orchd.core.progress import OnProgress, Progress
from orchd.errors import Interrupted

from .common import Log

KEPT = 256  # items the stream can replay to a client that connects late


class Operations:
    """``report`` each step of an operation started with ``start``, then ``end`` it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: collections.deque[dict[str, Any]] = collections.deque(maxlen=KEPT)
        self._position = 0
        self._ids = itertools.count(1)
        self._running: dict[int, tuple[dict[str, Any], Progress]] = {}

    @contextlib.contextmanager
    def tracked(
        self,
        *,
        pid: int,
        uid: int,
        log: Log,
        feed: Callable[[], None] = lambda: None,
        cancelled: Callable[[], str | None] = lambda: None,
    ) -> Iterator[OnProgress]:
        """The progress callback of one operation run inside: each report kept here, then
        ``feed`` (systemd's watchdog, for an operation on the loop); when ``cancelled()`` says
        why (the caller hung up, the daemon stops), ``Interrupted`` at that report, which the
        operation rolls back. Its end is kept and logged. An action that never reports (no big
        operation after all) leaves no trace."""
        numbers: list[int] = []  # its id, given at its first report

        def report(progress: Progress) -> None:
            why = cancelled()
            if why is not None:
                raise Interrupted(detail=why)
            if not numbers:
                numbers.append(self.start(pid=pid, uid=uid))
            self.report(numbers[0], progress)
            feed()

        state = "failed"
        try:
            yield report
            state = "done"
        except Interrupted:
            state = "interrupted"
            raise
        finally:
            if numbers:
                ended = {k: v for k, v in self.end(numbers[0], state).items() if k != "position"}
                log("info" if state != "failed" else "warning", "operation ended", **ended)

    def start(self, *, pid: int, uid: int) -> int:
        """A new operation's id; ``report`` it, then ``end`` it."""
        with self._lock:
            number = next(self._ids)
            self._running[number] = ({"id": number, "pid": pid, "uid": uid}, _NOTHING_YET)
            return number

    def report(self, number: int, progress: Progress) -> None:
        with self._lock:
            who, _ = self._running[number]
            self._running[number] = (who, progress)
            self._add(who, progress, "running")

    def end(self, number: int, state: str) -> dict[str, Any]:
        """The operation is over (``state``: done, failed or interrupted): its last item."""
        with self._lock:
            who, progress = self._running.pop(number)
            return self._add(who, progress, state)

    def after(self, position: int) -> list[dict[str, Any]]:
        """The items after ``position`` that are still kept, oldest first."""
        with self._lock:
            return [item for item in self._items if item["position"] > position]

    def running(self) -> list[Progress]:
        """The newest report of each operation under way, oldest operation first."""
        with self._lock:
            found = [p for _, p in self._running.values() if p is not _NOTHING_YET]
        return found

    def _add(self, who: dict[str, Any], progress: Progress, state: str) -> dict[str, Any]:
        self._position += 1
        item = {
            "position": self._position,
            **who,
            "operation": progress.operation,
            "step": progress.step,
            "done": progress.done,
            "total": progress.total,
            "unit": progress.unit,
            "state": state,
        }
        self._items.append(item)
        return item


_NOTHING_YET = Progress(operation="", step="", done=0, total=None)
