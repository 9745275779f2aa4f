"""The ledger's integrity (adapters layer): the checks at every open (this site's chain, the
tail of every chain, the head file), ``verify`` (every chain, the signed checkpoints, the
projections against a rebuild) and ``rebuild`` (the projections re-derived from the events).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator

import zstandard
from sqlite_utils import Database

from orchd.core import chain, checkpoints, dsse, events
from orchd.core.chain import Head, Stored
from orchd.core.ports import VerifyReport
from orchd.core.progress import Meter, OnProgress, quiet
from orchd.core.trust import KeyView
from orchd.errors import (
    LedgerBehind,
    LedgerCorrupt,
    OrchdError,
    ProjectionMismatch,
    SignatureInvalid,
)

from . import counters, placement, projector, schema
from .base import STREAM_CACHE_KIB, check_whole_file, translated
from .retention import checkpoint_payload, load_base
from .statements import StatementStore

TAIL_CHECK = 64  # newest events of this site's own chain re-verified at every open
TAIL_BUDGET = 1024  # newest events of the other chains together: each its share, one at least
# a verify holds the page cache of a long read (``STREAM_CACHE_KIB``) for the ledger and for its
# scratch projection alike; it reads every page once, so more cache buys little, and SQLite
# sizes a sort's memory (the counters' GROUP BY) by it too, which would otherwise grow with the
# ledger up to the cache


class Integrity(StatementStore):
    """The ``Integrity`` port, and the checks ``open`` runs."""

    # the daemon's long lane sets it: its verify and its exports' reading run in a child process
    # (``adapters/beside.py``), so that Python work never holds the interpreter lock the
    # daemon's loop needs
    work_in_child = False

    def verify(self, progress: OnProgress = quiet) -> VerifyReport:
        if self.work_in_child:
            from .. import beside  # only the daemon's lane needs it

            return beside.verify(self.path, progress)
        check_whole_file(self.path)
        with translated(self.path), self.cache_limited():
            self._db.execute("BEGIN")  # one read snapshot for the whole check
            try:
                verified = {}
                kept = self.checkpoints()
                held = self._held()
                meter = Meter("ledger verify", "chains", held, progress)
                for origin in self._origins():
                    start = (
                        Head(seq=kept[origin][0], hash=kept[origin][1])
                        if origin in kept
                        else chain.START
                    )
                    head = chain.verify(origin, self._stored(origin, start.seq, meter), start)
                    self._check_head(origin, head)
                    verified[origin] = head.seq
                meter.end()
                self._check_checkpoint()
                self._check_origin_checkpoints(kept)
                meter = meter.then("projections", held)
                with contextlib.closing(_scratch_projection()) as rebuilt:
                    load_base(self._db, rebuilt)
                    self._compare(self._rebuild_into(rebuilt, meter))
                meter.end()
                self._check_counters()
                digest = projector.digest(self._db)
                count = self._db.execute("SELECT count(*) FROM events").fetchone()[0]
            finally:
                self._db.execute("ROLLBACK")
        self.settle()  # the read is over: what the WAL gathered meanwhile can go
        return VerifyReport(origins=verified, events=count, projection_digest=digest)

    def rebuild(self, progress: OnProgress = quiet) -> str:
        with self._transaction():
            meter = Meter("ledger rebuild", "projections", self._held(), progress)
            for table in schema.PROJECTION_TABLES:
                self._db.execute(f"DELETE FROM {table}")
            load_base(self._db, self._db)
            self._rebuild_into(self._db, meter)
            counters.recount(self._db)
            meter.end()
            return projector.digest(self._db)

    def _held(self) -> int:
        """How many events the ledger holds, from each origin's head and checkpoint (no scan)."""
        sql = (
            "SELECT coalesce(sum(h.seq - coalesce(c.seq, 0)), 0) FROM heads h "
            "LEFT JOIN checkpoints c ON c.origin = h.origin"
        )
        return int(self._db.execute(sql).fetchone()[0])

    def _check_counters(self) -> None:
        """The counters must hold what counting the jobs and runs from scratch gives."""
        for table, sql in counters.COUNTED:
            select = sql[sql.index("SELECT") :]
            kept = sorted(self._db.execute(f"SELECT * FROM {table}").fetchall())
            counted = sorted(tuple(row) for row in self._db.execute(select))
            if kept != counted:
                raise ProjectionMismatch(
                    table=table, detail="the counters differ from a count of the rows held"
                )

    def _compare(self, rebuilt: Database) -> None:
        difference = projector.first_difference(self._db, rebuilt)
        if difference is not None:
            raise ProjectionMismatch(table=difference[0], detail=difference[1])

    def _rebuild_into(self, target: Database, meter: Meter, chunk: int = 5000) -> Database:
        cursor = self._db.conn.execute("SELECT body, hash FROM events ORDER BY origin, seq")
        while batch := cursor.fetchmany(chunk):
            batch_events = [events.parse(body, digest) for body, digest in batch]
            projector.project(target, batch_events, self._site_id)
            meter.add(len(batch))
        return target

    def _stored(
        self, origin: str, after_seq: int = 0, meter: Meter | None = None
    ) -> Iterator[Stored]:
        cursor = self._db.conn.execute(
            f"SELECT origin, seq, hash, body, {', '.join(chain.INDEX_COLUMNS)} FROM events "
            "WHERE origin = ? AND seq > ? ORDER BY seq",
            [origin, after_seq],
        )
        passed = 0
        for origin_, seq, digest, body, *rest in cursor:
            passed += 1
            if passed == 1000 and meter is not None:
                meter.add(passed)
                passed = 0
            yield Stored(
                origin=origin_,
                seq=seq,
                body=body,
                hash=digest,
                columns=dict(zip(chain.INDEX_COLUMNS, rest, strict=True)),
            )
        if meter is not None:
            meter.add(passed)

    def _origins(self) -> list[str]:
        """Every origin with events or a checkpoint here, found by a skip-scan of the events'
        (origin, seq) index: one seek per origin, not a read of every event."""
        sql = (
            "WITH RECURSIVE o(origin) AS (SELECT min(origin) FROM events UNION ALL "
            "SELECT (SELECT min(origin) FROM events WHERE origin > o.origin) FROM o "
            "WHERE o.origin IS NOT NULL) "
            "SELECT origin FROM o WHERE origin IS NOT NULL UNION SELECT origin FROM checkpoints "
            "ORDER BY 1"
        )
        return [row[0] for row in self._db.execute(sql)]

    def _check_head(self, origin: str, head: Head) -> None:
        row = self._db.execute("SELECT seq, hash FROM heads WHERE origin = ?", [origin]).fetchone()
        if row is None or (row[0], row[1]) != (head.seq, head.hash):
            raise ProjectionMismatch(
                table="heads", detail=f"origin {origin!r} head {row!r}, events end at {head.seq}"
            )

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
            s.key_id in keys_ and _verify(keys_[s.key_id], pae, s.sig) for s in envelope.signatures
        ):
            raise SignatureInvalid(detail="the checkpoint statement is not signed by this site")
        digest = projector.digest(self._db, prefix="base_")
        payload = json.loads(envelope.payload)
        expected = json.loads(
            checkpoint_payload(self._site_id, payload.get("at", ""), kept, digest)
        )
        if payload != expected:
            raise LedgerCorrupt(
                path=self.path,
                detail="the checkpoints or the projections' base differ from the signed statement",
            )

    def _check_origin_checkpoints(self, kept: dict[str, tuple[int, str]]) -> None:
        """Each origin checkpoint in the statement store must hold the base rows it signed
        (their sha256, every line as FORMAT.md 3.4 reads it), and agree with the chain's
        checkpoint where both are at one seq; this site's own must be signed by its key."""
        for origin, statement in self.checkpoint_statements().items():
            stored = self.base_lines(origin)
            if stored is None:
                raise LedgerCorrupt(path=self.path, detail=f"{origin}'s checkpoint has no rows")
            reader = checkpoints.BaseReader(member=f"base/{origin}", checkpoint=statement)
            try:
                for line in stored[1]:
                    reader.read(line)
                reader.finish()
            except (OrchdError, zstandard.ZstdError) as exc:
                raise LedgerCorrupt(
                    path=self.path,
                    detail=f"the base rows kept with {origin}'s checkpoint differ from what it "
                    f"signed ({exc})",
                ) from None
            at = kept.get(origin)
            if at is not None and at[0] == statement.seq and at[1] != statement.hash:
                raise LedgerCorrupt(
                    path=self.path,
                    detail=f"{origin}'s checkpoint at seq {statement.seq} has another hash than "
                    "the chain's",
                )
            if origin == self._site_id and not checkpoints.verifies(
                statement, self._own_keys(), _verify, "9999-12-31T23:59:59.999Z"
            ):
                raise SignatureInvalid(detail="this site's checkpoint is not signed by its key")

    def _own_keys(self) -> dict[str, KeyView]:
        rows = self._db.execute("SELECT * FROM trust_keys WHERE site = ?", [self._site_id])
        return {row[0]: KeyView._make(row)._replace(revoked_at=None) for row in rows}

    # --- the checks at every open ---------------------------------------------------------

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
        """Re-verify the newest events of every chain and that the heads agree with them: of
        this site's own, ``TAIL_CHECK``; of the others, ``TAIL_BUDGET`` shared among them (at
        least the head of each, checked against the event before it), so that opening costs
        the same however many origins the ledger holds."""
        origins = self._origins()
        share = max(1, min(TAIL_CHECK, TAIL_BUDGET // max(1, len(origins) - 1)))
        for origin in origins:
            length = TAIL_CHECK if origin == self._site_id else share
            start = self._start_of_tail(origin, length)
            head = chain.verify(origin, self._stored(origin, start.seq), start)
            if check_heads:
                self._check_head(origin, head)

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

    def _recorded_heads(self) -> dict[tuple[str, int], str]:
        """The heads the head file names, read before the snapshot ``_check_head_file`` reads
        in: the file is written after each commit, so every head it names then is in any
        snapshot begun after (read inside one, a writer's next commit could be named in the
        file and not yet in the snapshot: a ledger refused as behind that is not)."""
        return {} if self._heads_file is None else placement.read_heads(self._heads_file)

    def _check_head_file(self, recorded: dict[tuple[str, int], str]) -> None:
        """Every head in ``recorded`` (``_recorded_heads``) must be held here, with the same
        hash: a ledger that lost committed events (its ``-wal`` deleted after a crash) is
        refused."""
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


def _scratch_projection() -> Database:
    """Empty projection tables in SQLite's own temporary database (a file in TMPDIR, removed
    when closed): a verify rebuilds the whole history into it in flat memory (its page cache),
    where an in-memory database grew with the ledger."""
    db = Database(sqlite3.connect("", isolation_level=None), execute_plugins=False)
    db.execute(f"PRAGMA cache_size = -{STREAM_CACHE_KIB}")
    schema.migrate(db.conn, schema.MIGRATIONS)  # the same tables as the ledger's
    return db


def _verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """``keys.verify``, the crypto imported when a checkpoint is checked (not by every
    command that opens the ledger)."""
    from .. import keys

    return keys.verify(public_key, message, signature)
