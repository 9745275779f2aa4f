"""The SQLite ledger: the event log of one site and its projections (adapters layer).

WAL journal, ``synchronous=FULL``, one ``BEGIN IMMEDIATE`` transaction per append. Opening checks
the file before SQLite writes to it and re-verifies the newest events of every chain, in time that
does not grow with the ledger (the whole-file ``PRAGMA quick_check`` is ``check_whole_file``, run
by verify, doctor and the daemon's background); anything wrong is refused, never repaired.

``SqliteLedger`` is composed here from its parts, each a module of this package: the base
(connection, transaction, chain positions), ``queries`` (jobs and runs), ``trust_queries``,
``integrity`` (open checks, verify, rebuild) and ``retention`` (prune, checkpoints); this module
adds opening and creating, appending and importing, and reading the event log itself.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from orchd import crash
from orchd.core import chain, events, timefmt
from orchd.core.checkpoints import Base
from orchd.core.events import Draft, Event
from orchd.core.ports import Clock, Entropy, Sign
from orchd.core.rotations import Rotation
from orchd.core.statements import HeadStatement
from orchd.errors import ChainBroken, InternalError

from . import placement, projector, schema
from .base import EVENT_COLUMNS as _EVENT_COLUMNS
from .base import INSERT_EVENT as _INSERT_EVENT
from .base import check_database, connect, event_row, translated
from .integrity import TAIL_CHECK, Integrity
from .placement import check_file, heads_file, put_in_place
from .queries import JobQueries
from .reads import EventReads
from .retention import Retention
from .statements import StatementStore
from .trust_queries import TrustQueries

__all__ = [
    "TAIL_CHECK",
    "_EVENT_COLUMNS",
    "_INSERT_EVENT",
    "SqliteLedger",
    "check_file",
    "heads_file",
    "put_in_place",
    "translated",
]


class _DryRun(Exception):
    """Roll back a transaction that did everything (internal signal)."""


class _KeyRecorded(Exception):
    """An idempotency key of the batch is already in the ledger (internal signal)."""


class SqliteLedger(JobQueries, TrustQueries, Integrity, Retention, StatementStore, EventReads):
    """The ``Ledger`` port over one SQLite file."""

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
        new_sidecars = [p for p in placement.sidecars(path) if not p.exists()]
        with translated(path):
            try:
                db = connect(path, "rw")
            except BaseException:
                placement.remove_unused(new_sidecars)
                raise
            try:
                check_database(db, path)
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = FULL")
                schema.migrate(db.conn, schema.MIGRATIONS)
                ledger = cls(db, path, clock, entropy, keep_heads=True)
                recorded = ledger._recorded_heads()  # before the snapshot begins
                db.execute("BEGIN")  # one read snapshot: a writer may be appending meanwhile
                try:
                    ledger._check_own_chain()
                    ledger._verify_tails(check_heads)
                    ledger._check_head_file(recorded)
                finally:
                    db.execute("ROLLBACK")
            except BaseException:
                db.close()
                placement.remove_unused(new_sidecars)
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
        own: Iterable[Sequence[Event] | Base],
        *,
        payloads_checked: bool = False,
        sign: Sign | None = None,
    ) -> SqliteLedger:
        """Create a ledger at ``path`` (which must not exist) from this site's own events, as a
        lost site's last export (or a peer's copy) holds them: chained from ``site.initialized``,
        or from the site's own checkpoint with its base rows (signed again with ``sign``), built
        under a temporary name and linked into place like ``create``. ``payloads_checked`` as for
        ``import_events``."""

        def fill(ledger: SqliteLedger) -> None:
            done = ledger.import_events(
                own, lambda: [], restoring=True, payloads_checked=payloads_checked, sign=sign
            )
            if not done:
                raise ChainBroken(origin=site_id, seq=1, detail="no events to restore")
            if site_id in ledger.checkpoints():
                return  # its chain goes on from its checkpoint
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
        staging = placement.staging_for(path)
        with translated(path):
            placement.remove_staging(staging)
            db = connect(staging, "rwc")
            try:
                db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # first, before the header is
                db.execute(f"PRAGMA application_id = {schema.APPLICATION_ID:d}")  # written: a
                db.execute("PRAGMA journal_mode = WAL")  # prune's pages go back to the disk
                db.execute("PRAGMA synchronous = FULL")
                schema.migrate(db.conn, schema.MIGRATIONS)
                db.execute("INSERT INTO meta (key, value) VALUES ('site_id', ?)", [site_id])
                fill(cls(db, staging, clock, entropy))
            finally:
                db.close()
            staging.chmod(0o640)
            placement.fsync_file(staging)
            try:
                placement.link_new(staging, path)
            finally:
                placement.remove_staging(staging)
            placement.fsync_file(path.parent)
            heads_file(path).unlink(missing_ok=True)  # a lost ledger's, if any: not this one's
        ledger = cls.open(path, clock, entropy)
        ledger._note_heads()
        return ledger

    # --- writing --------------------------------------------------------------------------

    def append(
        self, drafts: Sequence[Draft], *, statements: Sequence[HeadStatement] = ()
    ) -> list[Event]:
        """``statements``: head statements for the statement store, in the same transaction."""
        try:
            return self._append(drafts, recorded={}, statements=statements)
        except _KeyRecorded:  # rare: look the keys up, then append only what is new
            keys = {draft.idempotency_key for draft in drafts}
            with translated(self.path):
                recorded = self._recorded(keys)
            return self._append(drafts, recorded, statements)

    def _append(
        self,
        drafts: Sequence[Draft],
        recorded: dict[str, Event],
        statements: Sequence[HeadStatement] = (),
    ) -> list[Event]:
        """One transaction: seal what ``recorded`` lacks, insert, project, commit."""
        todo: dict[str, Draft] = {}
        for draft in drafts:
            if draft.idempotency_key not in recorded:
                todo.setdefault(draft.idempotency_key, draft)  # a key twice: recorded once
        with self._transaction():
            try:
                fresh = self._record_own(list(todo.values()))
                self._keep_heads(statements)
            except sqlite3.IntegrityError as exc:
                if "idempotency_key" in str(exc):
                    raise _KeyRecorded from None
                raise
        self._note_heads(time.monotonic())
        if len(fresh) == len(drafts):  # the common case: every draft was new, in this order
            return fresh
        by_key = {**recorded, **{event.idempotency_key: event for event in fresh}}
        return [by_key[draft.idempotency_key] for draft in drafts]

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

    def import_events(
        self,
        batches: Iterable[Sequence[Event] | Base],
        then: Callable[[], Sequence[Draft]],
        *,
        dry_run: bool = False,
        restoring: bool = False,
        payloads_checked: bool = False,
        statements: Sequence[HeadStatement] = (),
        sign: Sign | None = None,
        rotations: Sequence[Rotation] = (),
    ) -> int:
        """Record other origins' sealed events and then the drafts ``then()`` gives (once the
        batches are consumed), and keep ``statements``, all in one transaction. ``dry_run``
        does all of it, every check and the projection included, and rolls back.

        An origin's base rows among the batches (``Base``, before its events) are kept in the
        statement store and, when the site joins the origin from them, loaded; the site's
        checkpoints are then signed again with ``sign`` (required for a join, but in a dry run).
        ``rotations``: origins' rotation statements the import followed, kept too.

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
            joined = False
            for batch in _coalesced(batches, _IMPORT_BATCH):
                if isinstance(batch, Base):
                    self._take_base(batch, restoring)
                    if batch.join:
                        joined = True
                        statement = batch.statement
                        heads[statement.origin] = (statement.seq, statement.hash)
                    continue
                self._check_continues(batch, heads, restoring)
                self._db.conn.executemany(_INSERT_EVENT, [event_row(e) for e in batch])
                projector.project(self._db, batch, self._site_id, checked=payloads_checked)
                count += len(batch)
            if drafts := then():
                self._record_own(drafts)
            self._keep_heads(statements)
            self._keep_rotations(rotations)
            if dry_run:
                raise _DryRun
            if joined:
                if sign is None:
                    raise InternalError(detail="a join from a checkpoint needs the site's key")
                self._resign(sign, timefmt.format_ms(self._clock.now_ms()))
            crash.point("import.applied")
        if not dry_run:
            self._note_heads(time.monotonic())
        return count

    def _check_continues(
        self, batch: Sequence[Event], heads: dict[str, tuple[int, str]], restoring: bool
    ) -> None:
        """Each event must continue its origin's copy here (``heads``, moved on as it goes);
        none may be this site's own, but when it is restored."""
        for event in batch:
            seq, digest = heads.get(event.origin, (0, chain.START.hash))
            own = event.origin == self._site_id and not restoring
            if own or (event.seq, event.prev_hash) != (seq + 1, digest):
                detail = "an imported event does not continue this site's copy"
                raise ChainBroken(origin=event.origin, seq=event.seq, detail=detail)
            heads[event.origin] = (event.seq, event.hash)

    # --- reading the event log ------------------------------------------------------------

    def own_event(self, idempotency_key: str) -> Event | None:
        """This site's event recorded under ``idempotency_key``, if any."""
        with translated(self.path):
            return self._recorded({idempotency_key}).get(idempotency_key)


_IMPORT_BATCH = 2000  # events written and folded at a time by an import, whatever its ranges


def _coalesced(
    batches: Iterable[Sequence[Event] | Base], size: int
) -> Iterator[Sequence[Event] | Base]:
    """``batches`` in order, consecutive event batches joined up to ``size`` events: a bundle
    of 1,000 small ranges is written and folded in a few large statements, not in 1,000 of
    each (a ``Base`` passes alone, after the events before it)."""
    pending: list[Event] = []
    for batch in batches:
        if isinstance(batch, Base):
            if pending:
                yield pending
                pending = []
            yield batch
            continue
        pending.extend(batch)
        if len(pending) >= size:
            yield pending
            pending = []
    if pending:
        yield pending
