"""The calls answered beside the loop (entry layer): reads, the long reads and the long write,
each on a thread of its own with a ledger connection of its own, so that a scrape, a listing,
an export or an import never holds the loop (which owns the engine, the spool and every other
write).

Three lanes: ``read`` (two threads: status, metrics, listings, shows), ``long`` (one thread,
so they queue behind each other: ``ledger verify``, ``bundle verify``, ``bundle export``) and
``write`` (one thread: ``bundle import``, one transaction). An action names its lane
(``actions.Action.lane``); one without a lane runs on the loop. A call on the write lane holds
the ledger's writer (``Writer``) for its whole length: it waits for the loop's tick to end,
and meanwhile the loop, which takes the writer without waiting, goes on without writing
(``engine.Engine.run``); when it ends, ``written`` tells the loop (which reloads what an import
may have changed, and commits what it held back). Each
thread opens another connection to the loop's ledger once, on its first call (SQLite in WAL
mode: a reader sees the last commit and never waits for the writer; ``LedgerBase.another``:
without reopening the file, which would drop SQLite's locks), and closes it when the daemon
stops. The long lane's verify and an export's reading and compressing run in a child process
(``adapters/beside.py``: their Python work never holds the interpreter lock the loop needs); an
export then records its ``bundle.exported`` event on the lane's connection, a short write after
the long read. A call on the long lane is waited for without a time limit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
from collections.abc import Callable

from orchd.errors import OrchdError

from ..actions import LONG_LANE, WRITE_LANE
from ..context import Site

TRUNCATE_WAIT_MS = 200  # the longest a write lane waits for readers to cut the WAL after it
READ_LANE = "read"
LANES = {READ_LANE: 2, LONG_LANE: 1, WRITE_LANE: 1}  # lane -> threads
_CLOSE = None  # put once per thread: it closes its site and ends


class Writer:
    """The ledger's writer, shared by the loop and the write lane (``engine.Writer``): the loop
    ``take``s it without waiting, the lane waits for it (``held``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def take(self) -> bool:
        return self._lock.acquire(blocking=False)

    def give_back(self) -> None:
        self._lock.release()

    def held(self) -> threading.Lock:
        """``with writer.held():`` the write lane's hold, waiting for the loop's tick to end."""
        return self._lock


class Lanes:
    """``submit(lane, work)`` runs ``work()`` on one of the lane's threads, where ``site()`` is
    that thread's own open site (on the write lane holding ``writer``, then telling
    ``written``); ``close`` (at the daemon's end) lets the calls queued and under way finish,
    then each thread closes its site (SQLite: on the thread that opened it) and ends;
    ``submit`` then returns False."""

    def __init__(
        self,
        site: Site,
        cache_mib: int,
        writer: Writer | None = None,
        written: Callable[[], None] = lambda: None,
    ) -> None:
        self.loop_site, self.cache_mib = site, cache_mib
        self.writer = Writer() if writer is None else writer
        self.written = written
        self._queues: dict[str, queue.Queue[Callable[[], None] | None]] = {}
        self._threads: list[threading.Thread] = []
        self._local = threading.local()
        self._closed = False
        self._lock = threading.Lock()

    def submit(self, lane: str, work: Callable[[], None]) -> bool:
        """True once ``work`` is queued on ``lane``; False when the lanes are closed."""
        with self._lock:
            if self._closed:
                return False
            if not self._queues:
                self._start()
            self._queues[lane].put(self._writing(work) if lane == WRITE_LANE else work)
        return True

    def _writing(self, work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                with self.writer.held():
                    work()
                    self._truncate_wal()
            finally:
                self.written()

        return run

    def _truncate_wal(self) -> None:
        """After a long write, while the lane still holds the writer: its WAL copied and cut
        here, not by the loop's next commit (best effort; a reader may hold it on)."""
        with contextlib.suppress(OrchdError):
            self.site().ledger.truncate_wal(TRUNCATE_WAIT_MS)

    def _start(self) -> None:
        """The threads, at the first call (a daemon that answers none starts none)."""
        for lane, count in LANES.items():
            work: queue.Queue[Callable[[], None] | None] = queue.Queue()
            self._queues[lane] = work
            for n in range(count):
                thread = threading.Thread(
                    target=self._serve, args=(lane, work), name=f"orchd-{lane}-{n}", daemon=True
                )
                self._threads.append(thread)
                thread.start()

    def site(self) -> Site:
        """This thread's site, opened on its first call (on a lane's thread only)."""
        site: Site | None = getattr(self._local, "site", None)
        if site is None:
            ledger = self.loop_site.ledger.another()
            ledger.limit_cache(self.cache_mib)
            lane = getattr(self._local, "lane", "")
            if lane == READ_LANE:  # reads never write, by any path
                ledger.read_only()
            ledger.work_in_child = lane == LONG_LANE  # its long Python work off this process
            site = self._local.site = dataclasses.replace(self.loop_site, ledger=ledger)
        return site

    def _serve(self, lane: str, work: queue.Queue[Callable[[], None] | None]) -> None:
        self._local.lane = lane
        try:
            while (call := work.get()) is not _CLOSE:
                call()  # answers its caller, an error included (``Calls._beside``)
        finally:
            site: Site | None = getattr(self._local, "site", None)
            if site is not None:
                site.ledger.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for lane, work in self._queues.items():
                for _ in range(LANES[lane]):
                    work.put(_CLOSE)
        for thread in self._threads:
            thread.join()
