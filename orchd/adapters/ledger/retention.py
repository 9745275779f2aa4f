"""Retention (adapters layer): pruning the oldest events of each origin into the projections'
base, keeping each origin's last pruned (seq, hash) as its checkpoint and a statement of both
signed by this site; when the site prunes its own chain, its origin checkpoint (bundle format 2)
with its base rows, in its statement store; the base copied in and out for rebuilding and
verifying, and an origin's base rows loaded into it.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from sqlite_utils import Database

from orchd import crash
from orchd.core import canonical, checkpoints, dsse, events
from orchd.core.events import Draft
from orchd.core.ports import Sign
from orchd.core.progress import EVERY, Meter, OnProgress, quiet
from orchd.errors import ChainBroken, MemberMismatch

from . import counters, placement, projector, schema
from .base import STREAM_CACHE_KIB, translated
from .statements import StatementStore, compress_stream

Checkpoints = dict[str, tuple[int, str]]


class Retention(StatementStore):
    """The ``Retention`` port: which events may go, and pruning them."""

    def first_newer(self, origin: str, at: str) -> int | None:
        """The first seq of ``origin`` that occurred at or after ``at``: a walk up its chain
        (an origin's clock may step back, so no seek finds it) through a long read's cache."""
        sql = "SELECT min(seq) FROM events WHERE origin = ? AND occurred_at >= ?"
        with translated(self.path), self.cache_limited():
            row = self._db.execute(sql, [origin, at]).fetchone()
        return None if row[0] is None else int(row[0])

    def prune(
        self,
        upto: Mapping[str, int],
        sign: Sign,
        at: str,
        then: Callable[[int, Checkpoints], Sequence[Draft]],
        progress: OnProgress = quiet,
    ) -> int:
        """In one transaction: fold each origin's events up to ``upto[origin]`` into the
        projections' base, delete them, keep the last one's (seq, hash) as the origin's
        checkpoint, sign the checkpoints and the base's digest (``sign``), and record
        ``then(removed, checkpoints)``; when this site's own chain is pruned, also make and keep
        its origin checkpoint with its base rows. The number of events removed. ``progress``: the
        events folded, then those deleted (in steps of ``progress.EVERY``)."""
        removed = 0
        # every event pruned is read and deleted once: a long read's cache, not the ledger's
        with self._transaction(), self.cache_limited():
            kept = {o: (s, h) for o, s, h in self._db.execute("SELECT * FROM checkpoints")}
            moved = self._ranges(upto, kept)
            if not moved:
                return 0
            total = sum(seq - floor for floor, seq, _ in moved.values())
            meter = Meter("ledger prune", "fold", total, progress)
            base_digest = self._fold_into_base(moved, meter)
            if self._site_id in moved:
                self._own_checkpoint(moved[self._site_id], sign)
            meter.end()
            crash.point("prune.folded")
            meter = meter.then("delete", total)
            self._db.execute("DROP TRIGGER events_no_delete")
            for origin, (floor, seq, digest) in moved.items():
                removed += self._delete(origin, floor, seq, meter)
                kept[origin] = (seq, digest)
            self._db.execute(schema.NO_DELETE_TRIGGER)
            meter.end()
            self._sign_checkpoints(kept, sign, at, base_digest)
            self._record_own(then(removed, dict(kept)))
        self._note_heads()  # at once: the head file must not name what was just pruned
        self.give_back()
        return removed

    def _delete(self, origin: str, floor: int, seq: int, meter: Meter) -> int:
        """Delete ``origin``'s events after ``floor`` up to ``seq``, ``EVERY`` at a time (each
        step a point where ``meter``'s callback may stop the prune); how many went."""
        removed = 0
        for low in range(floor, seq, EVERY):
            high = min(low + EVERY, seq)
            removed += self._db.execute(
                "DELETE FROM events WHERE origin = ? AND seq > ? AND seq <= ?", [origin, low, high]
            ).rowcount
            meter.add(high - low)
        return removed

    def _sign_checkpoints(self, kept: Checkpoints, sign: Sign, at: str, base_digest: str) -> None:
        """Write the checkpoints and this site's signed statement of them and of the base's
        digest (in the caller's transaction)."""
        self._db.conn.executemany(
            "INSERT OR REPLACE INTO checkpoints (origin, seq, hash) VALUES (?, ?, ?)",
            [(o, s, h) for o, (s, h) in sorted(kept.items())],
        )
        statement = checkpoint_payload(self._site_id, at, kept, base_digest)
        self._db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('checkpoint', ?)",
            [sign(dsse.CHECKPOINT_TYPE, statement).decode()],
        )

    def _own_checkpoint(self, moved: tuple[int, int, str], sign: Sign) -> None:
        """This site's origin checkpoint at the last seq pruned, with its base rows: its
        previous base rows (none at the first prune) and its own events after them, folded
        alone with this site as the local one (FORMAT.md 3.4). A site that pruned its chain
        before it kept base rows makes none (a joiner is then refused at export)."""
        floor, seq, digest = moved
        prior = self.base_lines(self._site_id)
        if floor and (prior is None or prior[0].seq != floor):
            return
        with (
            scratch_projection(self.path) as scratch,
            tempfile.TemporaryFile(dir=self.path.parent) as frame,
        ):
            if prior is not None:
                reader = checkpoints.BaseReader(member="", checkpoint=prior[0])
                rows = (reader.read(line) for line in prior[1])
                while chunk := list(itertools.islice(rows, 5000)):
                    load_rows(scratch, chunk, whole=True)
                reader.finish()
            cursor = self._db.conn.execute(
                "SELECT body, hash FROM events WHERE origin = ? AND seq > ? AND seq <= ? "
                "ORDER BY seq",
                [self._site_id, floor, seq],
            )
            while batch := cursor.fetchmany(5000):
                parsed = [events.parse(body, digest_) for body, digest_ in batch]
                projector.project(scratch, parsed, self._site_id)
            # twice through the rows, never all of them in memory: their digest and size, then
            # the frame (with its size, as compressing them whole would write)
            rows_digest, records, raw_size = _measured(checkpoints.lines(base_tables(scratch)))
            compress_stream(checkpoints.lines(base_tables(scratch)), raw_size, frame)
            body = checkpoints.payload(self._site_id, seq, digest, rows_digest)
            statement = checkpoints.parse(sign(checkpoints.CHECKPOINT_TYPE, body))
            self._keep_frame_file(statement, frame, raw_size, records)

    def _take_base(self, base: checkpoints.Base, restoring: bool) -> None:
        """An origin's checkpoint read from a bundle (in the import's transaction): kept in the
        statement store; when the site joins the origin from it, its rows loaded into the
        projections and their base (trust and bundle records too when a site is restored from
        its own), and the origin's checkpoint set."""
        statement = base.statement
        if base.join:
            whole = restoring and statement.origin == self._site_id
            load_rows(self._db, base.rows, whole=whole)
            load_rows(self._db, base.rows, whole=whole, prefix="base_")
            counters.recount(self._db)
            self._db.execute(
                "INSERT OR REPLACE INTO checkpoints (origin, seq, hash) VALUES (?, ?, ?)",
                [statement.origin, statement.seq, statement.hash],
            )
        self._keep_checkpoint(statement, base.lines)

    def _resign(self, sign: Sign, at: str) -> None:
        """Sign the checkpoints and the base again after an origin was joined from its
        checkpoint (in the caller's transaction)."""
        kept = {o: (s, h) for o, s, h in self._db.execute("SELECT * FROM checkpoints")}
        self._sign_checkpoints(kept, sign, at, projector.digest(self._db, prefix="base_"))

    def _ranges(
        self, upto: Mapping[str, int], kept: Checkpoints
    ) -> dict[str, tuple[int, int, str]]:
        """origin -> (its checkpoint's seq, the last seq to prune, that event's hash), for
        each origin ``upto`` moves on."""
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
        return moved

    def _fold_into_base(self, moved: Mapping[str, tuple[int, int, str]], meter: Meter) -> str:
        """Fold the events in ``moved``'s ranges into the projections' base; its new digest."""
        with scratch_projection(self.path) as base:
            load_base(self._db, base)
            for origin, (floor, seq, _digest) in moved.items():
                cursor = self._db.conn.execute(
                    "SELECT body, hash FROM events WHERE origin = ? AND seq > ? AND seq <= ? "
                    "ORDER BY seq",
                    [origin, floor, seq],
                )
                while batch := cursor.fetchmany(5000):
                    parsed = [events.parse(body, digest) for body, digest in batch]
                    projector.project(base, parsed, self._site_id)
                    meter.add(len(batch))
            store_base(self._db, base)
            return projector.digest(base)


def checkpoint_payload(
    site: str, at: str, kept: Mapping[str, tuple[int, str]], base_digest: str
) -> bytes:
    """The statement a prune signs: the checkpoints and the digest of the projections' base."""
    return canonical.dump(
        {
            "at": at,
            "base_digest": base_digest,
            "site": site,
            "checkpoints": {
                origin: [seq, digest] for origin, (seq, digest) in sorted(kept.items())
            },
        }
    )


def base_tables(db: Database) -> Iterator[tuple[str, Iterator[tuple[object, ...]]]]:
    """Each table base rows carry (FORMAT.md 3.4), its rows in key order (streamed)."""
    for name, spec in checkpoints.TABLES.items():
        columns, key = ", ".join(spec.columns), ", ".join(spec.key)
        yield name, db.execute(f"SELECT {columns} FROM {name} ORDER BY {key}")


def load_rows(
    db: Database, rows: Sequence[tuple[str, dict[str, object]]], *, whole: bool, prefix: str = ""
) -> None:
    """Insert an origin's base rows into the projection tables (``prefix``: their base copies),
    quota overrides as the fold takes them (the higher (hlc, origin) wins); a table a site keeps
    for itself (trust, bundle records) only when ``whole``. A row that collides with one held
    here refuses the whole import."""
    for table, row in rows:
        spec = checkpoints.TABLES[table]
        if spec.local and not whole:
            continue
        names = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        sql = f"INSERT INTO {prefix}{table} ({names}) VALUES ({marks})"
        if table == "quota_overrides":
            columns = ", ".join(spec.columns)
            sql = (
                f"INSERT INTO {prefix}{table} ({columns}) VALUES "
                f"({', '.join('?' for _ in spec.columns)}) ON CONFLICT (kind, name, site) DO "
                "UPDATE SET "
                + ", ".join(f"{c} = excluded.{c}" for c in spec.columns if c not in spec.key)
                + f" WHERE (excluded.hlc, excluded.origin) > ({prefix}{table}.hlc, "
                f"{prefix}{table}.origin)"
            )
            values = [row.get(c) for c in spec.columns]
        else:
            values = list(row.values())
        try:
            db.execute(sql, values)
        except sqlite3.IntegrityError:
            raise MemberMismatch(
                member=f"base/{row.get('origin', '?')}.ndjson.zst",
                detail=f"a row of {table} collides with one this site holds",
            ) from None


def load_base(db: Database, target: Database) -> None:
    """Copy ``db``'s projections' base (what pruned events made of them) into ``target``."""
    for table, names, marks in _base_columns(db):
        rows = db.conn.execute(f"SELECT {names} FROM base_{table}")  # streamed
        target.conn.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)


def store_base(db: Database, source: Database) -> None:
    """Replace ``db``'s projections' base with ``source``'s projections."""
    for table, names, marks in _base_columns(db):
        db.execute(f"DELETE FROM base_{table}")
        rows = source.conn.execute(f"SELECT {names} FROM {table}")  # streamed
        db.conn.executemany(f"INSERT INTO base_{table} ({names}) VALUES ({marks})", rows)


def _base_columns(db: Database) -> Iterator[tuple[str, str, str]]:
    """(table, its base copy's column list, as many ? marks) for each projection table."""
    for table in schema.PROJECTION_TABLES:
        columns = [r[1] for r in db.execute(f"PRAGMA table_info(base_{table})")]
        yield table, ", ".join(columns), ", ".join("?" for _ in columns)


@contextlib.contextmanager
def scratch_projection(near: Path) -> Iterator[Database]:
    """Empty projection tables in a scratch file beside ``near`` (removed afterwards): a prune
    folds a site's whole history of jobs through it, in flat memory (the page cache only)."""
    placement.remove_stale_scratches(near)  # left by a prune that died
    path = placement.scratch_beside(near)
    db = Database(sqlite3.connect(path, isolation_level=None), execute_plugins=False)
    try:
        db.execute("PRAGMA journal_mode = OFF")  # a scratch: nothing in it must survive
        db.execute("PRAGMA synchronous = OFF")
        db.execute(f"PRAGMA cache_size = -{STREAM_CACHE_KIB}")
        schema.migrate(db.conn, schema.MIGRATIONS)
        yield db
    finally:
        db.close()
        placement.remove_staging(path)


def _measured(lines: Iterable[bytes]) -> tuple[str, int, int]:
    """The base rows' digest (sha256 of the lines, each followed by a newline), their number and
    their size, read once."""
    hasher, records, size = hashlib.sha256(), 0, 0
    for line in lines:
        hasher.update(line)
        hasher.update(b"\n")
        records, size = records + 1, size + len(line) + 1
    return hasher.hexdigest(), records, size
