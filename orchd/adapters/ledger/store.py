"""The SQLite ledger: the event log of one site and its projections (adapters layer).

WAL journal, ``synchronous=FULL``, one ``BEGIN IMMEDIATE`` transaction per append. Opening checks
the file before SQLite writes to it, runs ``PRAGMA quick_check`` and re-verifies the newest events
of every chain; anything wrong is refused, never repaired.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from urllib.parse import quote

from sqlite_utils import Database

from orchd.core import canonical, chain, dsse, events, hlc, ids
from orchd.core.chain import Head, Stored
from orchd.core.events import Draft, Event
from orchd.core.metrics import RunTally
from orchd.core.ports import Clock, Entropy, VerifyReport
from orchd.core.projection import (
    JOB_COLUMNS,
    RUN_COLUMNS,
    AnswerView,
    BundleView,
    JobView,
    OverrideView,
    PauseView,
    ReceiptView,
    RequestView,
    RunView,
)
from orchd.core.trust import KeyView
from orchd.errors import (
    BadInput,
    ChainBroken,
    LedgerBehind,
    LedgerCorrupt,
    NotInitialized,
    OrchdError,
    ProjectionMismatch,
    SchemaTooNew,
    SignatureInvalid,
    SiteExists,
    StateConflict,
    StorageError,
)

from .. import files, keys
from . import projector, schema

SQLITE_MAGIC = b"SQLite format 3\x00"
TAIL_CHECK = 64  # newest events per origin re-verified at every open
HEADS_EVERY_S = 1.0  # commits closer together than this share one head-file write
_EVENT_COLUMNS = ("origin", "seq", *chain.INDEX_COLUMNS, "hash", "body")
_INSERT_EVENT = (
    f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _EVENT_COLUMNS)})"
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


def check_file(path: Path) -> None:
    """Refuse a path that is not an existing, non-empty SQLite file, before SQLite opens it."""
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        raise NotInitialized(path=path.parent) from None
    except OSError as exc:
        raise StorageError(path=path, detail=exc.strerror or str(exc)) from exc
    if not header:
        raise LedgerCorrupt(path=path, detail="the file is empty (0 bytes)")
    if header != SQLITE_MAGIC:
        raise LedgerCorrupt(path=path, detail="not a SQLite database")


def _connect(path: Path, mode: str) -> Database:
    conn = sqlite3.connect(
        f"file:{quote(str(path))}?mode={mode}", uri=True, isolation_level=None, timeout=30
    )
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA cache_size = -65536")  # 64 MiB of page cache (KiB when negative)
    except BaseException:
        conn.close()
        raise
    return Database(conn)


class _DryRun(Exception):
    """Roll back a transaction that did everything (internal signal)."""


class _KeyRecorded(Exception):
    """An idempotency key of the batch is already in the ledger (internal signal)."""


class SqliteLedger:
    """The ``Ledger`` port over one SQLite file."""

    def __init__(
        self, db: Database, path: Path, clock: Clock, entropy: Entropy, *, keep_heads: bool = False
    ) -> None:
        self._db = db
        self.path = path
        self._heads_file = heads_file(path) if keep_heads else None
        self._clock = clock
        self._entropy = entropy
        self._site_id = self._meta("site_id")
        self._heads_due = 0.0  # monotonic time after which a commit writes the head file at once
        self._heads_stale = False

    # --- opening and creating -------------------------------------------------------------

    @classmethod
    def open(
        cls, path: Path, clock: Clock, entropy: Entropy, *, check_heads: bool = True
    ) -> SqliteLedger:
        """Open an existing ledger, checking it first; never creates one.

        ``check_heads=False`` skips comparing the ``heads`` projection with the chains (which
        are still verified), so that ``rebuild`` can repair a damaged projection.
        """
        check_file(path)
        sidecars = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]
        new_sidecars = [p for p in sidecars if not p.exists()]
        with translated(path):
            try:
                db = _connect(path, "rw")
            except BaseException:
                _remove_unused(new_sidecars)
                raise
            try:
                _check_database(db, path)
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = FULL")
                schema.migrate(db.conn, schema.MIGRATIONS)
                ledger = cls(db, path, clock, entropy, keep_heads=True)
                db.execute("BEGIN")  # one read snapshot: a writer may be appending meanwhile
                try:
                    ledger._check_own_chain()
                    ledger._verify_tails(check_heads)
                    ledger._check_head_file()
                finally:
                    db.execute("ROLLBACK")
            except BaseException:
                db.close()
                _remove_unused(new_sidecars)
                raise
        return ledger

    @classmethod
    def create(
        cls,
        path: Path,
        site_id: str,
        clock: Clock,
        entropy: Entropy,
        first: Draft,
        also: Sequence[Draft] = (),
    ) -> SqliteLedger:
        """Create a new ledger at ``path`` (which must not exist) holding ``first``, ``also``.

        The ledger is built under a temporary name and linked into place, so a crash leaves
        either no ledger or a complete one, and an existing file is never overwritten.
        """
        return cls._build(
            path, site_id, clock, entropy, lambda ledger: ledger.append([first, *also])
        )

    @classmethod
    def restore(
        cls,
        path: Path,
        site_id: str,
        clock: Clock,
        entropy: Entropy,
        own: Iterable[Sequence[Event]],
        *,
        payloads_checked: bool = False,
    ) -> SqliteLedger:
        """Create a ledger at ``path`` (which must not exist) from this site's own events, as a
        lost site's last export (or a peer's copy) holds them: chained from ``site.initialized``,
        built under a temporary name and linked into place like ``create``. ``payloads_checked``
        as for ``import_events``."""

        def fill(ledger: SqliteLedger) -> None:
            done = ledger.import_events(
                own, lambda: [], restoring=True, payloads_checked=payloads_checked
            )
            if not done:
                raise ChainBroken(origin=site_id, seq=1, detail="no events to restore")
            first = ledger._db.execute(
                "SELECT type FROM events WHERE origin = ? AND seq = 1", [site_id]
            ).fetchone()
            if first is None or first[0] != "site.initialized":
                raise ChainBroken(origin=site_id, seq=1, detail="it does not open the site")

        return cls._build(path, site_id, clock, entropy, fill)

    @classmethod
    def _build(
        cls,
        path: Path,
        site_id: str,
        clock: Clock,
        entropy: Entropy,
        fill: Callable[[SqliteLedger], object],
    ) -> SqliteLedger:
        """A new ledger at ``path``: schema and site id on a staging file, ``fill``, then fsync
        and link into place (never over an existing file)."""
        staging = path.with_name(path.name + ".creating")
        with translated(path):
            _remove_staging(staging)
            db = _connect(staging, "rwc")
            try:
                db.execute(f"PRAGMA application_id = {schema.APPLICATION_ID:d}")
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = FULL")
                schema.migrate(db.conn, schema.MIGRATIONS)
                db.execute("INSERT INTO meta (key, value) VALUES ('site_id', ?)", [site_id])
                fill(cls(db, staging, clock, entropy))
            finally:
                db.close()
            staging.chmod(0o640)
            _fsync(staging)
            try:
                _link(staging, path)
            finally:
                _remove_staging(staging)
            _fsync(path.parent)
            heads_file(path).unlink(missing_ok=True)  # a lost ledger's, if any: not this one's
        ledger = cls.open(path, clock, entropy)
        ledger._note_heads()
        return ledger

    def limit_cache(self, mib: int) -> None:
        """Hold at most ``mib`` MiB of pages from now on and free what is cached beyond that
        (a long-running daemon, after the open checks read the whole file)."""
        with translated(self.path):
            self._db.execute(f"PRAGMA cache_size = -{int(mib) * 1024}")
            self._db.execute("PRAGMA shrink_memory")

    def close(self) -> None:
        if self._heads_stale:
            with contextlib.suppress(OrchdError):
                self._note_heads(now=None)
        self._db.close()

    @property
    def site_id(self) -> str:
        return self._site_id

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

    def append(self, drafts: Sequence[Draft]) -> list[Event]:
        try:
            return self._append(drafts, recorded={})
        except _KeyRecorded:  # rare: look the keys up, then append only what is new
            keys = {draft.idempotency_key for draft in drafts}
            with translated(self.path):
                recorded = self._recorded(keys)
            return self._append(drafts, recorded)

    def _append(self, drafts: Sequence[Draft], recorded: dict[str, Event]) -> list[Event]:
        """One transaction: seal what ``recorded`` lacks, insert, project, commit."""
        todo: dict[str, Draft] = {}
        for draft in drafts:
            if draft.idempotency_key not in recorded:
                todo.setdefault(draft.idempotency_key, draft)  # a key twice: recorded once
        with self._transaction():
            try:
                fresh = self._record_own(list(todo.values()))
            except sqlite3.IntegrityError as exc:
                if "idempotency_key" in str(exc):
                    raise _KeyRecorded from None
                raise
        self._note_heads(time.monotonic())
        if len(fresh) == len(drafts):  # the common case: every draft was new, in this order
            return fresh
        by_key = {**recorded, **{event.idempotency_key: event for event in fresh}}
        return [by_key[draft.idempotency_key] for draft in drafts]

    def _record_own(self, drafts: Sequence[Draft]) -> list[Event]:
        """Seal ``drafts`` after this site's head, insert and project them (in the caller's
        transaction)."""
        head, clock = self._own_head()
        fresh = events.seal_batch(
            list(drafts), origin=self._site_id, after=(head.seq, head.hash), clock=clock,
            now_ms=self._clock.now_ms(),
            entropy=self._entropy.token(ids.ENTROPY_BYTES * len(drafts)),
        )  # fmt: skip
        self._db.conn.executemany(_INSERT_EVENT, [_event_row(e) for e in fresh])
        projector.project(self._db, fresh, self._site_id)
        return fresh

    def _recorded(self, keys: set[str]) -> dict[str, Event]:
        found: dict[str, Event] = {}
        listed = sorted(keys)
        for start in range(0, len(listed), 500):
            chunk = listed[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            for key, body, digest in self._db.execute(
                "SELECT idempotency_key, body, hash FROM events "
                f"WHERE origin = ? AND idempotency_key IN ({marks})",
                [self._site_id, *chunk],
            ):
                found[key] = events.parse(body, digest)
        return found

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
            _write_heads(self._heads_file, self.heads())
        self._heads_due, self._heads_stale = time.monotonic() + HEADS_EVERY_S, False

    def _check_head_file(self) -> None:
        """Every head the head file names must be held here, with the same hash: a ledger that
        lost committed events (its ``-wal`` deleted after a crash) is refused."""
        if self._heads_file is None:
            return
        recorded = _read_heads(self._heads_file)
        held = self.hashes(list(recorded))
        pruned = self.checkpoints()
        for (origin, seq), digest in sorted(recorded.items()):
            if seq < pruned.get(origin, (0, ""))[0]:
                continue  # pruned since: no hash is kept there to compare
            if (origin, seq) not in held:
                mine = self._db.execute(
                    "SELECT seq FROM heads WHERE origin = ?", [origin]
                ).fetchone()
                ends = f"ends at seq {mine[0]}" if mine else "holds no event"
                raise LedgerBehind(
                    path=self.path,
                    detail=f"origin {origin!r} {ends} here, but {self._heads_file} "
                    f"recorded seq {seq} after a commit",
                )
            if held[(origin, seq)] != digest:
                raise LedgerBehind(
                    path=self.path,
                    detail=f"origin {origin!r} seq {seq} has another hash than "
                    f"{self._heads_file} recorded: this is not the ledger it was written for",
                )

    # --- reading --------------------------------------------------------------------------

    def _meta(self, key: str) -> str:
        with translated(self.path):
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        if row is None:
            raise LedgerCorrupt(path=self.path, detail=f"meta {key!r} is missing")
        return str(row[0])

    def job(self, job_id: str) -> JobView | None:
        with translated(self.path):
            return projector.load_jobs(self._db, [job_id]).get(job_id)

    def jobs_by_id(self, job_ids: Collection[str]) -> dict[str, JobView]:
        with translated(self.path):
            return projector.load_jobs(self._db, job_ids)

    def job_by_key(self, key: str) -> JobView | None:
        return self._one_job("origin = ? AND key = ?", [self._site_id, key])

    def _one_job(self, where: str, params: list[str]) -> JobView | None:
        found = self._select_jobs(where, params, limit=1)
        return found[0] if found else None

    def jobs_with_prefix(self, prefix: str, limit: int) -> list[JobView]:
        return self._select_jobs("job_id >= ? AND job_id < ?", [prefix, prefix + "\x7f"], limit)

    def jobs(
        self,
        *,
        state: str | None,
        source: str | None,
        job_type: str | None = None,
        updated_since: str | None = None,
        origin: str | None = None,
    ) -> Iterator[JobView]:
        filters = {"origin = ?": origin, "state = ?": state, "source = ?": source,
                   "job_type = ?": job_type, "updated_at >= ?": updated_since}  # fmt: skip
        used = {sql: value for sql, value in filters.items() if value is not None}
        where = " AND ".join(["1 = 1", *used])
        yield from self._select_jobs(where, list(used.values()), limit=-1)

    def replays_of(self, job_id: str) -> list[JobView]:
        return self._select_jobs("replay_of = ?", [job_id], limit=-1)

    def pauses(self) -> list[PauseView]:
        """The sources this site's operators paused."""
        sql = "SELECT * FROM source_pauses WHERE origin = ? ORDER BY source"
        with translated(self.path):
            return [PauseView._make(row) for row in self._db.execute(sql, [self._site_id])]

    def overrides(self) -> list[OverrideView]:
        """Every quota override recorded here (of any origin), target by target."""
        sql = "SELECT * FROM quota_overrides ORDER BY kind, name, site"
        with translated(self.path):
            return [OverrideView._make(row) for row in self._db.execute(sql)]

    def state_counts(self, origin: str | None = None) -> dict[str, int]:
        where, params = _of_origin("WHERE", origin)
        sql = f"SELECT state, count(*) FROM jobs {where} GROUP BY state"
        with translated(self.path):
            return dict(self._db.execute(sql, params).fetchall())

    def last_successes(self, origin: str | None = None) -> list[tuple[str | None, str, str]]:
        """(source, job type, when its newest job succeeded), for every pair that succeeded."""
        where, params = _of_origin("AND", origin)
        sql = (
            f"SELECT source, job_type, max(updated_at) FROM jobs WHERE state = 'succeeded' {where} "
            "GROUP BY source, job_type ORDER BY source, job_type"
        )
        with translated(self.path):
            return [(row[0], row[1], row[2]) for row in self._db.execute(sql, params)]

    def job_tallies(self) -> list[tuple[str, str | None, str, str | None, int]]:
        sql = (
            "SELECT job_type, source, state, CASE WHEN state = 'throttled' THEN cause END, "
            "count(*) FROM jobs WHERE origin = ? GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
        )
        with translated(self.path):
            return [tuple(row) for row in self._db.execute(sql, [self._site_id])]

    def run_tallies(self, bounds: Sequence[int]) -> list[RunTally]:
        within = "".join(f", sum(seconds <= {int(b):d})" for b in bounds)
        sql = (
            "SELECT jobs.job_type, r.state, count(*), sum(r.attempt > 1), count(seconds), "
            f"total(seconds){within} FROM (SELECT job_id, state, attempt, "
            "(julianday(ended_at) - julianday(started_at)) * 86400.0 AS seconds FROM runs "
            "WHERE origin = ? AND ended_at IS NOT NULL) AS r JOIN jobs USING (job_id) "
            "GROUP BY 1, 2 ORDER BY 1, 2"
        )
        with translated(self.path):
            rows = self._db.execute(sql, [self._site_id]).fetchall()
        return [
            RunTally(job_type, outcome, runs, retries, timed, seconds,
                     tuple(int(n or 0) for n in buckets))
            for job_type, outcome, runs, retries, timed, seconds, *buckets in rows
        ]  # fmt: skip

    def event_tallies(self, types: Sequence[str]) -> dict[tuple[str, str], int]:
        marks = ", ".join("?" for _ in types)
        sql = (
            "SELECT type, coalesce(json_extract(CAST(body AS TEXT), '$.payload.error'), ''), "
            "count(*) FROM events INDEXED BY events_by_type "
            f"WHERE origin = ? AND job_id IS NULL AND type IN ({marks}) GROUP BY 1, 2"
        )
        with translated(self.path):
            rows = self._db.execute(sql, [self._site_id, *types])
            return {(kind, str(error)): count for kind, error, count in rows}

    def stalled_leases(self, now: str) -> int:
        sql = (
            "SELECT count(*) FROM runs LEFT JOIN leases USING (run_id) "
            "WHERE runs.state IN ('leased', 'running') AND runs.origin = ? "
            "AND coalesce(leases.expires_at, runs.lease_expires_at) < ?"
        )
        with translated(self.path):
            return int(self._db.execute(sql, [self._site_id, now]).fetchone()[0])

    def recent_runs(
        self, states: Sequence[str], limit: int, origin: str | None = None
    ) -> list[RunView]:
        marks = ", ".join("?" for _ in states)
        where, params = _of_origin("AND", origin)
        sql = (
            f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE state IN ({marks}) {where} "
            "ORDER BY ended_at DESC, run_id LIMIT ?"
        )
        with translated(self.path):
            rows = self._db.execute(sql, [*states, *params, limit])
            return [RunView._make(row) for row in rows]

    def _select_jobs(self, where: str, params: Sequence[str | None], limit: int) -> list[JobView]:
        sql = f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE {where} ORDER BY job_id LIMIT ?"
        with translated(self.path):
            rows = self._db.execute(sql, [*params, limit]).fetchall()
        return [JobView._make(row) for row in rows]

    def runs_of(self, job_id: str) -> list[RunView]:
        sql = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE job_id = ? ORDER BY attempt"
        with translated(self.path):
            rows = self._db.execute(sql, [job_id]).fetchall()
        return [RunView._make(row) for row in rows]

    def events_of(self, job_id: str) -> list[Event]:
        sql = "SELECT body, hash FROM events WHERE job_id = ? ORDER BY hlc, origin, seq"
        with translated(self.path):
            return [events.parse(b, h) for b, h in self._db.execute(sql, [job_id])]

    # --- what the engine reads and the unchained lease rows ---------------------------------

    def pending_jobs(self) -> list[tuple[JobView, int]]:
        """This site's jobs that have not run yet or wait to run again, with the seq of their
        ``job.submitted`` event (their arrival order)."""
        columns = ", ".join(f"j.{name}" for name in JOB_COLUMNS)
        # from the pending jobs (by state) to their events: left to itself the planner walks
        # every event of the site, which grows with the ledger and runs on every daemon tick
        sql = (
            f"SELECT {columns}, e.seq FROM jobs j INDEXED BY jobs_by_state CROSS JOIN events e "
            "ON e.job_id = j.job_id AND e.origin = j.origin AND e.type = 'job.submitted' "
            "WHERE j.origin = ? AND j.state IN ('queued', 'waiting', 'throttled', 'retry_wait') "
            "ORDER BY e.seq"
        )
        with translated(self.path):
            rows = self._db.execute(sql, [self._site_id]).fetchall()
        return [(JobView._make(row[:-1]), row[-1]) for row in rows]

    def open_runs(self) -> list[RunView]:
        """This site's runs still leased or running."""
        sql = (
            f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE state IN ('leased', 'running') "
            "AND origin = ? ORDER BY run_id"
        )
        with translated(self.path):
            return [RunView._make(row) for row in self._db.execute(sql, [self._site_id])]

    def leased_since(self, since: str) -> list[tuple[str, str, str | None]]:
        """(leased_at, job type, source) of this site's runs leased at or after ``since``."""
        sql = (
            "SELECT r.leased_at, j.job_type, j.source FROM runs r JOIN jobs j USING (job_id) "
            "WHERE r.leased_at >= ? AND r.origin = ? ORDER BY r.leased_at"
        )
        with translated(self.path):
            return [(r[0], r[1], r[2]) for r in self._db.execute(sql, [since, self._site_id])]

    def upstream_jobs(
        self, job_type: str, source: str | None, slot_at: str | None, before: str
    ) -> list[JobView]:
        """The jobs a dependent waits on: of ``job_type`` and the same source and slot; for an
        unscheduled dependent, the newest one without a slot submitted at or before ``before``."""
        same_source = "source IS ?"
        if slot_at is not None:
            where = f"origin = ? AND job_type = ? AND {same_source} AND slot_at = ?"
            return self._select_jobs(where, [self._site_id, job_type, source, slot_at], -1)
        sql = (
            f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE origin = ? AND job_type = ? "
            f"AND {same_source} AND slot_at IS NULL AND submitted_at <= ? "
            "ORDER BY submitted_at DESC, job_id DESC LIMIT 1"
        )
        with translated(self.path):
            rows = self._db.execute(sql, [self._site_id, job_type, source, before]).fetchall()
        return [JobView._make(row) for row in rows]

    def heartbeat(self, holder: str, expires: dict[str, str], now: str) -> None:
        """Make the lease rows exactly ``expires`` (run id -> expiry), held by ``holder``."""
        with self._transaction():
            self._db.execute("DELETE FROM leases")
            self._db.conn.executemany(
                "INSERT INTO leases (run_id, holder, heartbeat_at, expires_at) VALUES (?, ?, ?, ?)",
                [(run_id, holder, now, until) for run_id, until in sorted(expires.items())],
            )

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

    def first_newer(self, origin: str, at: str) -> int | None:
        sql = "SELECT min(seq) FROM events WHERE origin = ? AND occurred_at >= ?"
        with translated(self.path):
            row = self._db.execute(sql, [origin, at]).fetchone()
        return None if row[0] is None else int(row[0])

    def prune(
        self,
        upto: Mapping[str, int],
        sign: Callable[[bytes], bytes],
        at: str,
        then: Callable[[int, dict[str, tuple[int, str]]], Sequence[Draft]],
    ) -> int:
        """In one transaction: fold each origin's events up to ``upto[origin]`` into the
        projections' base, delete them, keep the last one's (seq, hash) as the origin's
        checkpoint, sign the checkpoints and the base's digest (``sign``: payload -> DSSE
        envelope), and record ``then(removed, checkpoints)``. The number of events removed."""
        removed = 0
        with self._transaction():
            kept = {o: (s, h) for o, s, h in self._db.execute("SELECT * FROM checkpoints")}
            moved = {}
            for origin, seq in sorted(upto.items()):
                floor = kept.get(origin, (0, ""))[0]
                if seq > floor:
                    row = self._db.execute(
                        "SELECT hash FROM events WHERE origin = ? AND seq = ?", [origin, seq]
                    ).fetchone()
                    if row is None:
                        raise ChainBroken(origin=origin, seq=seq, detail="not held: cannot prune")
                    moved[origin] = (floor, seq, row[0])
            if not moved:
                return 0
            with _scratch_projection(self.path) as base:
                self._load_base(base)
                for origin, (floor, seq, _digest) in moved.items():
                    cursor = self._db.conn.execute(
                        "SELECT body, hash FROM events WHERE origin = ? AND seq > ? AND seq <= ? "
                        "ORDER BY seq",
                        [origin, floor, seq],
                    )
                    while batch := cursor.fetchmany(5000):
                        parsed = [events.parse(body, digest) for body, digest in batch]
                        projector.project(base, parsed, self._site_id)
                self._store_base(base)
                base_digest = projector.digest(base)
            self._db.execute("DROP TRIGGER events_no_delete")
            for origin, (_floor, seq, digest) in moved.items():
                removed += self._db.execute(
                    "DELETE FROM events WHERE origin = ? AND seq <= ?", [origin, seq]
                ).rowcount
                kept[origin] = (seq, digest)
            self._db.execute(schema.NO_DELETE_TRIGGER)
            self._db.conn.executemany(
                "INSERT OR REPLACE INTO checkpoints (origin, seq, hash) VALUES (?, ?, ?)",
                [(o, s, h) for o, (s, h) in sorted(kept.items())],
            )
            statement = _checkpoint_payload(self._site_id, at, kept, base_digest)
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('checkpoint', ?)",
                [sign(statement).decode()],
            )
            self._record_own(then(removed, dict(kept)))
        self._note_heads()  # at once: the head file must not name what was just pruned
        return removed

    def _load_base(self, target: Database) -> None:
        """Copy the projections' base (what pruned events made of them) into ``target``."""
        for table, names, marks in self._base_columns():
            rows = self._db.conn.execute(f"SELECT {names} FROM base_{table}")  # streamed
            target.conn.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)

    def _store_base(self, source: Database) -> None:
        """Replace the projections' base with ``source``'s projections."""
        for table, names, marks in self._base_columns():
            self._db.execute(f"DELETE FROM base_{table}")
            rows = source.conn.execute(f"SELECT {names} FROM {table}")  # streamed
            self._db.conn.executemany(f"INSERT INTO base_{table} ({names}) VALUES ({marks})", rows)

    def _base_columns(self) -> Iterator[tuple[str, str, str]]:
        """(table, its base copy's column list, as many ? marks) for each projection table."""
        for table in schema.PROJECTION_TABLES:
            columns = [r[1] for r in self._db.execute(f"PRAGMA table_info(base_{table})")]
            yield table, ", ".join(columns), ", ".join("?" for _ in columns)

    def _check_checkpoint(self) -> None:
        """The checkpoints and the base must be what the site signed when it pruned."""
        kept = {o: (s, h) for o, s, h in self._db.execute("SELECT * FROM checkpoints")}
        row = self._db.execute("SELECT value FROM meta WHERE key = 'checkpoint'").fetchone()
        if not kept and row is None:
            return
        if row is None:
            raise LedgerCorrupt(path=self.path, detail="checkpoints without a signed statement")
        envelope = dsse.decode(row[0].encode(), payload_type=dsse.CHECKPOINT_TYPE)
        keys_ = {
            key_id: bytes.fromhex(public)
            for key_id, public in self._db.execute(
                "SELECT key_id, public_key FROM trust_keys WHERE site = ? AND role != 'peer'",
                [self._site_id],
            )
        }
        pae = dsse.pae(dsse.CHECKPOINT_TYPE, envelope.payload)
        if not any(
            s.key_id in keys_ and keys.verify(keys_[s.key_id], pae, s.sig)
            for s in envelope.signatures
        ):
            raise SignatureInvalid(detail="the checkpoint statement is not signed by this site")
        digest = projector.digest(self._db, prefix="base_")
        payload = json.loads(envelope.payload)
        expected = json.loads(_checkpoint_payload(self._site_id, payload.get("at", ""), kept,
                                                  digest))  # fmt: skip
        if payload != expected:
            raise LedgerCorrupt(
                path=self.path,
                detail="the checkpoints or the projections' base differ from the signed statement",
            )

    def bodies(self, origin: str, from_seq: int, to_seq: int) -> Iterator[bytes]:
        """The canonical bytes of ``origin``'s events from_seq..to_seq, streamed in seq order."""
        sql = "SELECT body FROM events WHERE origin = ? AND seq BETWEEN ? AND ? ORDER BY seq"
        with translated(self.path):
            cursor = self._db.conn.execute(sql, [origin, from_seq, to_seq])
            while rows := cursor.fetchmany(1000):
                for (body,) in rows:
                    yield bytes(body)

    def import_events(
        self,
        batches: Iterable[Sequence[Event]],
        then: Callable[[], Sequence[Draft]],
        *,
        dry_run: bool = False,
        restoring: bool = False,
        payloads_checked: bool = False,
    ) -> int:
        """Record other origins' sealed events and then the drafts ``then()`` gives (once the
        batches are consumed), all in one transaction. ``dry_run`` does all of it, every check
        and the projection included, and rolls back.

        ``batches`` may raise while it is consumed: then nothing at all is recorded. Each
        origin's first event must continue its head here (the chain is checked again).
        ``payloads_checked``: every event passed ``projection.check_payload`` already (a
        bundle's reader runs it), so the fold does not run it again.
        """
        count = 0
        with contextlib.suppress(_DryRun), self._transaction():
            heads = {
                o: (s, h) for o, s, h in self._db.execute("SELECT origin, seq, hash FROM heads")
            }
            for batch in batches:
                for event in batch:
                    seq, digest = heads.get(event.origin, (0, chain.START.hash))
                    own = event.origin == self._site_id and not restoring
                    if own or (event.seq, event.prev_hash) != (
                        seq + 1,
                        digest,
                    ):
                        detail = "an imported event does not continue this site's copy"
                        raise ChainBroken(origin=event.origin, seq=event.seq, detail=detail)
                    heads[event.origin] = (event.seq, event.hash)
                self._db.conn.executemany(_INSERT_EVENT, [_event_row(e) for e in batch])
                projector.project(self._db, batch, self._site_id, checked=payloads_checked)
                count += len(batch)
            if drafts := then():
                self._record_own(drafts)
            if dry_run:
                raise _DryRun
        if not dry_run:
            self._note_heads(time.monotonic())
        return count

    def tail(self, after: int | None, limit: int) -> list[tuple[int, Event]]:
        """(position, event) in the order this site recorded them (its own and imported ones):
        the last ``limit`` when ``after`` is None, else those after position ``after``."""
        if after is None:
            sql = "SELECT rowid, body, hash FROM events ORDER BY rowid DESC LIMIT ?"
            params: list[int] = [limit]
        else:
            sql = "SELECT rowid, body, hash FROM events WHERE rowid > ? ORDER BY rowid LIMIT ?"
            params = [after, limit]
        with translated(self.path):
            rows = self._db.execute(sql, params).fetchall()
        found = [(row[0], events.parse(row[1], row[2])) for row in rows]
        return sorted(found, key=lambda pair: pair[0])

    def own_event(self, idempotency_key: str) -> Event | None:
        """This site's event recorded under ``idempotency_key``, if any."""
        with translated(self.path):
            return self._recorded({idempotency_key}).get(idempotency_key)

    def events_of_type(self, event_type: str) -> list[Event]:
        sql = "SELECT body, hash FROM events WHERE type = ? ORDER BY hlc, origin, seq"
        with translated(self.path):
            return [events.parse(b, h) for b, h in self._db.execute(sql, [event_type])]

    def schedule_state(self) -> dict[str, str]:
        """schedule -> the last slot this site dealt with (run, backfilled or skipped)."""
        sql = "SELECT schedule, last_slot FROM schedule_state WHERE origin = ?"
        with translated(self.path):
            return dict(self._db.execute(sql, [self._site_id]).fetchall())

    def trust_key(self, key_id: str) -> KeyView | None:
        with translated(self.path):
            row = self._db.execute("SELECT * FROM trust_keys WHERE key_id = ?", [key_id]).fetchone()
        return None if row is None else KeyView._make(row)

    def trust_keys(self) -> list[KeyView]:
        with translated(self.path):
            rows = self._db.execute("SELECT * FROM trust_keys ORDER BY site, added_at, key_id")
            return [KeyView._make(row) for row in rows]

    def key_events_of_others(self) -> list[Event]:
        """Trust decisions other sites recorded (stored and shown, never applied here)."""
        sql = (
            "SELECT body, hash FROM events WHERE origin != ? AND type LIKE 'key.%' "
            "ORDER BY hlc, origin, seq"
        )
        with translated(self.path):
            return [events.parse(b, h) for b, h in self._db.execute(sql, [self._site_id])]

    def usage(self, since: str) -> list[tuple[str, str, str | None, int, int]]:
        """Per executing site, job type and source: (site, job type, source, runs leased at or
        after ``since``, runs going on). Each run is one row, however many bundles carried it."""
        sql = (
            "SELECT r.origin, j.job_type, j.source, sum(r.leased_at >= ?), "
            "sum(r.state IN ('leased', 'running')) FROM runs r JOIN jobs j USING (job_id) "
            "GROUP BY r.origin, j.job_type, j.source ORDER BY r.origin, j.job_type, j.source"
        )
        with translated(self.path):
            return [tuple(row) for row in self._db.execute(sql, [since])]

    def pending_requests(self) -> list[RequestView]:
        """Requests addressed to this site that it has not answered, oldest first."""
        columns = ", ".join(f"r.{c}" for c in RequestView._fields)
        sql = (
            f"SELECT {columns} FROM requests r LEFT JOIN request_answers a "
            "ON a.request_id = r.request_id AND a.origin = r.site WHERE r.site = ? "
            "AND a.request_id IS NULL ORDER BY r.requested_at, r.request_id"
        )
        with translated(self.path):
            return [RequestView._make(row) for row in self._db.execute(sql, [self._site_id])]

    def requests_with_prefix(
        self, prefix: str, limit: int
    ) -> list[tuple[RequestView, AnswerView | None]]:
        """Requests (any origin) whose id starts with ``prefix``, each with the answer of the
        site asked (None until this site holds it)."""
        found = []
        sql = f"SELECT {', '.join(RequestView._fields)} FROM requests WHERE request_id >= ? " \
            "AND request_id < ? ORDER BY request_id LIMIT ?"  # fmt: skip
        answer = f"SELECT {', '.join(AnswerView._fields)} FROM request_answers " \
            "WHERE request_id = ? AND origin = ?"  # fmt: skip
        with translated(self.path):
            for row in self._db.execute(sql, [prefix, prefix + "\x7f", limit]).fetchall():
                request = RequestView._make(row)
                got = self._db.execute(answer, [request.request_id, request.site]).fetchone()
                found.append((request, AnswerView._make(got) if got else None))
        return found

    def receipts(self) -> dict[str, ReceiptView]:
        """peer -> the newest receipt it recorded for a bundle of this site's."""
        with translated(self.path):
            rows = self._db.execute(f"SELECT {', '.join(ReceiptView._fields)} FROM receipts")
            return {row[0]: ReceiptView._make(row) for row in rows}

    def bundle_records(self) -> list[BundleView]:
        with translated(self.path):
            rows = self._db.execute("SELECT * FROM bundles ORDER BY at, bundle_id")
            return [BundleView._make(row) for row in rows]

    # --- verifying and rebuilding ---------------------------------------------------------

    def _stored(self, origin: str, after_seq: int = 0) -> Iterator[Stored]:
        cursor = self._db.conn.execute(
            f"SELECT origin, seq, hash, body, {', '.join(chain.INDEX_COLUMNS)} FROM events "
            "WHERE origin = ? AND seq > ? ORDER BY seq",
            [origin, after_seq],
        )
        for origin_, seq, digest, body, *rest in cursor:
            yield Stored(
                origin=origin_, seq=seq, body=body, hash=digest,
                columns=dict(zip(chain.INDEX_COLUMNS, rest, strict=True)),
            )  # fmt: skip

    def _origins(self) -> list[str]:
        sql = "SELECT DISTINCT origin FROM events UNION SELECT origin FROM checkpoints ORDER BY 1"
        return [row[0] for row in self._db.execute(sql)]

    def _start_of_tail(self, origin: str, length: int) -> Head:
        row = self._db.execute(
            "SELECT seq, hash FROM events WHERE origin = ? ORDER BY seq DESC LIMIT 1 OFFSET ?",
            [origin, length],
        ).fetchone()
        if row is not None:
            return Head(seq=row[0], hash=row[1])
        kept = self._db.execute(
            "SELECT seq, hash FROM checkpoints WHERE origin = ?", [origin]
        ).fetchone()
        return chain.START if kept is None else Head(seq=kept[0], hash=kept[1])

    def _check_own_chain(self) -> None:
        """The site's id (meta) must be the origin of a chain that opens with its creation."""
        row = self._db.execute(
            "SELECT type, body FROM events WHERE origin = ? AND seq = 1", [self._site_id]
        ).fetchone()
        pruned = self._db.execute(
            "SELECT 1 FROM checkpoints WHERE origin = ?", [self._site_id]
        ).fetchone()
        if pruned is None and (row is None or row[0] != "site.initialized"):
            raise LedgerCorrupt(
                path=self.path,
                detail=f"site id {self._site_id!r} has no chain opened by site.initialized",
            )

    def _verify_tails(self, check_heads: bool) -> None:
        """Re-verify the newest events of every chain and that the heads agree with them."""
        for origin in self._origins():
            start = self._start_of_tail(origin, TAIL_CHECK)
            head = chain.verify(origin, self._stored(origin, start.seq), start)
            if check_heads:
                self._check_head(origin, head)

    def _check_head(self, origin: str, head: Head) -> None:
        row = self._db.execute("SELECT seq, hash FROM heads WHERE origin = ?", [origin]).fetchone()
        if row is None or (row[0], row[1]) != (head.seq, head.hash):
            raise ProjectionMismatch(
                table="heads", detail=f"origin {origin!r} head {row!r}, events end at {head.seq}"
            )

    def verify(self) -> VerifyReport:
        with translated(self.path):
            self._db.execute("BEGIN")  # one read snapshot for the whole check
            try:
                verified = {}
                kept = self.checkpoints()
                for origin in self._origins():
                    start = (
                        Head(seq=kept[origin][0], hash=kept[origin][1])
                        if origin in kept
                        else chain.START
                    )
                    head = chain.verify(origin, self._stored(origin, start.seq), start)
                    self._check_head(origin, head)
                    verified[origin] = head.seq
                self._check_checkpoint()
                with contextlib.closing(_memory_projection()) as rebuilt:
                    self._load_base(rebuilt)
                    self._compare(self._rebuild_into(rebuilt))
                digest = projector.digest(self._db)
                count = self._db.execute("SELECT count(*) FROM events").fetchone()[0]
            finally:
                self._db.execute("ROLLBACK")
        return VerifyReport(origins=verified, events=count, projection_digest=digest)

    def _compare(self, rebuilt: Database) -> None:
        difference = projector.first_difference(self._db, rebuilt)
        if difference is not None:
            raise ProjectionMismatch(table=difference[0], detail=difference[1])

    def _rebuild_into(self, target: Database, chunk: int = 5000) -> Database:
        cursor = self._db.conn.execute("SELECT body, hash FROM events ORDER BY origin, seq")
        while batch := cursor.fetchmany(chunk):
            batch_events = [events.parse(body, digest) for body, digest in batch]
            projector.project(target, batch_events, self._site_id)
        return target

    def rebuild(self) -> str:
        with self._transaction():
            for table in schema.PROJECTION_TABLES:
                self._db.execute(f"DELETE FROM {table}")
            self._load_base(self._db)
            self._rebuild_into(self._db)
            return projector.digest(self._db)


def backup(source: Path, target: Path, clock: Clock, entropy: Entropy) -> VerifyReport:
    """Copy the ledger at ``source`` to ``target`` (which must not exist) while others go on
    writing it: SQLite's backup API in one step (one read snapshot, so writers are not held
    and the copy never restarts), then the copy verified whole, fsynced and linked into place."""
    check_file(source)
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with translated(target):
        if target.exists() or target.is_symlink():
            raise BadInput(detail=f"{target} exists; a backup never replaces a file")
        _remove_staging(staging)
        try:
            with (
                contextlib.closing(
                    sqlite3.connect(f"file:{quote(str(source))}?mode=ro", uri=True, timeout=30)
                ) as src,
                contextlib.closing(sqlite3.connect(staging)) as dst,
            ):
                src.backup(dst)
            copy = SqliteLedger.open(staging, clock, entropy)
            try:
                report = copy.verify()
            finally:
                copy.close()  # the last connection: the copy is one file again
            staging.chmod(0o640)
            _fsync(staging)
            try:
                target.hardlink_to(staging)
            except FileExistsError:
                raise BadInput(detail=f"{target} exists; a backup never replaces a file") from None
        finally:
            _remove_staging(staging)
        _fsync(target.parent)
    return report


def _checkpoint_payload(
    site: str, at: str, kept: Mapping[str, tuple[int, str]], base_digest: str
) -> bytes:
    return canonical.dump({
        "at": at, "base_digest": base_digest, "site": site,
        "checkpoints": {origin: [seq, digest] for origin, (seq, digest) in sorted(kept.items())},
    })  # fmt: skip


def put_in_place(staging: Path, target: Path) -> None:
    """Link the ledger built at ``staging`` to ``target`` (which must not exist) with its head
    file (a head file left at ``target`` names events this ledger may lack, so it goes), then
    drop ``staging`` and fsync the directory."""
    try:
        if heads_file(staging).exists():
            heads_file(staging).replace(heads_file(target))
        else:
            heads_file(target).unlink(missing_ok=True)
        os.link(staging, target)
        staging.unlink()
        files.fsync_dir(target.parent)
    except OSError as exc:
        raise StorageError(path=target, detail=exc.strerror or str(exc)) from exc


def heads_file(path: Path) -> Path:
    """Where the ledger at ``path`` records its heads outside the database."""
    return path.with_name(path.name + ".heads")


def _write_heads(target: Path, heads: dict[str, tuple[int, str]]) -> None:
    """Replace ``target`` with ``heads``: a hidden temporary file of this process, fsynced,
    renamed over it, the directory fsynced. Raises OSError."""
    body = {"format": 1, "heads": {origin: list(head) for origin, head in heads.items()}}
    data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temp.unlink(missing_ok=True)
    try:
        files.write_new(temp, data, 0o640)
        temp.replace(target)
    finally:
        temp.unlink(missing_ok=True)
    files.fsync_dir(target.parent)


def _read_heads(path: Path) -> dict[tuple[str, int], str]:
    """(origin, seq) -> hash from the head file; none when it does not exist."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise StorageError(path=path, detail=exc.strerror or str(exc)) from exc
    try:
        found = {}
        for origin, (seq, digest) in json.loads(data)["heads"].items():
            if type(seq) is not int or not isinstance(digest, str):
                raise TypeError(f"origin {origin!r}: seq {seq!r}, hash {digest!r}")
            found[(origin, seq)] = digest
        return found
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise LedgerBehind(
            path=path.with_name(path.name.removesuffix(".heads")),
            detail=f"its head file {path} cannot be read ({exc}); orchd writes it whole, "
            "so it was changed from outside",
        ) from None


def _check_database(db: Database, path: Path) -> None:
    app_id = db.execute("PRAGMA application_id").fetchone()[0]
    if app_id != schema.APPLICATION_ID:
        raise LedgerCorrupt(path=path, detail="a SQLite database, but not an orchd ledger")
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > schema.latest():
        raise SchemaTooNew(path=path, found=version, known=schema.latest())
    result = db.execute("PRAGMA quick_check").fetchone()[0]
    if result != "ok":
        raise LedgerCorrupt(path=path, detail=f"quick_check: {result}")


@contextlib.contextmanager
def _scratch_projection(near: Path) -> Iterator[Database]:
    """Empty projection tables in a scratch file beside ``near`` (removed afterwards): a prune
    folds a site's whole history of jobs through it, in flat memory (the page cache only)."""
    for stale in near.parent.glob(f".{near.name}.fold-*"):  # left by a prune that died; the
        stale.unlink(missing_ok=True)  # site lock says no other prune runs now
    path = near.with_name(f".{near.name}.fold-{os.getpid()}")
    db = Database(sqlite3.connect(path, isolation_level=None))
    try:
        db.execute("PRAGMA journal_mode = OFF")  # a scratch: nothing in it must survive
        db.execute("PRAGMA synchronous = OFF")
        db.execute("PRAGMA cache_size = -16384")
        schema.migrate(db.conn, schema.MIGRATIONS)
        yield db
    finally:
        db.close()
        _remove_staging(path)


def _memory_projection() -> Database:
    db = Database(sqlite3.connect(":memory:", isolation_level=None))
    schema.migrate(db.conn, schema.MIGRATIONS)  # the same tables as the ledger's
    return db


def _of_origin(joined: str, origin: str | None) -> tuple[str, list[str]]:
    """A condition on a projection row's origin (``joined`` by WHERE or AND) and its parameter;
    nothing for None (every origin)."""
    return ("", []) if origin is None else (f"{joined} origin = ?", [origin])


def _event_row(event: Event) -> tuple[object, ...]:
    return (event.origin, event.seq, *chain.index_values(event), event.hash, event.body)


def _link(source: Path, target: Path) -> None:
    """Put ``source`` at ``target`` atomically, failing if ``target`` exists (no overwrite)."""
    try:
        target.hardlink_to(source)
    except FileExistsError:
        raise SiteExists(path=target.parent) from None


def _remove_unused(created: list[Path]) -> None:
    """Leave a refused ledger's directory as it was: drop the WAL files a failed open created.

    They did not exist before the open, and nothing is removed once the ``-wal`` holds data.
    """
    if any(p.name.endswith("-wal") and p.exists() and p.stat().st_size > 0 for p in created):
        return
    for sidecar in created:
        sidecar.unlink(missing_ok=True)


def _remove_staging(staging: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        staging.with_name(staging.name + suffix).unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
