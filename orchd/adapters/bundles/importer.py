"""Importing and verifying a bundle into the ledger, all or nothing (adapters layer).

Order (``bundles/FORMAT.md``, "Import"): open without following links or blocking; read the
signed head; have ``orchd.core.bundle_trust.check`` accept it (the signature against the trust
store before anything is decompressed, then recipient, clock skew and expiry); plan each origin
against this site's copy (``orchd.core.bundle.plan``); then stream every member in manifest
order, checking its digest, sizes, records and chain while the events go into one transaction,
which commits only if everything held, together with the receipt (``orchd.core.sync``).
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

from orchd import crash
from orchd.core import (
    bundle,
    bundle_trust,
    checkpoints,
    sync,
)
from orchd.core.bundle import Manifest, Step
from orchd.core.bundle_preview import Preview
from orchd.core.events import Actor, Draft
from orchd.core.ports import Sign
from orchd.core.progress import Meter, OnProgress, quiet
from orchd.errors import BundleMalformed, BundleRefused, BundleStale, MalformedEvent

from .. import archive_reader, bundle_reader, keys
from ..bundle_reader import Batch
from ..ledger import SqliteLedger
from .trust import read_signed, trusted_keys
from .vouching import Relay, Vouched, checked_statements, newly_trusted

Reader = Callable[
    [BinaryIO, Manifest, Sequence[Step], Mapping[str, str], int, Callable[[], None]],
    Iterator[Batch],
]  # bundle_reader.batches or its child-process twin, batches_beside


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
    relay_only: dict[str, int] = field(default_factory=dict)  # origin -> seq, on the relay's word
    preview: Preview = field(default_factory=lambda: Preview(local=""))  # what concerns this site


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
    progress: OnProgress = quiet,
    parallel_from: int | None = None,
    vouched_by_relay: Collection[str] = (),
    sign: Sign | None = None,
) -> Report:
    """Import ``path``, all or nothing (``dry_run``: check everything, write nothing); a file
    over ``max_bytes`` is refused before it is read. ``restoring`` (``init --restore``) also
    takes a bundle this site exported itself, for the other origins it holds. ``progress`` is
    told the events read and checked (``BATCH`` at a time; the daemon feeds its watchdog). A
    bundle with ``parallel_from`` records or more is read and checked in a child process while
    this one applies (None: ``bundle_reader.PARALLEL_FROM``). ``vouched_by_relay``: see
    ``_relay_only``. ``sign``: this site's checkpoint signer, which a join from an origin's
    checkpoint needs (the site signs its checkpoints and base again)."""
    audited = _audited(allow_expired, vouched_by_relay, reason, ticket, dry_run)
    with archive_reader.open_bundle(path) as source:
        _check_size(source, path, max_bytes)
        accepted = _accept(ledger, source, now_ms, skew_ms, allow_expired, restoring)
        manifest = accepted.head.manifest
        relay = Relay(actor, dry_run, frozenset(vouched_by_relay), restoring)
        vouched, heads = checked_statements(ledger, source, accepted, now_ms, relay), ledger.heads()
        steps = _plan(ledger, manifest, heads, vouched, signed=dry_run or sign is not None)
        report = Report(manifest=manifest, signer=accepted.signer.key_id, steps=steps)
        report.preview = Preview(local=ledger.site_id)
        report.relay_only = _relay_only(manifest, steps, vouched, relay, ledger.site_id)
        read = _reader(manifest, steps, parallel_from)
        hashes = {origin: digest for origin, (_, digest) in heads.items()}
        meter = _meter(manifest, steps, dry_run, progress)
        tick = functools.partial(meter.add, bundle_reader.BATCH)
        batches = counted(read(source, manifest, steps, hashes, now_ms + skew_ms, tick), report)
        if all(step.action == "skip" for step in steps):
            return _already(ledger, batches, report, meter)
        crash.point("import.verified")
        records = functools.partial(
            sync.import_records,
            manifest,
            steps,
            heads,
            actor,
            followed_rotation=accepted.signer.followed_rotation,
            also_trusted=newly_trusted(ledger, vouched),
            reason=reason if audited else None,
            ticket=ticket if audited else None,
            relay_only=report.relay_only,
        )
        _apply(ledger, batches, functools.partial(_noted, report, records), vouched, dry_run, sign)
    meter.end(meter.total)  # every record was read (the reader reports whole batches)
    return report


def _noted(report: Report, records: Callable[..., Sequence[Draft]]) -> Sequence[Draft]:
    """The import's own records (``import_records`` of the events applied), noted in the
    report's preview."""
    made = records(events=report.applied)
    report.preview.note_records(made)
    return made


def _meter(manifest: Manifest, steps: Sequence[Step], dry_run: bool, progress: OnProgress) -> Meter:
    """What counts the records read (every member's, as the signed manifest counts them)."""
    operation = "bundle verify" if dry_run else "bundle import"
    total = bundle_reader.records(manifest, steps)
    return Meter(operation, "events", total, progress, every=bundle_reader.BATCH)


def _apply(
    ledger: SqliteLedger,
    batches: Iterator[Batch],
    records: Callable[[], Sequence[Draft]],
    vouched: Mapping[str, Vouched],
    dry_run: bool,
    sign: Sign | None,
) -> None:
    """The events, base rows, statements and ``records`` in one transaction (or none)."""
    try:
        ledger.import_events(
            batches,
            records,
            dry_run=dry_run,
            payloads_checked=True,  # by the reader: bundle_reader.batches
            statements=[v.head.statement for v in vouched.values()],
            sign=sign,
            rotations=[line for v in vouched.values() for line in v.followed],
        )
    except MalformedEvent as exc:  # the fold refused an event the bundle carries
        raise BundleMalformed(detail=f"an event it carries is invalid: {exc.message}") from None


def _audited(
    allow_expired: bool,
    vouched_by_relay: Collection[str],
    reason: str | None,
    ticket: str | None,
    dry_run: bool,
) -> bool:
    """Whether the import is an operator's audited choice (its reason and ticket recorded)."""
    if allow_expired and (reason is None or ticket is None):
        raise BundleRefused(detail="--allow-expired needs --reason and --ticket (it is audited)")
    if vouched_by_relay and reason is None and not dry_run:
        raise BundleRefused(detail="--vouched-by-relay needs --reason (it is audited)")
    return allow_expired or bool(vouched_by_relay)


def _relay_only(
    manifest: Manifest,
    steps: Sequence[Step],
    vouched: Mapping[str, Vouched],
    relay: Relay,
    local: str,
) -> dict[str, int]:
    """origin -> the last seq of each range that adds events on the relay's word alone: in
    format 2, one whose head statement the operator took unsigned (``--vouched-by-relay``); in
    format 1, any relayed range (origin not the exporter: format 1 carries no statement of
    it), which is refused unless the operator chose so (FORMAT.md 5, step 5) or restores the
    site (``init --restore``, itself audited). The choice is audited (a reason, and a ticket
    per policy) and recorded as the receipt's ``relay_only``."""
    found = {}
    for s in steps:
        origin = s.range.origin
        if s.action != "apply" or origin in (manifest.exporter, local):
            continue
        if manifest.format == bundle.FORMAT_1:
            if origin not in relay.origins and not relay.restoring:
                raise BundleRefused(
                    detail=f"format 1 carries no statement of {origin}, whose events the bundle "
                    f"relays (trusting a key cannot help: take them on the relay's word alone "
                    f"with --vouched-by-relay {origin} --reason R, or ask for format 2)"
                )
            found[origin] = s.range.to_seq
        elif origin in vouched and vouched[origin].head.signer is None:
            found[origin] = s.range.to_seq
    return found


def _accept(
    ledger: SqliteLedger,
    source: BinaryIO,
    now_ms: int,
    skew_ms: int,
    allow_expired: bool,
    restoring: bool,
) -> bundle_trust.Accepted:
    """The signed head, accepted by this site's trust store (``core.bundle_trust.check``)."""
    return bundle_trust.check(
        *read_signed(source),
        trusted=trusted_keys(ledger),
        verify=keys.verify,
        now_ms=now_ms,
        local=ledger.site_id,
        skew_ms=skew_ms,
        allow_expired=allow_expired,
        restoring=restoring,
    )


def _check_size(source: BinaryIO, path: Path, max_bytes: int | None) -> None:
    size = os.fstat(source.fileno()).st_size
    if max_bytes is not None and size > max_bytes:
        raise BundleRefused(
            detail=f"{path} is {size} bytes, over the {max_bytes >> 20} MiB cap "
            "(config bundle_max_mb)"
        )


def _plan(
    ledger: SqliteLedger,
    manifest: Manifest,
    heads: Mapping[str, tuple[int, str]],
    vouched: Mapping[str, Vouched],
    *,
    signed: bool,
) -> list[Step]:
    """Each range against this site's copy (``core.bundle.plan``), with its statements; a join
    from an origin's checkpoint needs this site's key to sign its checkpoints again
    (``signed``: one is at hand, or nothing is written)."""
    steps = bundle.plan(
        manifest,
        local=ledger.site_id,
        heads=heads,
        hash_at=ledger.hashes(bundle.needed_hashes(manifest)),
        pruned={o: seq for o, (seq, _) in ledger.checkpoints().items()},
    )
    if manifest.format == bundle.FORMAT_1:
        return steps  # a relayed range rests on the exporter's signature (FORMAT.md 5, step 5)
    if not signed and any(s.join for s in steps):
        raise BundleRefused(
            detail="it starts an origin from its checkpoint, which this site must sign again: "
            "import it with the site's key at hand (through the daemon or orchd bundle import)"
        )
    return [
        replace(
            s,
            head_hlc=vouched[s.range.origin].head.statement.hlc,
            checkpoint=vouched[s.range.origin].checkpoint,
        )
        for s in steps
    ]


def _reader(manifest: Manifest, steps: list[Step], parallel_from: int | None) -> Reader:
    """How the members are read: here, or in a child process from ``parallel_from`` records
    (None: ``bundle_reader.PARALLEL_FROM``, read when the import starts)."""
    if parallel_from is None:
        parallel_from = bundle_reader.PARALLEL_FROM
    if bundle_reader.records(manifest, steps) >= parallel_from:
        return bundle_reader.batches_beside
    return bundle_reader.batches


def _already(
    ledger: SqliteLedger, batches: Iterator[Batch], report: Report, meter: Meter
) -> Report:
    """A bundle every origin of which is held here: a no-op if it was imported before."""
    for _nothing in batches:
        pass  # every member is still checked: a damaged copy is never "already applied"
    meter.end(meter.total)
    imported = {b.bundle_id for b in ledger.bundle_records() if b.direction == "import"}
    if report.manifest.bundle_id in imported:
        report.already = True
        return report
    raise BundleStale(detail="every origin it carries is held here up to or past its range")


def verify(
    ledger: SqliteLedger,
    path: Path,
    *,
    now_ms: int,
    skew_ms: int = bundle.DEFAULT_SKEW_MS,
    max_bytes: int | None = None,
    progress: OnProgress = quiet,
    vouched_by_relay: Collection[str] = (),
) -> Report:
    """Every check of an import short of applying; raises unless it would be accepted."""
    return import_bundle(
        ledger,
        path,
        _NOBODY,
        now_ms=now_ms,
        skew_ms=skew_ms,
        dry_run=True,
        max_bytes=max_bytes,
        progress=progress,
        vouched_by_relay=vouched_by_relay,
    )


_NOBODY = Actor(uid=0, user="verify", scopes=())


def counted(batches: Iterator[Batch], report: Report) -> Iterator[Batch]:
    """``batches`` as they come, counted into ``report`` by origin and type; a peer's key
    revocation becomes a warning for this site's operator."""
    for batch in batches:
        if isinstance(batch, checkpoints.Base):
            yield batch
            continue
        report.by_origin.update(event.origin for event in batch)
        report.preview.add(batch)
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
