"""Rebuilding a lost site from bundles (``init --restore``, adapters layer): its own chain from
the best bundle signed by a key the operator vouches for, then every bundle imported as usual."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from orchd.core import bundle, bundle_trust, dsse
from orchd.core.checkpoints import Base
from orchd.core.events import Actor
from orchd.core.ports import Clock, Entropy, Sign
from orchd.core.progress import Meter, OnProgress, quiet
from orchd.errors import BundleRefused, BundleStale

from .. import archive_reader, bundle_reader, keys
from ..bundle_reader import Batch
from ..ledger import SqliteLedger
from .importer import Report, counted, import_bundle
from .trust import read_head, read_statements


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
    sign: Sign,
    skew_ms: int = bundle.DEFAULT_SKEW_MS,
    progress: OnProgress = quiet,
) -> Restored:
    """Rebuild the lost site ``site_id`` at ``path``: its own chain from the bundle among
    ``files`` signed with ``anchor`` (a public key the operator vouches for) that holds the most
    of it, from seq 1 or from the site's own checkpoint (its base rows loaded whole, and signed
    again with ``sign``, the new key's), then every file imported as usual for the other origins
    (the trust store is the site's own again by then). Expired bundles are taken: a loss may be
    old. ``progress`` hears of the chosen bundle's events read (``site restore``, step
    ``events``) and of each import."""
    own_seq, chosen = _best(site_id, files, anchor)
    now_ms = clock.now_ms()
    ledger = _own_chain(path, site_id, chosen, anchor, clock, entropy, sign, skew_ms, progress)
    try:
        reports = []
        for file in files:
            try:
                reports.append(
                    import_bundle(
                        ledger,
                        file,
                        actor,
                        now_ms=now_ms,
                        skew_ms=skew_ms,
                        allow_expired=True,
                        reason="restore after a loss",
                        ticket=ticket,
                        restoring=True,
                        sign=sign,
                        progress=progress,
                    )
                )
            except BundleStale:
                continue  # it holds nothing the restored site lacks
    finally:
        ledger.close()
    return Restored(source=chosen, own_seq=own_seq, imported=reports)


def _own_chain(
    path: Path,
    site_id: str,
    chosen: Path,
    anchor: bytes,
    clock: Clock,
    entropy: Entropy,
    sign: Sign,
    skew_ms: int,
    progress: OnProgress,
) -> SqliteLedger:
    """The new ledger at ``path``, holding ``site_id``'s own chain from the bundle ``chosen``."""
    with archive_reader.open_bundle(chosen) as source:
        manifest = read_head(source).manifest
        found = {}
        if manifest.format == bundle.FORMAT_2:  # the anchor's signature covers their digests
            found = {o: s.checkpoint for o, s in read_statements(source, manifest).items()}
        steps = [
            replace(s, checkpoint=found.get(s.range.origin, b""))
            for s in bundle.plan(manifest, local="", heads={}, hash_at={})
        ]
        report = Report(manifest=manifest, signer=dsse.key_id(anchor), steps=steps)
        batches = bundle_reader.batches(source, manifest, steps, {}, clock.now_ms() + skew_ms)
        total = bundle_reader.records(manifest, steps)
        meter = Meter("site restore", "events", total, progress)  # read; the own ones kept
        own = (_own(_metered(batch, meter), site_id) for batch in counted(batches, report))
        ledger = SqliteLedger.restore(
            path, site_id, clock, entropy, own, payloads_checked=True, sign=sign
        )
        meter.end()
        return ledger


def _metered(batch: Batch, meter: Meter) -> Batch:
    if not isinstance(batch, Base):
        meter.add(len(batch))
    return batch


def _own(batch: Batch, site_id: str) -> Batch:
    """What of ``batch`` is ``site_id``'s own: its events, or its base rows (else none)."""
    if isinstance(batch, Base):
        return batch if batch.statement.origin == site_id else []
    return [e for e in batch if e.origin == site_id]


def _best(site_id: str, files: Sequence[Path], anchor: bytes) -> tuple[int, Path]:
    """The file signed with ``anchor`` holding the most of ``site_id``'s chain, from seq 1 or
    from its own checkpoint."""
    best: tuple[int, Path] | None = None
    for file in files:
        with archive_reader.open_bundle(file) as source:
            head = read_head(source)
        r = next((r for r in head.manifest.ranges if r.origin == site_id), None)
        whole = r is not None and (r.from_seq == 1 or bool(r.checkpoint))
        if r is None or not whole or not bundle_trust.signed_by(head, anchor, keys.verify):
            continue
        if best is None or r.to_seq > best[0]:
            best = (r.to_seq, file)
    if best is None:
        raise BundleRefused(
            detail=f"no bundle given holds {site_id}'s own events from seq 1 (or from its own "
            "checkpoint) with a signature by the key given (a bundle for any site, from this "
            "site's last export or a peer's)"
        )
    return best
