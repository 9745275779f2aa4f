"""The statement store (adapters layer): the head and checkpoint statements this site made of its
own chain or accepted of other origins, each envelope byte for byte, kept beside the event log,
with each checkpoint's base rows.

Statements are never events (``bundles/FORMAT.md`` section 6): they live in their own tables,
which are neither projections (``ledger rebuild`` keeps them) nor chained, and are written in the
transaction of the record they go with (an export's ``bundle.exported``, an import, a prune). Per
origin the newest head statement and the newest checkpoint (with its base rows, as one zstd frame
of their lines: a bundle's base member, passed on as it is) are kept.
"""

from __future__ import annotations

import hashlib
import io
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import zstandard

from orchd.core import checkpoints, rotations, statements
from orchd.core.checkpoints import CheckpointStatement
from orchd.core.rotations import Rotation
from orchd.core.statements import HeadStatement

from .base import LedgerBase, translated

HEAD = "head"
CHECKPOINT = "checkpoint"
BLOB_CHUNK = 1 << 20  # a base frame goes into its row a MiB at a time
FRAME_PIECE = 1 << 16  # and is read back 64 KiB at a time (each a few MiB once decompressed)
ROTATION = "rotation"  # keyed by the new key: ``seq`` its first 12 hex digits, ``hash`` its id


@dataclass(frozen=True, slots=True, kw_only=True)
class BaseMember:
    """An origin's checkpoint and its base rows, ready to go into a bundle as they are."""

    statement: CheckpointStatement
    data: bytes  # one zstd frame of the rows' lines
    sha256: str  # of ``data``
    raw_size: int  # of the lines, each with its newline
    records: int  # lines


def frame_lines(source: sqlite3.Blob | BinaryIO) -> Iterator[bytes]:
    """The lines (each without its newline) of the zstd frame ``source`` holds, read and
    decompressed a piece at a time; what follows the last newline is not a line."""
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    rest = b""
    while chunk := source.read(FRAME_PIECE):
        lines = (rest + decompressor.decompress(chunk)).split(b"\n")
        rest = lines.pop()
        yield from lines
    if not decompressor.eof:
        raise zstandard.ZstdError("the frame ends early")


def compress(lines: Sequence[bytes]) -> tuple[bytes, int]:
    """The base rows' lines as one zstd frame, and their size uncompressed."""
    raw = b"".join(line + b"\n" for line in lines)
    frame = zstandard.ZstdCompressor(level=3, write_checksum=True).compress(raw)
    return frame, len(raw)


def compress_stream(lines: Iterable[bytes], raw_size: int, into: BinaryIO) -> None:
    """``compress`` of lines read as they come, written to ``into`` (never all in memory):
    ``raw_size`` their size known beforehand (the frame says it, as a whole compression's does;
    the bytes may differ from it on large rows, the rows they hold do not)."""
    out = zstandard.ZstdCompressor(level=3, write_checksum=True).compressobj(size=raw_size)
    for line in lines:
        into.write(out.compress(line + b"\n"))
    into.write(out.flush())


class StatementStore(LedgerBase):
    """The ``StatementStore`` port, and the writes its callers' transactions make."""

    def head_statements(self) -> dict[str, HeadStatement]:
        """origin -> the newest head statement held of it."""
        sql = "SELECT envelope FROM statements WHERE kind = ? ORDER BY origin"
        with translated(self.path):
            rows = self._db.execute(sql, [HEAD]).fetchall()
        found = (statements.parse_head(bytes(envelope)) for (envelope,) in rows)
        return {s.origin: s for s in found}

    def checkpoint_statements(self) -> dict[str, CheckpointStatement]:
        """origin -> the newest checkpoint statement held of it."""
        sql = "SELECT envelope FROM statements WHERE kind = ? ORDER BY origin"
        with translated(self.path):
            rows = self._db.execute(sql, [CHECKPOINT]).fetchall()
        found = (checkpoints.parse(bytes(envelope)) for (envelope,) in rows)
        return {s.origin: s for s in found}

    def base_member(self, origin: str) -> BaseMember | None:
        """The newest checkpoint held of ``origin`` with its base rows, if any."""
        row = self._newest_base(origin, "r.data, r.sha256, r.raw_size, r.records")
        if row is None:
            return None
        envelope, data, digest, raw_size, records = row
        return BaseMember(
            statement=checkpoints.parse(bytes(envelope)),
            data=bytes(data),
            sha256=digest,
            raw_size=raw_size,
            records=records,
        )

    def base_lines(self, origin: str) -> tuple[CheckpointStatement, Iterator[bytes]] | None:
        """The newest checkpoint held of ``origin`` and its base rows' lines, read from the
        stored frame a MiB at a time (a pruned site's base may not fit in memory)."""
        row = self._newest_base(origin, "r.rowid")
        if row is None:
            return None
        return checkpoints.parse(bytes(row[0])), self._frame_lines(row[1])

    def _newest_base(self, origin: str, columns: str) -> tuple[Any, ...] | None:
        """The envelope of the newest checkpoint held of ``origin`` and ``columns`` of its
        base rows' row (``r``), if any."""
        with translated(self.path):
            row = self._db.execute(
                f"SELECT s.envelope, {columns} FROM statements s "
                "JOIN checkpoint_rows r ON r.origin = s.origin AND r.seq = s.seq "
                "WHERE s.kind = ? AND s.origin = ?",
                [CHECKPOINT, origin],
            ).fetchone()
        return None if row is None else tuple(row)

    def _frame_lines(self, rowid: int) -> Iterator[bytes]:
        with (
            translated(self.path),
            self._db.conn.blobopen("checkpoint_rows", "data", rowid, readonly=True) as blob,
        ):
            yield from frame_lines(blob)

    def rotation_statements(self) -> dict[str, list[Rotation]]:
        """origin -> the rotation statements of it held here (accepted with its ranges)."""
        sql = "SELECT origin, envelope FROM statements WHERE kind = ? ORDER BY origin, seq"
        with translated(self.path):
            rows = self._db.execute(sql, [ROTATION]).fetchall()
        found: dict[str, list[Rotation]] = {}
        for origin, envelope in rows:
            found.setdefault(origin, []).append(rotations.parse(bytes(envelope)))
        return found

    def _keep_rotations(self, lines: Iterable[Rotation]) -> None:
        """Keep each rotation statement not held yet (in the caller's transaction)."""
        for line in lines:
            seq, digest = int(line.new_key_id[:12], 16), line.new_key_id
            self._db.execute(
                "INSERT OR IGNORE INTO statements (kind, origin, seq, hash, envelope) "
                "VALUES (?, ?, ?, ?, ?)",
                [ROTATION, line.site, seq, digest, line.envelope],
            )

    def _keep_heads(self, made: Iterable[HeadStatement]) -> None:
        """Keep each statement that is newer than the one held of its origin (in the caller's
        transaction)."""
        for statement in made:
            self._keep(HEAD, statement.origin, statement.seq, statement.hash, statement.envelope)

    def _keep_checkpoint(self, statement: CheckpointStatement, lines: Sequence[bytes]) -> None:
        """Keep a checkpoint with its base rows' lines, when it is newer than the one held of
        its origin (in the caller's transaction)."""
        data, raw_size = compress(lines)
        self._keep_frame(statement, data, raw_size, len(lines))

    def _keep_frame(
        self, statement: CheckpointStatement, data: bytes, raw_size: int, records: int
    ) -> None:
        """``_keep_checkpoint`` of base rows compressed already (one zstd frame, ``data``)."""
        self._keep_frame_file(statement, io.BytesIO(data), raw_size, records)

    def _keep_frame_file(
        self, statement: CheckpointStatement, frame: BinaryIO, raw_size: int, records: int
    ) -> None:
        """``_keep_frame`` of a frame read from ``frame`` (a file: at the prune of a big
        ledger, tens of MiB), copied into the row a MiB at a time through SQLite's blob I/O."""
        o, seq = statement.origin, statement.seq
        if not self._keep(CHECKPOINT, o, seq, statement.hash, statement.envelope):
            return
        size = frame.seek(0, io.SEEK_END)
        frame.seek(0)
        hasher = hashlib.sha256()
        while chunk := frame.read(BLOB_CHUNK):
            hasher.update(chunk)
        self._db.execute("DELETE FROM checkpoint_rows WHERE origin = ?", [o])
        inserted = self._db.execute(
            "INSERT INTO checkpoint_rows (origin, seq, sha256, raw_size, records, data) "
            "VALUES (?, ?, ?, ?, ?, zeroblob(?))",
            [o, seq, hasher.hexdigest(), raw_size, records, size],
        )
        frame.seek(0)
        with self._db.conn.blobopen("checkpoint_rows", "data", inserted.lastrowid or 0) as blob:
            while chunk := frame.read(BLOB_CHUNK):
                blob.write(chunk)

    def _keep(self, kind: str, origin: str, seq: int, digest: str, envelope: bytes) -> bool:
        row = self._db.execute(
            "SELECT seq FROM statements WHERE kind = ? AND origin = ?", [kind, origin]
        ).fetchone()
        if row is not None and row[0] >= seq:
            return False
        self._db.execute("DELETE FROM statements WHERE kind = ? AND origin = ?", [kind, origin])
        self._db.execute(
            "INSERT INTO statements (kind, origin, seq, hash, envelope) VALUES (?, ?, ?, ?, ?)",
            [kind, origin, seq, digest, envelope],
        )
        return True
