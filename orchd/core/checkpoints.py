"""Origin checkpoints and base rows: how a pruned chain can still be joined (core layer, format 2).

``bundles/FORMAT.md`` 3.4 is the normative text. Only an origin makes a checkpoint, of its own
chain, when it prunes it: a DSSE statement (``application/vnd.orchd.origin-checkpoint+json``) over
``{"hash", "origin", "rows_digest", "seq"}``, where ``rows_digest`` is the sha256 of its **base
rows**: the projection rows that folding the origin's events 1..seq alone makes, one canonical JSON
line ``{"row": ROW, "table": T}`` each, sorted by table, then primary key. A site that never held
the pruned events loads those rows and continues the chain from ``seq``.

Everything here is pure: the statement's bytes and checks (with an injected signature check, as
``statements`` does for head statements), the base rows' tables, their lines made and read.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchd.core import canonical, dsse
from orchd.core.manifest_members import Range
from orchd.core.names import check_name
from orchd.core.statements import Fork, Verify, read_payload, signer_of, vouching_key
from orchd.core.trust import KeyView
from orchd.errors import ChainFork, MemberMismatch, OrchdError, SignatureInvalid, WrittenByNewer

CHECKPOINT_TYPE = "application/vnd.orchd.origin-checkpoint+json"
CHECKPOINT_KEYS = frozenset({"hash", "origin", "rows_digest", "seq"})
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointStatement:
    """A checkpoint statement: what it says, and its envelope's bytes as made or received."""

    origin: str
    seq: int
    hash: str
    rows_digest: str
    envelope: bytes


def payload(origin: str, seq: int, digest: str, rows_digest: str) -> bytes:
    """The exact bytes a checkpoint statement signs (canonical JSON: keys in code point order)."""
    return canonical.dump(
        {"hash": digest, "origin": origin, "rows_digest": rows_digest, "seq": seq}
    )


def make(
    origin: str,
    seq: int,
    digest: str,
    rows_digest: str,
    *,
    key_id: str,
    sign: Callable[[bytes], bytes],
) -> CheckpointStatement:
    """The checkpoint of ``origin``'s own chain at ``seq``, signed with its key."""
    body = payload(origin, seq, digest, rows_digest)
    signature = dsse.Signature(key_id=key_id, sig=sign(dsse.pae(CHECKPOINT_TYPE, body)))
    envelope = dsse.Envelope(payload_type=CHECKPOINT_TYPE, payload=body, signatures=(signature,))
    return CheckpointStatement(
        origin=origin, seq=seq, hash=digest, rows_digest=rows_digest, envelope=envelope.encode()
    )


def _bad(detail: str) -> SignatureInvalid:
    return SignatureInvalid(detail=f"checkpoint statement: {detail}")


def parse(data: bytes) -> CheckpointStatement:
    """A checkpoint statement read strictly (form only, no trust): at most MAX_STATEMENT bytes,
    a canonical envelope of CHECKPOINT_TYPE, a payload of exactly the four keys."""
    value = read_payload(data, CHECKPOINT_TYPE, CHECKPOINT_KEYS, _bad)
    seq, origin = value["seq"], value["origin"]
    if type(seq) is not int or not 1 <= seq <= canonical.MAX_INT:
        raise _bad(f"seq must be an integer from 1 to {canonical.MAX_INT}")
    for name in ("hash", "rows_digest"):
        if not isinstance(value[name], str) or not _HEX64.fullmatch(value[name]):
            raise _bad(f"{name} must be 64 lower-case hex digits")
    try:
        check_name("site id", origin)
    except OrchdError as exc:
        raise _bad(exc.message) from None
    return CheckpointStatement(
        origin=origin, seq=seq, hash=value["hash"], rows_digest=value["rows_digest"], envelope=data
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Checked:
    """A range's checkpoint that passed every check but the base rows' digest (checked while
    they stream): ``signer`` is the key that verified it, None on the relay's word alone."""

    statement: CheckpointStatement
    signer: str | None


def check(
    r: Range,
    data: bytes,
    *,
    trusted: Mapping[str, KeyView],
    verify: Verify,
    now: str,
    held: Mapping[tuple[str, int], str],
    vouched: Collection[str] = (),
    forked: Callable[[Fork], None] = lambda fork: None,
) -> Checked:
    """A range's checkpoint statement checked in FORMAT.md 3.4's order: its form and origin
    (54), that it is where the range starts (``from_seq - 1`` and ``prev_hash``; 54), a
    signature by a key trusted for the origin (72 or 54, or the operator's ``vouched``), and
    that this site holds no other hash for (origin, seq) (``held``; 57, ``forked`` first when
    the statement is signed)."""
    statement = parse(data)
    if statement.origin != r.origin:
        raise _bad(f"it is {statement.origin}'s, in the range of {r.origin}")
    if (statement.seq, statement.hash) != (r.from_seq - 1, r.prev_hash):
        raise _bad(
            f"it is of {r.origin}/{statement.seq} ({statement.hash[:16]}), but the range continues "
            f"from {r.from_seq - 1} ({r.prev_hash[:16]})"
        )
    key = vouching_key(
        statement.envelope, CHECKPOINT_TYPE, statement.origin, trusted, verify, now, vouched
    )
    ours = held.get((r.origin, statement.seq))
    if ours is not None and ours != statement.hash:
        if key is not None:
            forked(
                Fork(origin=r.origin, seq=statement.seq, held_hash=ours, signed_hash=statement.hash)
            )
        raise ChainFork(
            origin=r.origin,
            detail=f"its checkpoint gives seq {statement.seq} another hash than this site holds "
            f"({statement.hash[:16]}, here {ours[:16]})",
        )
    return Checked(statement=statement, signer=key)


def verifies(
    statement: CheckpointStatement, trusted: Mapping[str, KeyView], verify: Verify, now: str
) -> bool:
    """Whether a key of ``trusted`` for the origin signed ``statement``."""
    try:
        signer_of(statement.envelope, CHECKPOINT_TYPE, statement.origin, trusted, verify, now)
    except OrchdError:
        return False
    return True


# --- base rows ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Table:
    """A projection table as base rows carry it (FORMAT.md 3.4's table)."""

    key: tuple[str, ...]
    columns: tuple[str, ...]
    optional: frozenset[str] = frozenset()
    integers: frozenset[str] = frozenset()
    local: bool = False  # another site checks its rows, but does not load them

    @property
    def required(self) -> frozenset[str]:
        return frozenset(self.columns) - self.optional


def _table(
    key: str, columns: str, optional: str = "", integers: str = "", *, local: bool = False
) -> Table:
    return Table(
        tuple(key.split()),
        tuple(columns.split()),
        frozenset(optional.split()),
        frozenset(integers.split()),
        local,
    )


TABLES: dict[str, Table] = {  # in code point order: the order of the lines
    "bundles": _table("bundle_id direction", "bundle_id direction site at ranges", local=True),
    "heads": _table("origin", "origin seq hash hlc", integers="seq"),
    "jobs": _table(
        "job_id",
        "job_id origin key job_type source params priority state attempts submitted_at "
        "updated_at eligible_at cause last_run_id schedule slot_at replay_of",
        "source eligible_at cause last_run_id schedule slot_at replay_of",
        "priority attempts",
    ),
    "quota_overrides": _table(
        "kind name site",
        "kind name site action hlc origin rate burst concurrency daily changed_at reason ticket",
        "rate burst concurrency daily",
        "burst concurrency daily",
    ),
    "request_answers": _table(
        "request_id origin", "request_id origin outcome job_id reason answered_at", "job_id reason"
    ),
    "requests": _table(
        "request_id",
        "request_id origin site job_type source params key priority requested_at",
        "source key priority",
        "priority",
    ),
    "runs": _table(
        "run_id",
        "run_id job_id origin attempt state leased_at lease_expires_at started_at ended_at "
        "exit_code pid worker worker_log",
        "started_at ended_at exit_code pid worker worker_log",
        "attempt exit_code pid",
    ),
    "schedule_state": _table("origin schedule", "origin schedule last_slot"),
    "source_pauses": _table("origin source", "origin source paused_at reason"),
    "trust_keys": _table(
        "key_id",
        "key_id site public_key role added_at expires_at revoked_at reason",
        "expires_at revoked_at reason",
        local=True,
    ),
}


def line(table: str, row: Mapping[str, Any]) -> bytes:
    """One base row's line (without its ``\\n``): SQL NULLs left out."""
    kept = {name: value for name, value in row.items() if value is not None}
    return canonical.dump({"row": kept, "table": table})


def lines(tables: Iterable[tuple[str, Iterable[tuple[Any, ...]]]]) -> Iterable[bytes]:
    """The lines of each table's rows (as tuples in its columns' order), given table by table in
    TABLES' order and each in key order (as ``ORDER BY`` the key gives them: text compared as
    UTF-8 bytes)."""
    for name, rows in tables:
        columns = TABLES[name].columns
        for values in rows:
            yield line(name, dict(zip(columns, values, strict=True)))


@dataclass(slots=True)
class BaseReader:
    """Reads an origin's base rows line by line, refusing what FORMAT.md 3.4 refuses; each
    ``read`` gives the (table, row) it read (the reader keeps none: a base may be larger than
    memory), ``finish`` their sha256 once the last passed."""

    member: str
    checkpoint: CheckpointStatement
    _hasher: Any = field(default_factory=hashlib.sha256)
    _last: tuple[str, tuple[bytes, ...]] | None = None
    _heads: int = 0

    def read(self, data: bytes) -> tuple[str, dict[str, Any]]:
        """One line (its ``\\n`` cut off, as a member's lines come): its (table, row)."""
        self._hasher.update(data + b"\n")
        try:
            value = canonical.decode(data)
        except OrchdError as exc:
            raise self._bad(f"a line is not canonical JSON ({exc.message})") from None
        if not isinstance(value, dict) or set(value) != {"row", "table"}:
            raise self._bad("a line must hold exactly row and table")
        name, row = value["table"], value["row"]
        spec = TABLES.get(name) if isinstance(name, str) else None
        if spec is None:
            raise self._newer(f"table {name}")
        if not isinstance(row, dict):
            raise self._bad(f"a row of {name} is not an object")
        self._check_row(name, spec, row)
        order = (name, tuple(str(row[k]).encode() for k in spec.key))
        if self._last is not None and order <= self._last:
            raise self._bad(f"a row of {name} is out of order")
        self._last = order
        return name, row

    def finish(self) -> str:
        """The rows' digest, once the last line was read: it must be the checkpoint's."""
        if self._heads != 1:
            raise self._bad("the heads table must hold exactly the checkpoint's row")
        digest: str = self._hasher.hexdigest()
        if digest != self.checkpoint.rows_digest:
            raise self._bad("its sha256 is not the checkpoint's rows_digest")
        return digest

    def _check_row(self, name: str, spec: Table, row: dict[str, Any]) -> None:
        for column in row:
            if column not in spec.columns:
                raise self._newer(f"table {name} / key {column}")
        missing = spec.required - set(row)
        if missing:
            raise self._bad(f"a row of {name} lacks {', '.join(sorted(missing))}")
        for column, value in row.items():
            kind = int if column in spec.integers else str
            if type(value) is not kind:
                raise self._bad(
                    f"{name}.{column} must be {'an integer' if kind is int else 'text'}"
                )
        if "origin" in spec.columns and row["origin"] != self.checkpoint.origin:
            raise self._bad(f"a row of {name} is {row['origin']}'s, not {self.checkpoint.origin}'s")
        if name == "heads":
            self._heads += 1
            c = self.checkpoint
            if (row["seq"], row["hash"]) != (c.seq, c.hash):
                raise self._bad("its heads row is not the checkpoint's")

    def _bad(self, detail: str) -> MemberMismatch:
        return MemberMismatch(member=self.member, detail=detail)

    def _newer(self, what: str) -> WrittenByNewer:
        return WrittenByNewer(what=what, origin=self.checkpoint.origin, seq=self.checkpoint.seq)


@dataclass(frozen=True, slots=True, kw_only=True)
class Base:
    """An origin's base rows read from a bundle and checked against its checkpoint: what an
    import keeps in its statement store, and loads when it ``join``\\ s the origin from it."""

    statement: CheckpointStatement
    rows: list[tuple[str, dict[str, Any]]]
    lines: list[bytes]
    join: bool
