"""Writing a bundle from the ledger (adapters layer): streaming, deterministic, atomic.

What goes in (where each origin starts, the manifest, the ``bundle.exported`` record) is decided
by ``orchd.core.sync``; this module reads the ledger, compresses each range into a staging file
beside the output, signs the manifest and publishes the archive (``bundles/FORMAT.md``, "Export").
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from orchd import crash
from orchd.core import bundle, dsse, sync
from orchd.core.bundle import Manifest
from orchd.core.events import Actor
from orchd.core.manifest import DEFAULT_EXPIRY_MS
from orchd.errors import StorageError, UntrustedKey

from .. import archive_writer, keys
from ..ledger import SqliteLedger


@dataclass(frozen=True, slots=True, kw_only=True)
class Exported:
    path: Path
    manifest: Manifest
    size: int
    events: int


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
    progress: Callable[[str, int], None] = lambda origin, count: None,
) -> Exported:
    """Write a bundle to ``out`` (which must not exist): every event held here, or with
    ``since`` (the recipient's receipt: origin -> (seq, hash) it holds) an incremental one of
    what comes after, each range continuing from the hash the recipient acknowledged."""
    _check_own(ledger, key)
    plan = _plan(ledger, key, recipient, now_ms, expires_in_ms, since)
    bundle.check_signable(plan.manifest(bundle.largest_members(plan.ranges)))  # before writing
    with archive_writer.staging_beside(out) as staging:
        members, files = _compress(ledger, plan.ranges, staging, progress)
        manifest = plan.manifest(tuple(members))
        size = _write(manifest, key, files, staging / "bundle.orchkit", out)
    ledger.append([sync.exported_record(actor, manifest, sha256=_file_digest(out), size=size)])
    return Exported(path=out, manifest=manifest, size=size, events=sum(m.records for m in members))


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
) -> sync.Export:
    heads = ledger.heads()
    kept = ledger.checkpoints()  # pruned: each such origin's events start after its checkpoint
    ours = {} if since is None else ledger.hashes(sync.acknowledged(heads, since))
    starts = sync.export_starts(heads, since, recipient, kept=kept, ours=ours)
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
        ranges=sync.export_ranges(heads, starts),
        previous=previous[-1] if previous else "",
        rotation=_rotation_statement(ledger, key),
    )


def _compress(
    ledger: SqliteLedger,
    ranges: tuple[bundle.Range, ...],
    staging: Path,
    progress: Callable[[str, int], None],
) -> tuple[list[bundle.Member], list[tuple[str, Path]]]:
    """Each range's events compressed into a staging file: the members and their files."""
    members, files = [], []
    for index, r in enumerate(ranges):
        made = archive_writer.compress_lines(
            staging / f"{index}.zst",
            _counting(ledger.bodies(r.origin, r.from_seq, r.to_seq), r.origin, progress),
        )
        if made.records != r.to_seq - r.from_seq + 1:
            raise StorageError(
                path=ledger.path,
                detail=f"{r.origin} holds {made.records} events from seq {r.from_seq}, its "
                f"head says {r.to_seq}",
            )
        members.append(
            bundle.Member(
                name=r.member,
                sha256=made.sha256,
                size=made.size,
                raw_size=made.raw_size,
                records=made.records,
            )
        )
        files.append((r.member, made.path))
    return members, files


def _write(
    manifest: Manifest, key: keys.SiteKey, files: list[tuple[str, Path]], tmp: Path, out: Path
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


def _counting(
    bodies: Iterator[bytes], origin: str, progress: Callable[[str, int], None]
) -> Iterator[bytes]:
    for count, body in enumerate(bodies, start=1):
        if count % 10_000 == 0:
            progress(origin, count)
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
