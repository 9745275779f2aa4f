"""Writing a bundle from the ledger (adapters layer): streaming, deterministic, atomic.

What goes in (where each origin starts, the manifest, the ``bundle.exported`` record) is decided
by ``orchd.core.sync``; this module reads the ledger, compresses each range into a staging file
beside the output, signs the manifest and publishes the archive (``bundles/FORMAT.md``, "Export").
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchd import crash
from orchd.core import bundle, dsse, events, statements, sync, vocabulary
from orchd.core.bundle import Manifest
from orchd.core.events import Actor
from orchd.core.manifest import DEFAULT_EXPIRY_MS, parse
from orchd.core.manifest_members import member_order
from orchd.core.progress import Meter, OnProgress, quiet
from orchd.core.rotations import Rotation
from orchd.core.statements import HeadStatement
from orchd.errors import StateConflict, StorageError, UntrustedKey

from .. import archive_writer, keys
from ..ledger import SqliteLedger
from . import heads_of


@dataclass(frozen=True, slots=True, kw_only=True)
class Exported:
    path: Path
    manifest: Manifest
    size: int
    events: int
    left_out: tuple[str, ...] = ()  # format 2: origins of which this site holds no head statement


@dataclass(frozen=True, slots=True, kw_only=True)
class Written:
    """A bundle written and published, its ``bundle.exported`` not yet recorded: what ``write``
    did, as a child process hands it back (``adapters/beside.py``) for ``record``."""

    path: Path
    manifest: Manifest
    size: int
    sha256: str
    events: int
    own: tuple[HeadStatement, ...]  # format 2: this site's head statement, made for the bundle
    left_out: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "manifest": self.manifest.encode().decode(),
            "size": self.size,
            "sha256": self.sha256,
            "events": self.events,
            "own": [base64.b64encode(s.envelope).decode("ascii") for s in self.own],
            "left_out": list(self.left_out),
        }

    @classmethod
    def from_json(cls, said: dict[str, Any]) -> Written:
        return cls(
            path=Path(said["path"]),
            manifest=parse(said["manifest"].encode()),
            size=said["size"],
            sha256=said["sha256"],
            events=said["events"],
            own=tuple(statements.parse_head(base64.b64decode(s)) for s in said["own"]),
            left_out=tuple(said["left_out"]),
        )


def export(
    ledger: SqliteLedger,
    key: keys.SiteKey,
    actor: Actor,
    out: Path,
    *,
    recipient: str,
    now_ms: int,
    expires_in_ms: int = DEFAULT_EXPIRY_MS,
    since: Mapping[str, tuple[int, str]] | None = None,
    progress: OnProgress = quiet,
    version: int = bundle.FORMAT_VERSION,
) -> Exported:
    """Write a bundle to ``out`` (which must not exist): every event held here, or with
    ``since`` (the recipient's receipt: origin -> (seq, hash) it holds) an incremental one of
    what comes after, each range continuing from the hash the recipient acknowledged. In format
    2 (``version``) each range carries its origin's head statement: this site's own, signed now
    and kept in its statement store with the export's record; another origin's, the newest held,
    passed on byte for byte (the range ends there; an origin with none is left out)."""
    make: Callable[..., Written] = functools.partial(write, ledger)
    if ledger.work_in_child:  # the daemon's long lane: the reading and compressing elsewhere
        from .. import beside

        make = functools.partial(beside.export, ledger.path)
    written = make(
        key,
        out,
        recipient=recipient,
        now_ms=now_ms,
        expires_in_ms=expires_in_ms,
        since=since,
        progress=progress,
        version=version,
    )
    return record(ledger, actor, written)


def record(ledger: SqliteLedger, actor: Actor, written: Written) -> Exported:
    """Record the export ``written`` (``bundle.exported``, with this site's head statement)."""
    record = sync.exported_record(actor, written.manifest, sha256=written.sha256, size=written.size)
    ledger.append([record], statements=written.own)
    return Exported(
        path=written.path,
        manifest=written.manifest,
        size=written.size,
        events=written.events,
        left_out=written.left_out,
    )


def write(
    ledger: SqliteLedger,
    key: keys.SiteKey,
    out: Path,
    *,
    recipient: str,
    now_ms: int,
    expires_in_ms: int,
    since: Mapping[str, tuple[int, str]] | None,
    progress: OnProgress,
    version: int,
) -> Written:
    """The bundle ``export`` records, written and published at ``out``; nothing recorded."""
    _check_own(ledger, key)
    kept = ledger.head_statements() if version == bundle.FORMAT_2 else {}
    held = _heads(ledger, version, kept)
    plan_chains = heads_of.chains(ledger, key, held, kept) if version == bundle.FORMAT_2 else {}
    plan = _plan(ledger, key, recipient, now_ms, expires_in_ms, since, held, version, plan_chains)
    if version == bundle.FORMAT_1:  # refused before anything is written
        bundle.check_signable(plan.manifest(bundle.largest_members(plan.ranges)))
    bases = {r.origin: heads_of.base(ledger, r) for r in plan.ranges if r.checkpoint}
    heads = heads_of.made(ledger, key, plan.ranges, kept)
    chains = {r.origin: chain for r in plan.ranges if (chain := plan_chains.get(r.origin))}
    with archive_writer.staging_beside(out) as staging:
        total = sum(r.to_seq - r.from_seq + 1 for r in plan.ranges)
        meter = Meter("bundle export", "events", total, progress)
        with ledger.cache_limited():  # the events are read once, in order
            compressed = _compress(ledger, plan.ranges, staging, meter)
        meter.end()
        events_count = sum(m.records for m, _ in compressed.values())
        found = compressed | heads_of.members(heads, chains, bases)
        order = member_order(version, plan.ranges)
        members = [found[name][0] for name in order]
        files = [(name, found[name][1]) for name in order]
        manifest = plan.manifest(tuple(members))
        size = _write(manifest, key, files, staging / "bundle.orchkit", out)
    return Written(
        path=out,
        manifest=manifest,
        size=size,
        sha256=_file_digest(out),
        events=events_count,
        own=tuple(s for s, _ in heads if s.origin == ledger.site_id),
        left_out=tuple(sorted(set(ledger.heads()) - set(held) - {recipient})),
    )


def _heads(
    ledger: SqliteLedger, version: int, kept: Mapping[str, HeadStatement]
) -> dict[str, tuple[int, str]]:
    """How far each origin may be exported: this site's head of it in format 1; in format 2,
    of another origin, its newest head statement held here (an origin without one is left
    out: its events came in format 1 bundles, and only ``--format 1`` carries them)."""
    heads = ledger.heads()
    if version == bundle.FORMAT_1:
        return heads
    held = {o: (s.seq, s.hash) for o, s in kept.items() if o in heads}
    return held | {ledger.site_id: heads[ledger.site_id]}


Found = dict[str, tuple[bundle.Member, bytes | archive_writer.Slice]]  # name -> member, data
# the ranges of fewer events share one staging file, their frames one after another (a file
# each cost more to make than to fill at 1,000 origins; holding them in memory grew the process
# with the bundle)
SHARED_UP_TO = 1000


def _check_own(ledger: SqliteLedger, key: keys.SiteKey) -> None:
    own = ledger.trust_key(key.key_id)
    if own is None or own.role != "own" or own.site != ledger.site_id:
        raise UntrustedKey(
            key_id=key.key_id,
            site=ledger.site_id,
            detail="the key file is not this site's current signing key",
        )


def _plan(
    ledger: SqliteLedger,
    key: keys.SiteKey,
    recipient: str,
    now_ms: int,
    expires_in_ms: int,
    since: Mapping[str, tuple[int, str]] | None,
    heads: Mapping[str, tuple[int, str]],
    version: int,
    chains: Mapping[str, list[Rotation]],
) -> sync.Export:
    kept = ledger.checkpoints()  # pruned: each such origin's events start after its checkpoint
    ours = {} if since is None else ledger.hashes(sync.acknowledged(heads, since))
    starts = sync.export_starts(heads, since, recipient, kept=kept, ours=ours, version=version)
    previous = [
        b.bundle_id
        for b in ledger.bundle_records()
        if b.direction == "export" and b.site == recipient
    ]
    return sync.Export(
        exporter=ledger.site_id,
        recipient=recipient,
        now_ms=now_ms,
        expires_in_ms=expires_in_ms,
        full=since is None,
        ranges=sync.export_ranges(
            heads, starts, version, sync.joins(starts, since, kept), rotated=set(chains)
        ),
        previous=previous[-1] if previous else "",
        rotation=_rotation_statement(ledger, key),
        format=version,
    )


def _compress(
    ledger: SqliteLedger,
    ranges: tuple[bundle.Range, ...],
    staging: Path,
    meter: Meter,
) -> Found:
    """Each range's events compressed into a staging file of its own, or a small range's into
    the one they share: name -> the member and where its frame is staged."""
    found: Found = {}
    shared_path = staging / "small.zst"
    try:
        with shared_path.open("wb") as shared:  # its close writes what is buffered: may fail
            for index, r in enumerate(ranges):
                batches = ledger.body_batches(r.origin, r.from_seq, r.to_seq)
                if not r.head:  # format 1
                    batches = (list(_format_1_only(iter(batch))) for batch in batches)
                counted = _counting(batches, meter)
                if r.to_seq - r.from_seq < SHARED_UP_TO:
                    made = archive_writer.compress_batches_into(shared, shared_path, counted)
                else:
                    made = archive_writer.compress_batches(staging / f"{index}.zst", counted)
                found[r.member] = (_checked(ledger, r, made), made.content)
    except OSError as exc:  # a full disk, an I/O error: the operator's to fix
        raise StorageError(path=shared_path, detail=exc.strerror or str(exc)) from exc
    return found


def _checked(
    ledger: SqliteLedger, r: bundle.Range, made: archive_writer.Compressed
) -> bundle.Member:
    """The member ``made`` is, once it holds every event its range names."""
    if made.records != r.to_seq - r.from_seq + 1:
        raise StorageError(
            path=ledger.path,
            detail=f"{r.origin} holds {made.records} events from seq {r.from_seq}, its "
            f"head says {r.to_seq}",
        )
    return bundle.Member(
        name=r.member,
        sha256=made.sha256,
        size=made.size,
        raw_size=made.raw_size,
        records=made.records,
    )


def _write(
    manifest: Manifest,
    key: keys.SiteKey,
    files: list[tuple[str, bytes | archive_writer.Slice]],
    tmp: Path,
    out: Path,
) -> int:
    """Sign ``manifest``, write the archive to ``tmp`` and publish it as ``out``: its size."""
    manifest_bytes = manifest.encode()
    signature = key.sign(dsse.pae(dsse.MANIFEST_TYPE, manifest_bytes))
    envelope = dsse.Envelope(
        payload_type=dsse.MANIFEST_TYPE,
        payload=manifest_bytes,
        signatures=(dsse.Signature(key_id=key.key_id, sig=signature),),
    )
    try:
        with tmp.open("wb") as handle:
            archive_writer.write_archive(
                handle,
                [("manifest.json", manifest_bytes), ("manifest.sig", envelope.encode()), *files],
            )
        size = tmp.stat().st_size
        crash.point("export.written")
        archive_writer.publish(tmp, out)
        crash.point("export.published")
    except OSError as exc:
        raise StorageError(path=out, detail=exc.strerror or str(exc)) from exc
    return size


def _counting(batches: Iterator[list[bytes]], meter: Meter) -> Iterator[list[bytes]]:
    """``batches`` as they come, each counted by ``meter``."""
    for batch in batches:
        meter.add(len(batch))
        yield batch


def _format_1_only(bodies: Iterator[bytes]) -> Iterator[bytes]:
    """``bodies``, refused at the first event a reader of format 1 cannot read (a type or key
    format 2 added; FORMAT.md 6), before the bundle is published."""
    for body in bodies:
        if any(mark in body for mark in vocabulary.FORMAT_2_MARKS):
            event = events.parse(body)
            if (what := vocabulary.format_2_only(event)) is not None:
                raise StateConflict(
                    detail=f"{event.origin}/{event.seq} holds {what}, which a reader of format 1 "
                    "cannot read: upgrade that site to read format 2, and export without "
                    "--format 1"
                )
        yield body


def _file_digest(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 16):
            hasher.update(chunk)
    return hasher.hexdigest()


def _rotation_statement(ledger: SqliteLedger, key: keys.SiteKey) -> str | None:
    """The statement by which the previous key vouched for this one, if the key was rotated."""
    event = ledger.own_event(f"key.rotated:{key.key_id}")  # by its idempotency key: indexed
    if event is None:
        return None
    statement = event.payload["statement"]
    if not isinstance(statement, str):
        raise StorageError(path=ledger.path, detail="a key.rotated event holds no statement")
    return statement
