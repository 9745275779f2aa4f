"""Exporting, inspecting, verifying and importing Offline Kit bundles (adapters layer).

These procedures stream between a bundle file and the ledger, so they live with the I/O; every
decision they take (what a manifest may say, what an import applies or refuses) is made by the
pure ``orchd.core.bundle`` and ``orchd.core.trust``. ``bundles/FORMAT.md`` is the specification.

Import order (FORMAT.md, "Import"): open without following links or blocking; read the manifest
and its signature; check the signature against the trust store before decompressing anything;
check recipient, clock skew and expiry; plan each origin against this site's copy; then stream
every member in manifest order, checking its digest, sizes, records and chain while the events go
into one transaction, which commits only if everything held, together with the
``bundle.imported`` record.
"""

from __future__ import annotations

import base64
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from orchd import crash
from orchd.core import bundle, canonical, dsse, timefmt, trust
from orchd.core.bundle import Manifest, Step
from orchd.core.events import Actor, Draft, Event
from orchd.core.ports import Clock, Entropy
from orchd.core.trust import KeyView
from orchd.errors import (
    BundleMalformed,
    BundleRefused,
    BundleStale,
    MalformedEvent,
    OrchdError,
    SignatureInvalid,
    StateConflict,
    StorageError,
    UntrustedKey,
)

from . import bundle_io, bundle_reader, keys
from .ledger import SqliteLedger

SCOPE = "orch:bundle"
_HEX64 = re.compile(r"[0-9a-f]{64}")
DEFAULT_EXPIRY_MS = 30 * 86_400_000


# --- export -----------------------------------------------------------------------------------


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
    own = ledger.trust_key(key.key_id)
    if own is None or own.role != "own" or own.site != ledger.site_id:
        raise UntrustedKey(
            key_id=key.key_id,
            site=ledger.site_id,
            detail="the key file is not this site's current signing key",
        )
    heads = ledger.heads()
    starts = _starts(ledger, heads, since, recipient)
    ranges = tuple(
        bundle.Range(
            origin=origin,
            from_seq=first,
            to_seq=heads[origin][0],
            prev_hash=before,
            last_hash=heads[origin][1],
            member=bundle.member_name(origin),
        )
        for origin, (first, before) in sorted(starts.items())
    )
    previous = [
        b.bundle_id
        for b in ledger.bundle_records()
        if b.direction == "export" and b.site == recipient
    ]
    created_at = timefmt.format_ms(now_ms)
    rotation = _rotation_statement(ledger, key)

    def manifest_of(members: tuple[bundle.Member, ...]) -> Manifest:
        return Manifest(
            format=bundle.FORMAT_VERSION,
            bundle_id=bundle.bundle_id(ledger.site_id, recipient, created_at, ranges),
            exporter=ledger.site_id,
            recipient=recipient,
            created_at=created_at,
            expires_at=timefmt.format_ms(now_ms + expires_in_ms),
            kind="full" if since is None else "incremental",
            ranges=ranges,
            previous=previous[-1] if previous else "",
            members=members,
            rotation=rotation,
        )

    bundle.check_signable(manifest_of(bundle.largest_members(ranges)))  # before any writing
    with bundle_io.staging_beside(out) as staging:
        members, files = [], []
        for index, r in enumerate(ranges):
            made = bundle_io.compress_lines(
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
        manifest = manifest_of(tuple(members))
        manifest_bytes = manifest.encode()
        signature = key.sign(dsse.pae(dsse.MANIFEST_TYPE, manifest_bytes))
        envelope = dsse.Envelope(
            payload_type=dsse.MANIFEST_TYPE,
            payload=manifest_bytes,
            signatures=(dsse.Signature(key_id=key.key_id, sig=signature),),
        )
        tmp = staging / "bundle.orchkit"
        try:
            with tmp.open("wb") as handle:
                bundle_io.write_archive(
                    handle,
                    [
                        ("manifest.json", manifest_bytes),
                        ("manifest.sig", envelope.encode()),
                        *files,
                    ],
                )
            size = tmp.stat().st_size
            crash.point("export.written")
            bundle_io.publish(tmp, out)
            crash.point("export.published")
        except OSError as exc:
            raise StorageError(path=out, detail=exc.strerror or str(exc)) from exc
    ledger.append(
        [
            Draft(
                type="bundle.exported",
                actor=actor,
                idempotency_key=f"bundle.exported:{manifest.bundle_id}",
                payload={
                    "bundle_id": manifest.bundle_id,
                    "recipient": recipient,
                    "kind": manifest.kind,
                    "ranges": {r.origin: [r.from_seq, r.to_seq] for r in ranges},
                    "sha256": _file_digest(out),
                    "size": size,
                },
            )
        ]
    )
    return Exported(path=out, manifest=manifest, size=size, events=sum(m.records for m in members))


def _starts(
    ledger: SqliteLedger,
    heads: Mapping[str, tuple[int, str]],
    since: Mapping[str, tuple[int, str]] | None,
    recipient: str,
) -> dict[str, tuple[int, str]]:
    """origin -> (first seq to send, the hash before it): all of it, or what comes after the
    recipient's receipt; an acknowledged hash this site does not hold means the chains differ.
    Never the recipient's own events: it is their source (a bundle for any site has them all)."""
    kept = ledger.checkpoints()  # pruned: each such origin's events start after its checkpoint
    if since is None:
        return {
            o: (kept[o][0] + 1, kept[o][1]) if o in kept else (1, bundle.ZERO_HASH)
            for o, (head_seq, _) in heads.items()
            if o != recipient and head_seq > kept.get(o, (0, ""))[0]
        }
    acked = [(o, seq) for o, (seq, _) in since.items() if o in heads and 1 <= seq <= heads[o][0]]
    ours = ledger.hashes(acked)
    starts = {}
    for origin, (head_seq, _) in heads.items():
        seq, digest = since.get(origin, (0, bundle.ZERO_HASH))
        if seq >= head_seq or origin == recipient:
            continue  # the recipient holds all of it
        if seq < kept.get(origin, (0, ""))[0]:
            raise StateConflict(
                detail=f"{recipient} holds {origin} up to seq {seq}, but this site pruned it up "
                f"to seq {kept[origin][0]} (retention): it cannot send what is missing"
            )
        if seq and ours.get((origin, seq)) != digest:
            raise StateConflict(
                detail=f"{recipient} acknowledged {origin}/{seq} with a hash this site does not "
                "hold there: the chains differ; export --full and compare the ledgers"
            )
        starts[origin] = (seq + 1, digest)
    if not starts:
        raise StateConflict(
            detail=f"{recipient} holds every event this site holds (its last receipt says so); "
            "nothing to send (--full sends everything again)"
        )
    return starts


def _counting(
    bodies: Iterator[bytes], origin: str, progress: Callable[[str, int], None]
) -> Iterator[bytes]:
    for count, body in enumerate(bodies, start=1):
        if count % 10_000 == 0:
            progress(origin, count)
        yield body


def _file_digest(path: Path) -> str:
    import hashlib

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
    assert isinstance(statement, str)
    return statement


def rotation_statement(site: str, old: keys.SiteKey, new_public_key: bytes) -> str:
    """A DSSE envelope, signed by ``old``, saying that ``site``'s key is now ``new``."""
    body = canonical.dump(
        {
            "site": site,
            "old_key_id": old.key_id,
            "new_key_id": dsse.key_id(new_public_key),
            "public_key": new_public_key.hex(),
        }
    )
    sig = old.sign(dsse.pae(dsse.ROTATION_TYPE, body))
    envelope = dsse.Envelope(
        payload_type=dsse.ROTATION_TYPE,
        payload=body,
        signatures=(dsse.Signature(key_id=old.key_id, sig=sig),),
    )
    return base64.b64encode(envelope.encode()).decode()


# --- reading the signed head of a bundle ------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Head:
    manifest: Manifest
    manifest_bytes: bytes
    envelope: dsse.Envelope


def read_head(source: BinaryIO) -> Head:
    """The manifest and its signature envelope: the first two members, nothing decompressed."""
    first = bundle_io.next_entry(source)
    if first is None or first.name != "manifest.json":
        raise BundleMalformed(detail="the first member must be manifest.json")
    manifest_bytes = bundle_io.read_small(source, first, bundle.MAX_MANIFEST)
    second = bundle_io.next_entry(source)
    if second is None or second.name != "manifest.sig":
        raise SignatureInvalid(
            detail="the bundle is not signed: manifest.sig must follow the manifest"
        )
    raw_envelope = bundle_io.read_small(source, second, bundle.MAX_SIGNATURE_FILE)
    envelope = dsse.decode(raw_envelope, payload_type=dsse.MANIFEST_TYPE)
    if envelope.payload != manifest_bytes:
        raise SignatureInvalid(detail="the signed payload is not the manifest")
    return Head(
        manifest=bundle.parse(manifest_bytes), manifest_bytes=manifest_bytes, envelope=envelope
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Signer:
    key: KeyView | None  # the trusted key, or None when it is trusted through a rotation
    key_id: str
    followed_rotation: dict[str, str] | None = None  # the new key a trusted old key vouched for


def check_signature(ledger: SqliteLedger, head: Head, now: str) -> Signer:
    """A signature on the manifest by a key this site trusts for the exporter (or by a new key
    that such a key vouched for in the manifest's rotation statement)."""
    site = head.manifest.exporter
    message = dsse.pae(dsse.MANIFEST_TYPE, head.manifest_bytes)
    errors: list[OrchdError] = []
    for signature in head.envelope.signatures:
        row = ledger.trust_key(signature.key_id)
        try:
            if row is None and head.manifest.rotation is not None:
                rotation = _followed_rotation(ledger, head.manifest, signature.key_id, now)
                public = bytes.fromhex(rotation["public_key"])
            else:
                row = trust.check_signer(row, signature.key_id, site, now)
                public, rotation = bytes.fromhex(row.public_key), None
            if not keys.verify(public, message, signature.sig):
                raise SignatureInvalid(
                    detail=f"the signature by key {signature.key_id} does not match the manifest"
                )
            return Signer(key=row, key_id=signature.key_id, followed_rotation=rotation)
        except (UntrustedKey, SignatureInvalid) as exc:
            errors.append(exc)
    raise errors[0]


def _followed_rotation(
    ledger: SqliteLedger, manifest: Manifest, key_id: str, now: str
) -> dict[str, str]:
    assert manifest.rotation is not None
    raw = dsse.decode_base64(manifest.rotation, "the rotation statement")
    envelope = dsse.decode(raw, payload_type=dsse.ROTATION_TYPE)
    try:
        statement = canonical.decode(envelope.payload)
    except OrchdError:
        raise SignatureInvalid(detail="the rotation statement is not canonical JSON") from None
    wanted = {"site", "old_key_id", "new_key_id", "public_key"}
    if not isinstance(statement, dict) or set(statement) != wanted:
        raise SignatureInvalid(
            detail="the rotation statement must hold " + ", ".join(sorted(wanted))
        )
    if not all(
        isinstance(v, str) and _HEX64.fullmatch(v) for k, v in statement.items() if k != "site"
    ):
        raise UntrustedKey(
            key_id=key_id,
            site=manifest.exporter,
            detail="the rotation statement's keys are not 64 hex digits",
        )
    if (
        statement["site"] != manifest.exporter
        or statement["new_key_id"] != key_id
        or dsse.key_id(bytes.fromhex(statement["public_key"])) != key_id
    ):
        raise UntrustedKey(
            key_id=key_id,
            site=manifest.exporter,
            detail="the rotation statement does not name this key",
        )
    old = trust.check_signer(
        ledger.trust_key(statement["old_key_id"]), statement["old_key_id"], manifest.exporter, now
    )
    pae = dsse.pae(dsse.ROTATION_TYPE, envelope.payload)
    if not any(
        s.key_id == old.key_id and keys.verify(bytes.fromhex(old.public_key), pae, s.sig)
        for s in envelope.signatures
    ):
        raise SignatureInvalid(detail="the rotation statement is not signed by the old key")
    return {k: str(v) for k, v in statement.items()}


# --- inspect, verify, import ------------------------------------------------------------------


@dataclass(slots=True)
class Report:
    """What an import did (or, for a dry run or a verify, would do)."""

    manifest: Manifest
    signer: str
    steps: list[Step]
    applied: int = 0
    by_origin: Counter[str] = field(default_factory=Counter)
    by_type: Counter[str] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)
    already: bool = False  # the bundle was imported before: nothing to do


def inspect(path: Path) -> Head:
    """The manifest and signatures, checked for form only (no trust, nothing written)."""
    with bundle_io.open_bundle(path) as source:
        return read_head(source)


def import_bundle(
    ledger: SqliteLedger,
    path: Path,
    actor: Actor,
    *,
    now_ms: int,
    skew_ms: int = bundle.DEFAULT_SKEW_MS,
    dry_run: bool = False,
    allow_expired: bool = False,
    reason: str | None = None,
    ticket: str | None = None,
    max_bytes: int | None = None,
    restoring: bool = False,
    progress: Callable[[], None] = lambda: None,
    parallel_from: int | None = None,
) -> Report:
    """Import ``path``, all or nothing (``dry_run``: check everything, write nothing); a file
    over ``max_bytes`` is refused before it is read. ``restoring`` (``init --restore``) also
    takes a bundle this site exported itself, for the other origins it holds. ``progress`` is
    called every few thousand events (the daemon feeds its watchdog from it). A bundle with
    ``parallel_from`` records or more is read and checked in a child process while this one
    applies (None: ``bundle_reader.PARALLEL_FROM``)."""
    if allow_expired and (reason is None or ticket is None):
        raise BundleRefused(detail="--allow-expired needs --reason and --ticket (it is audited)")
    now = timefmt.format_ms(now_ms)
    with bundle_io.open_bundle(path) as source:
        size = os.fstat(source.fileno()).st_size
        if max_bytes is not None and size > max_bytes:
            raise BundleRefused(
                detail=f"{path} is {size} bytes, over the {max_bytes >> 20} MiB cap "
                "(config bundle_max_mb)"
            )
        head = read_head(source)
        signer = check_signature(ledger, head, now)
        manifest = head.manifest
        bundle.check_envelope(
            manifest,
            local=ledger.site_id,
            now_ms=now_ms,
            skew_ms=skew_ms,
            allow_expired=allow_expired,
            restoring=restoring,
        )
        heads = ledger.heads()
        steps = bundle.plan(
            manifest,
            local=ledger.site_id,
            heads=heads,
            hash_at=ledger.hashes(bundle.needed_hashes(manifest)),
            pruned={o: seq for o, (seq, _) in ledger.checkpoints().items()},
        )
        report = Report(manifest=manifest, signer=signer.key_id, steps=steps)
        read = bundle_reader.batches
        if parallel_from is None:
            parallel_from = bundle_reader.PARALLEL_FROM
        if bundle_reader.records(manifest, steps) >= parallel_from:
            read = bundle_reader.batches_beside
        hashes = {origin: digest for origin, (_, digest) in heads.items()}
        found = read(source, manifest, steps, hashes, now_ms + skew_ms, progress)
        batches = _counted(found, report)
        if all(step.action == "skip" for step in steps):
            for _nothing in batches:
                pass  # every member is still checked: a damaged copy is never "already applied"
            imported = {b.bundle_id for b in ledger.bundle_records() if b.direction == "import"}
            if manifest.bundle_id in imported:
                report.already = True
                return report
            raise BundleStale(detail="every origin it carries is held here up to or past its range")
        crash.point("import.verified")
        try:
            ledger.import_events(
                batches,
                lambda: _records(
                    manifest,
                    steps,
                    heads,
                    signer,
                    actor,
                    report,
                    reason if allow_expired else None,
                    ticket if allow_expired else None,
                ),
                dry_run=dry_run,
                payloads_checked=True,  # by the reader: bundle_reader.batches
            )
        except MalformedEvent as exc:  # the fold refused an event the bundle carries
            raise BundleMalformed(detail=f"an event it carries is invalid: {exc.message}") from None
    return report


@dataclass(frozen=True, slots=True)
class Restored:
    source: Path  # the bundle the site's own events came from
    own_seq: int  # its own chain, restored up to this seq
    imported: list[Report]  # then every bundle imported for the other origins


def restore(
    path: Path,
    site_id: str,
    files: Sequence[Path],
    anchor: bytes,
    clock: Clock,
    entropy: Entropy,
    actor: Actor,
    *,
    ticket: str,
    skew_ms: int = bundle.DEFAULT_SKEW_MS,
) -> Restored:
    """Rebuild the lost site ``site_id`` at ``path``: its own chain from the bundle among
    ``files`` signed with ``anchor`` (a public key the operator vouches for) that holds the most
    of it from seq 1, then every file imported as usual for the other origins (the trust store
    is the site's own again by then). Expired bundles are taken: a loss may be old."""
    best: tuple[int, Path] | None = None
    for file in files:
        with bundle_io.open_bundle(file) as source:
            head = read_head(source)
        r = next((r for r in head.manifest.ranges if r.origin == site_id), None)
        if r is None or r.from_seq != 1 or not _signed_by(head, anchor):
            continue
        if best is None or r.to_seq > best[0]:
            best = (r.to_seq, file)
    if best is None:
        raise BundleRefused(
            detail=f"no bundle given holds {site_id}'s own events from seq 1 with a signature by "
            "the key given (a bundle for any site, from this site's last export or a peer's)"
        )
    own_seq, chosen = best
    now_ms = clock.now_ms()
    with bundle_io.open_bundle(chosen) as source:
        head = read_head(source)
        manifest = head.manifest
        steps = bundle.plan(manifest, local="", heads={}, hash_at={})
        report = Report(manifest=manifest, signer=dsse.key_id(anchor), steps=steps)
        batches = bundle_reader.batches(source, manifest, steps, {}, now_ms + skew_ms)
        own = ([e for e in batch if e.origin == site_id] for batch in _counted(batches, report))
        ledger = SqliteLedger.restore(path, site_id, clock, entropy, own, payloads_checked=True)
    try:
        reports = []
        for file in files:
            try:
                reports.append(import_bundle(
                    ledger, file, actor, now_ms=now_ms, skew_ms=skew_ms, allow_expired=True,
                    reason="restore after a loss", ticket=ticket, restoring=True,
                ))  # fmt: skip
            except BundleStale:
                continue  # it holds nothing the restored site lacks
    finally:
        ledger.close()
    return Restored(source=chosen, own_seq=own_seq, imported=reports)


def _signed_by(head: Head, public: bytes) -> bool:
    key_id = dsse.key_id(public)
    message = dsse.pae(dsse.MANIFEST_TYPE, head.manifest_bytes)
    return any(
        s.key_id == key_id and keys.verify(public, message, s.sig) for s in head.envelope.signatures
    )


def verify(
    ledger: SqliteLedger,
    path: Path,
    *,
    now_ms: int,
    skew_ms: int = bundle.DEFAULT_SKEW_MS,
    max_bytes: int | None = None,
    progress: Callable[[], None] = lambda: None,
) -> Report:
    """Every check of an import short of applying; raises unless it would be accepted."""
    return import_bundle(ledger, path, _NOBODY, now_ms=now_ms, skew_ms=skew_ms, dry_run=True,
                         max_bytes=max_bytes, progress=progress)  # fmt: skip


_NOBODY = Actor(uid=0, user="verify", scopes=())


def _counted(batches: Iterator[list[Event]], report: Report) -> Iterator[list[Event]]:
    """``batches`` as they come, counted into ``report`` by origin and type; a peer's key
    revocation becomes a warning for this site's operator."""
    for batch in batches:
        report.by_origin.update(event.origin for event in batch)
        types = Counter(event.type for event in batch)
        report.by_type.update(types)
        if "key.revoked" in types:
            report.warnings += [
                f"site {e.origin} revoked key {e.payload.get('key_id')}: {e.reason}; "
                "review your trust store (orchd keys list)"
                for e in batch
                if e.type == "key.revoked"
            ]
        yield batch
        report.applied += len(batch)


def _records(
    manifest: Manifest,
    steps: Sequence[Step],
    heads: Mapping[str, tuple[int, str]],
    signer: Signer,
    actor: Actor,
    report: Report,
    reason: str | None,
    ticket: str | None,
) -> list[Draft]:
    applied = {
        s.range.origin: [s.after_seq + 1, s.range.to_seq] for s in steps if s.action == "apply"
    }
    held = dict(heads) | {
        s.range.origin: (s.range.to_seq, s.range.last_hash) for s in steps if s.action == "apply"
    }  # the receipt: what this site holds now, so the exporter's next bundle starts after it
    drafts = []
    if signer.followed_rotation is not None:
        new = signer.followed_rotation
        drafts.append(
            Draft(
                type="key.trusted",
                actor=actor,
                idempotency_key=f"key.trusted:{new['new_key_id']}:rotation",
                payload={
                    "site": new["site"],
                    "key_id": new["new_key_id"],
                    "public_key": new["public_key"],
                },
                reason=f"followed the rotation signed by key {new['old_key_id'][:16]}",
            )
        )
    drafts.append(
        Draft(
            type="bundle.imported",
            actor=actor,
            idempotency_key=f"bundle.imported:{manifest.bundle_id}",
            payload={
                "bundle_id": manifest.bundle_id,
                "exporter": manifest.exporter,
                "ranges": applied,
                "events": report.applied,
                "watermarks": {origin: [seq, digest] for origin, (seq, digest) in held.items()},
            },
            reason=reason,
            ticket=ticket,
        )
    )
    return drafts
