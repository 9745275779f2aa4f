"""Two-site sync decisions: where an export for a peer starts, its manifest, and the records of
an export and of an import, the receipt (core layer).

``bundles/FORMAT.md`` sections 5 and 6 are the rules. A bundle for any site carries every event
held (after a pruned origin's checkpoint); one for a named peer never carries the peer's own
events; with the peer's receipt (origin -> the seq and hash it holds) it is incremental: per
origin, what comes after the receipt, refused when the chains differ or nothing is left. The
receipt of an import is its ``bundle.imported`` record: for every origin held afterwards, the
head's seq and hash.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from orchd.core import bundle, drafts, timefmt
from orchd.core.bundle import Manifest, Member, Range, Step
from orchd.core.events import ZERO_HASH, Actor, Draft
from orchd.errors import StateConflict

Heads = Mapping[str, tuple[int, str]]  # origin -> (seq, hash)


def acknowledged(heads: Heads, since: Heads) -> list[tuple[str, int]]:
    """The (origin, seq) of a receipt whose hash this site must compare with its own."""
    return [(o, seq) for o, (seq, _) in since.items() if o in heads and 1 <= seq <= heads[o][0]]


def export_starts(
    heads: Heads,
    since: Heads | None,
    recipient: str,
    *,
    kept: Heads,
    ours: Mapping[tuple[str, int], str],
    version: int = bundle.FORMAT_VERSION,
) -> dict[str, tuple[int, str]]:
    """origin -> (first seq to send, the hash before it): all of it (``since`` None), or what
    comes after the recipient's receipt ``since``; never the recipient's own events (it is their
    source). ``kept``: origin -> the checkpoint a pruned origin continues from, where a range
    starts for a recipient that may hold nothing of it (format 2 carries the checkpoint, format
    1 cannot: refused); ``ours``: this site's hash at each ``acknowledged`` (origin, seq). An
    acknowledged hash this site does not hold means the chains differ."""
    if since is None:
        starts = {
            o: (kept[o][0] + 1, kept[o][1]) if o in kept else (1, ZERO_HASH)
            for o, (head_seq, _) in heads.items()
            if o != recipient and head_seq > kept.get(o, (0, ""))[0]
        }
        for origin in sorted(set(starts) & set(kept)):
            _joinable(origin, recipient, version)
        return starts
    starts = {}
    for origin, (head_seq, _) in heads.items():
        seq, digest = since.get(origin, (0, ZERO_HASH))
        if seq >= head_seq or origin == recipient:
            continue  # the recipient holds all of it
        if seq == 0 and origin in kept:
            _joinable(origin, recipient, version)
            starts[origin] = (kept[origin][0] + 1, kept[origin][1])
            continue
        if seq < kept.get(origin, (0, ""))[0]:
            raise StateConflict(
                detail=f"{recipient} holds {origin} up to seq {seq}, but this site pruned it up "
                f"to seq {kept[origin][0]} (retention): it cannot send what is missing (a site "
                "that holds part of an origin cannot join it from a checkpoint)"
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


def _joinable(origin: str, recipient: str, version: int) -> None:
    """A range from ``origin``'s checkpoint: format 2 carries it, format 1 cannot."""
    if version == bundle.FORMAT_1:
        raise StateConflict(
            detail=f"this site pruned {origin}, and {recipient} may hold nothing of it: it can "
            "join only from the checkpoint, which format 1 cannot carry (upgrade that site to "
            "read format 2, and export without --format 1)"
        )


def joins(starts: Mapping[str, tuple[int, str]], since: Heads | None, kept: Heads) -> set[str]:
    """The origins of ``starts`` that start from their checkpoint for a recipient that may hold
    nothing of them (no receipt, or none of the origin): their ranges carry the checkpoint."""
    return {
        o
        for o, (first, _) in starts.items()
        if o in kept
        and first == kept[o][0] + 1
        and (since is None or since.get(o, (0, ""))[0] == 0)
    }


def export_ranges(
    heads: Heads,
    starts: Mapping[str, tuple[int, str]],
    version: int = bundle.FORMAT_VERSION,
    joins: Collection[str] = (),
    rotated: Collection[str] = (),
) -> tuple[Range, ...]:
    """One range per origin of ``starts``, sorted, up to ``heads`` (this site's head of it; in
    format 2 its newest head statement of another origin), naming the head statement in format
    2, and the checkpoint and base rows of each origin of ``joins`` (which starts from its
    checkpoint for a recipient that may hold nothing of it), and the rotations of each origin of
    ``rotated`` (whose key changed since the one it started with)."""
    ranges = []
    for origin, (first, before) in sorted(starts.items()):
        two = version == bundle.FORMAT_2
        joined = two and origin in joins
        ranges.append(
            Range(
                origin=origin,
                from_seq=first,
                to_seq=heads[origin][0],
                prev_hash=before,
                last_hash=heads[origin][1],
                member=bundle.member_name(origin),
                head=bundle.head_name(origin) if two else "",
                checkpoint=f"checkpoints/{origin}.dsse" if joined else "",
                base=f"base/{origin}.ndjson.zst" if joined else "",
                rotations=f"rotations/{origin}.ndjson" if two and origin in rotated else "",
            )
        )
    return tuple(ranges)


@dataclass(frozen=True, slots=True, kw_only=True)
class Export:
    """What an export writes, but for its members (known once they are compressed)."""

    exporter: str
    recipient: str
    now_ms: int
    expires_in_ms: int
    full: bool  # no receipt given: every event held
    ranges: tuple[Range, ...]
    previous: str  # the last bundle made for the same recipient, or ""
    rotation: str | None  # the statement vouching for the signing key, if it was rotated
    format: int = bundle.FORMAT_VERSION  # 2, or 1 for a peer not yet upgraded

    def manifest(self, members: tuple[Member, ...]) -> Manifest:
        created_at = timefmt.format_ms(self.now_ms)
        return Manifest(
            format=self.format,
            bundle_id=bundle.bundle_id(self.exporter, self.recipient, created_at, self.ranges),
            exporter=self.exporter,
            recipient=self.recipient,
            created_at=created_at,
            expires_at=timefmt.format_ms(self.now_ms + self.expires_in_ms),
            kind="full" if self.full else "incremental",
            ranges=self.ranges,
            previous=self.previous,
            members=members,
            rotation=self.rotation,
        )


def exported_record(actor: Actor, manifest: Manifest, *, sha256: str, size: int) -> Draft:
    """The ``bundle.exported`` record of a bundle written (its file's digest and size)."""
    return drafts.bundle_exported(
        actor,
        bundle_id=manifest.bundle_id,
        recipient=manifest.recipient,
        kind=manifest.kind,
        ranges={r.origin: [r.from_seq, r.to_seq] for r in manifest.ranges},
        sha256=sha256,
        size=size,
    )


def import_records(
    manifest: Manifest,
    steps: Sequence[Step],
    heads: Heads,
    actor: Actor,
    *,
    events: int,
    followed_rotation: Mapping[str, str] | None = None,
    reason: str | None = None,
    ticket: str | None = None,
    relay_only: Collection[str] = (),
    also_trusted: Sequence[Mapping[str, str]] = (),
) -> list[Draft]:
    """The records an import of ``events`` events commits with them: ``key.trusted`` for a key
    followed through a rotation (the exporter's, then ``also_trusted``: origins' keys reached
    through their rotations), then the receipt (``bundle.imported``), whose watermarks are
    what this site holds afterwards, so the exporter's next bundle starts after it; for each
    origin of ``relay_only`` (taken on the relay's word alone) whose range it applies, the
    range's last seq (its ``relay_only``)."""
    applied = {
        s.range.origin: [s.after_seq + 1, s.range.to_seq] for s in steps if s.action == "apply"
    }
    held = dict(heads) | {
        s.range.origin: (s.range.to_seq, s.range.last_hash) for s in steps if s.action == "apply"
    }
    followed = [] if followed_rotation is None else [followed_rotation]
    newly = {r["new_key_id"]: r for r in [*followed, *also_trusted]}  # each key trusted once
    records = [trusted_record(rotation, actor) for rotation in newly.values()]
    receipt = drafts.bundle_imported(
        actor,
        bundle_id=manifest.bundle_id,
        exporter=manifest.exporter,
        ranges=applied,
        events=events,
        watermarks={origin: [seq, digest] for origin, (seq, digest) in held.items()},
        reason=reason,
        ticket=ticket,
        relay_only={o: applied[o][1] for o in sorted(relay_only) if o in applied},
    )
    return [*records, receipt]


def trusted_record(rotation: Mapping[str, str], actor: Actor) -> Draft:
    """``key.trusted`` for the new key of a rotation statement this site followed, naming the
    old key that vouched for it (revoking that key revokes this one with it)."""
    return drafts.key_trusted(
        actor,
        site=rotation["site"],
        key_id=rotation["new_key_id"],
        public_key=rotation["public_key"],
        change="rotation",
        vouched_by=rotation["old_key_id"],
        reason=f"followed the rotation signed by key {rotation['old_key_id'][:16]}",
    )
