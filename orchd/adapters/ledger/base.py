"""What every part of the SQLite ledger stands on (adapters layer): the connection and its
settings, SQLite's errors translated, the write transaction, recording this site's own events
in it, and the positions of the chains (heads, hashes, checkpoints) with the head file kept after
each commit.

``SqliteLedger`` (``store.py``) composes this base with its queries, integrity and retention
parts; each part is a class over the same connection, so a call costs what one class's did.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Self
from urllib.parse import quote

from sqlite_utils import Database

from orchd.core import chain, events, hlc, ids
from orchd.core.chain import Head
from orchd.core.events import Draft, Event
from orchd.core.ports import Clock, Entropy
from orchd.errors import LedgerCorrupt, OrchdError, SchemaTooNew, StateConflict, StorageError

from . import placement, projector, schema

HEADS_EVERY_S = 1.0  # commits closer together than this share one head-file write
EVENT_COLUMNS = ("origin", "seq", *chain.INDEX_COLUMNS, "hash", "body")
INSERT_EVENT = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in EVENT_COLUMNS)})"
)
_CORRUPT_MARKERS = ("not a database", "malformed", "corrupt")


@contextlib.contextmanager
def translated(path: Path) -> Iterator[None]:
    """Turn SQLite and OS failures into orchd errors naming ``path``."""
    try:
        yield
    except OrchdError:
        raise
    except sqlite3.IntegrityError as exc:
        raise StateConflict(detail=f"the ledger refused the change ({exc})") from exc
    except sqlite3.DatabaseError as exc:
        text = str(exc)
        if any(marker in text for marker in _CORRUPT_MARKERS):
            raise LedgerCorrupt(path=path, detail=text) from exc
        raise StorageError(path=path, detail=text) from exc
    except OSError as exc:
        raise StorageError(path=path, detail=exc.strerror or str(exc)) from exc


BUSY_MS = 30_000  # how long a connection waits for another's lock
JOURNAL_LIMIT = 64 << 20  # bytes of ``-wal`` kept after a checkpoint
# page cache while a long read streams through the file (cache_limited), and so the memory of
# SQLite's sorter then: 2 MiB verified 1M events in 56 s at 70 MiB, 16 MiB in 69 s at 113 MiB
STREAM_CACHE_KIB = 2048


def connect(path: Path, mode: str) -> Database:
    conn = sqlite3.connect(
        f"file:{quote(str(path))}?mode={mode}", uri=True, isolation_level=None, timeout=30
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA cache_size = -65536")  # 64 MiB of page cache (KiB when negative)
        # the WAL grows while a long reader (verify, backup) keeps old pages alive; once it has
        # been checkpointed, SQLite truncates it back to this at the next write
        conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_LIMIT}")
    except BaseException:
        conn.close()
        raise
    # no sqlite-utils plugins: none is part of orchd, and finding them costs every command
    # some 30 ms (it reads every installed package's entry points)
    return Database(conn, execute_plugins=False)


def check_database(db: Database, path: Path) -> None:
    app_id = db.execute("PRAGMA application_id").fetchone()[0]
    if app_id != schema.APPLICATION_ID:
        raise LedgerCorrupt(path=path, detail="a SQLite database, but not an orchd ledger")
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > schema.latest():
        raise SchemaTooNew(path=path, found=version, known=schema.latest())


def check_whole_file(path: Path) -> None:
    """``PRAGMA quick_check`` of the whole file, on a read-only connection of its own (so a
    thread beside the daemon's loop may run it): LedgerCorrupt when SQLite finds any page
    wrong. It reads every page, so it runs in ``ledger verify``, ``doctor`` and in the daemon's
    background, never when a command opens the ledger (docs/ARCHITECTURE.md, "Opening")."""
    with translated(path):
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, isolation_level=None)
        try:
            rows = [row[0] for row in conn.execute("PRAGMA quick_check(8)")]
        finally:
            conn.close()
    if rows != ["ok"]:
        raise LedgerCorrupt(path=path, detail=f"quick_check: {'; '.join(rows)}")


def event_row(event: Event) -> tuple[object, ...]:
    return (event.origin, event.seq, *chain.index_values(event), event.hash, event.body)


def of_origin(joined: str, origin: str | None) -> tuple[str, list[str]]:
    """A condition on a projection row's origin (``joined`` by WHERE or AND) and its parameter;
    nothing for None (every origin)."""
    return ("", []) if origin is None else (f"{joined} origin = ?", [origin])


class LedgerBase:
    """One ledger file's connection and this site's place in it."""

    def __init__(
        self, db: Database, path: Path, clock: Clock, entropy: Entropy, *, keep_heads: bool = False
    ) -> None:
        self._db = db
        self.path = path
        self._heads_file = placement.heads_file(path) if keep_heads else None
        self._clock = clock
        self._entropy = entropy
        self._site_id = self._meta("site_id")
        self._heads_due = 0.0  # monotonic time after which a commit writes the head file at once
        self._heads_stale = False

    @property
    def site_id(self) -> str:
        return self._site_id

    def _meta(self, key: str) -> str:
        with translated(self.path):
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        if row is None:
            raise LedgerCorrupt(path=self.path, detail=f"meta {key!r} is missing")
        return str(row[0])

    def truncate_wal(self, wait_ms: int) -> bool:
        """Copy the WAL into the ledger and cut it to nothing, waiting at most ``wait_ms`` for
        readers of older snapshots (best effort: False when one held on). After a big write,
        so that the next commit neither copies it nor cuts a huge file down to
        ``journal_size_limit`` (hundreds of MB after a big import)."""
        with translated(self.path):
            self._db.execute(f"PRAGMA busy_timeout = {int(wait_ms)}")
            try:
                busy = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            finally:
                self._db.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
        return not busy

    @contextlib.contextmanager
    def cache_limited(self) -> Iterator[None]:
        """At most ``STREAM_CACHE_KIB`` of pages while a long read streams through the file
        (each page is read once: a bigger cache would only grow the process with the ledger),
        then as before."""
        (before,) = self._db.execute("PRAGMA cache_size").fetchone()
        self._db.execute(f"PRAGMA cache_size = -{STREAM_CACHE_KIB}")
        try:
            yield
        finally:
            self._db.execute(f"PRAGMA cache_size = {int(before)}")

    def limit_cache(self, mib: int) -> None:
        """Hold at most ``mib`` MiB of pages from now on and free what is cached beyond that
        (a long-running daemon, after the open checks read the whole file)."""
        with translated(self.path):
            self._db.execute(f"PRAGMA cache_size = -{int(mib) * 1024}")
            self._db.execute("PRAGMA shrink_memory")

    def read_only(self) -> None:
        """From now on this connection only reads (``PRAGMA query_only``): a write through it
        fails, whatever called it (the daemon's read lane: status, listings, the console)."""
        with translated(self.path):
            self._db.execute("PRAGMA query_only = 1")

    def another(self) -> Self:
        """Another connection to this ledger, for a thread beside this one (the daemon's lanes).

        It skips the opening checks, which this connection passed, and above all ``check_file``:
        closing any descriptor of the file in a process drops every POSIX lock the process
        holds on it, SQLite's included, after which another process's last connection may
        checkpoint and delete the WAL this one still writes to (its commits then go nowhere
        anyone reads). Call it on the thread that will use the connection."""
        db = connect(self.path, "rw")
        db.execute("PRAGMA synchronous = FULL")
        return type(self)(db, self.path, self._clock, self._entropy, keep_heads=True)

    def close(self) -> None:
        if self._heads_stale:
            with contextlib.suppress(OrchdError):
                self._note_heads(now=None)
        self._db.close()

    def optimize(self) -> None:
        """Statistics for the query planner as the ledger grows (``PRAGMA optimize``, bounded by
        ``analysis_limit``; never waiting for another writer; best effort). The daemon runs it
        once a day: it writes ``sqlite_stat1``, so no command that must leave the file as it was
        (a refused bundle) runs it."""
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA busy_timeout = 0")
            try:
                self._db.execute("PRAGMA analysis_limit = 400")
                self._db.execute("PRAGMA optimize")
            finally:
                self._db.execute("PRAGMA busy_timeout = 30000")

    def give_back(self) -> None:
        """Hand the free pages back to the file system (``PRAGMA incremental_vacuum``, its own
        short write, after a prune committed). On a ledger made before ``auto_vacuum``
        (``INCREMENTAL`` since issue 22) the pragma does nothing: ``compact`` does it once."""
        with translated(self.path), self.cache_limited():  # it walks every free page once
            self._db.conn.executescript("PRAGMA incremental_vacuum;")  # stepped to its end

    def compact(self) -> tuple[int, int]:
        """Rewrite the file without its free pages (``VACUUM``; a ledger made before issue 22
        becomes ``auto_vacuum = INCREMENTAL`` on the way) and empty the WAL: the file's bytes
        before and after. It needs the site to itself (the caller holds the site lock, no
        daemon) and free disk for a copy of the ledger; a failure leaves it as it was."""
        with translated(self.path):
            before = self.path.stat().st_size
            self._db.execute("PRAGMA auto_vacuum = INCREMENTAL")
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return before, self.path.stat().st_size

    def settle(self) -> tuple[int, int, int]:
        """After a long read: checkpoint what the WAL holds without waiting for anyone
        (``PASSIVE``), so that the next write can restart it small (``journal_size_limit``);
        SQLite's (busy, WAL frames, frames checkpointed)."""
        with translated(self.path):
            row = self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    # --- writing --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        with translated(self.path):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")  # a failed COMMIT rolls back too: nothing half-open
            except BaseException:
                self._db.conn.rollback()
                raise

    def _record_own(self, drafts: Sequence[Draft]) -> list[Event]:
        """Seal ``drafts`` after this site's head, insert and project them (in the caller's
        transaction)."""
        head, clock = self._own_head()
        fresh = events.seal_batch(
            list(drafts),
            origin=self._site_id,
            after=(head.seq, head.hash),
            clock=clock,
            now_ms=self._clock.now_ms(),
            entropy=self._entropy.token(ids.ENTROPY_BYTES * len(drafts)),
        )
        self._db.conn.executemany(INSERT_EVENT, [event_row(e) for e in fresh])
        projector.project(self._db, fresh, self._site_id)
        return fresh

    def _own_head(self) -> tuple[Head, hlc.Hlc]:
        """This site's head, and the clock to tick from: the highest HLC of any origin held
        here, so that what this site records next orders after everything it has seen."""
        row = self._db.execute(
            "SELECT seq, hash, (SELECT max(hlc) FROM heads) FROM heads WHERE origin = ?",
            [self._site_id],
        ).fetchone()
        if row is None:
            return chain.START, hlc.ZERO
        return Head(seq=row[0], hash=row[1]), hlc.parse(row[2])

    def _note_heads(self, now: float | None = None) -> None:
        """Write the head file after a commit: at once when ``now`` is None or a second has
        passed since this instance last wrote it, else at the next such commit or at close.

        Best effort: the commit is already durable, so a failure to write only leaves the file
        older, which weakens the check in ``open`` but never makes it wrong.
        """
        if self._heads_file is None:
            return
        if now is not None and now < self._heads_due:
            self._heads_stale = True
            return
        with contextlib.suppress(OSError, OrchdError):
            placement.write_heads(self._heads_file, self.heads())
        self._heads_due, self._heads_stale = time.monotonic() + HEADS_EVERY_S, False

    # --- the positions of the chains ------------------------------------------------------

    def heads(self) -> dict[str, tuple[int, str]]:
        """origin -> (seq, hash) of the newest event of each origin held here."""
        with translated(self.path):
            return {
                o: (s, h) for o, s, h in self._db.execute("SELECT origin, seq, hash FROM heads")
            }

    def hashes(self, wanted: Sequence[tuple[str, int]]) -> dict[tuple[str, int], str]:
        """The hash of each (origin, seq) held here, or kept as a checkpoint after pruning."""
        sql = (
            "SELECT hash FROM events WHERE origin = ?1 AND seq = ?2 UNION ALL "
            "SELECT hash FROM checkpoints WHERE origin = ?1 AND seq = ?2"
        )
        found = {}
        with translated(self.path):
            for origin, seq in wanted:
                row = self._db.execute(sql, [origin, seq]).fetchone()
                if row is not None:
                    found[(origin, seq)] = row[0]
        return found

    def checkpoints(self) -> dict[str, tuple[int, str]]:
        """origin -> (seq, hash) of the last event pruned (the chain goes on from there)."""
        with translated(self.path):
            rows = self._db.execute("SELECT origin, seq, hash FROM checkpoints")
            return {origin: (seq, digest) for origin, seq, digest in rows}
