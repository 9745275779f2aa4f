"""Retention (adapters layer): pruning the oldest events of each origin into the projections'
base, keeping each origin's last pruned (seq, hash) as its checkpoint and a statement of both
signed by this site; the base copied in and out for rebuilding and verifying.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from sqlite_utils import Database

from orchd.core import canonical, events
from orchd.core.events import Draft
from orchd.errors import ChainBroken

from . import placement, projector, schema
from .base import LedgerBase, translated

Checkpoints = dict[str, tuple[int, str]]


class Retention(LedgerBase):
    """The ``Retention`` port: which events may go, and pruning them."""

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
        then: Callable[[int, Checkpoints], Sequence[Draft]],
    ) -> int:
        """In one transaction: fold each origin's events up to ``upto[origin]`` into the
        projections' base, delete them, keep the last one's (seq, hash) as the origin's
        checkpoint, sign the checkpoints and the base's digest (``sign``: payload -> DSSE
        envelope), and record ``then(removed, checkpoints)``. The number of events removed."""
        removed = 0
        with self._transaction():
            kept = {o: (s, h) for o, s, h in self._db.execute("SELECT * FROM checkpoints")}
            moved = self._ranges(upto, kept)
            if not moved:
                return 0
            base_digest = self._fold_into_base(moved)
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
            statement = checkpoint_payload(self._site_id, at, kept, base_digest)
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('checkpoint', ?)",
                [sign(statement).decode()],
            )
            self._record_own(then(removed, dict(kept)))
        self._note_heads()  # at once: the head file must not name what was just pruned
        return removed

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

    def _fold_into_base(self, moved: Mapping[str, tuple[int, int, str]]) -> str:
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
    db = Database(sqlite3.connect(path, isolation_level=None))
    try:
        db.execute("PRAGMA journal_mode = OFF")  # a scratch: nothing in it must survive
        db.execute("PRAGMA synchronous = OFF")
        db.execute("PRAGMA cache_size = -16384")
        schema.migrate(db.conn, schema.MIGRATIONS)
        yield db
    finally:
        db.close()
        placement.remove_staging(path)
