"""The Offline Kit bundle: the signature envelope's limit, the import plan and the per-event
checks (core layer); the manifest, its limits and its strict reading are ``orchd.core.manifest``
(every name of it re-exported here).

``bundles/FORMAT.md`` is the normative text; this module is its executable half. Everything here
is pure: the archive and zstd streams are read by ``orchd.adapters.archive_reader``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from orchd.core import dsse, events, timefmt
from orchd.core.events import ZERO_HASH as ZERO_HASH  # re-exported: the hash before seq 1
from orchd.core.events import Event
from orchd.core.manifest import (
    ANY_SITE,
    DEFAULT_SKEW_MS,
    FORMAT_1,
    FORMAT_2,
    FORMAT_VERSION,
    KINDS,
    MAX_LINE,
    MAX_MANIFEST,
    MAX_MANIFEST_1,
    MAX_MEMBER_NAME,
    MAX_MEMBER_SIZE,
    MAX_RANGES,
    MAX_RAW_SIZE,
    MAX_SIGNATURE_FILE,
    MAX_SIGNATURE_FILE_1,
    MAX_STATEMENT,
    MAX_WINDOW,
    Manifest,
    Member,
    Range,
    bundle_id,
    head_name,
    member_name,
    parse,
    signature_cap,
)
from orchd.errors import (
    BundleRefused,
    ChainFork,
    ChainGap,
    MemberMismatch,
    OrchdError,
    SignatureInvalid,
    TooManyOrigins,
)

# the manifest (orchd.core.manifest) is re-exported: callers write bundle.parse, bundle.Manifest
__all__ = [
    "ANY_SITE",
    "DEFAULT_SKEW_MS",
    "FORMAT_1",
    "FORMAT_2",
    "FORMAT_VERSION",
    "KINDS",
    "MAX_LINE",
    "MAX_MANIFEST",
    "MAX_MANIFEST_1",
    "MAX_MEMBER_NAME",
    "MAX_MEMBER_SIZE",
    "MAX_RANGES",
    "MAX_RAW_SIZE",
    "MAX_SIGNATURE_FILE",
    "MAX_SIGNATURE_FILE_1",
    "MAX_STATEMENT",
    "MAX_WINDOW",
    "ZERO_HASH",
    "Action",
    "Manifest",
    "Member",
    "Range",
    "Step",
    "bundle_id",
    "check_envelope",
    "check_signable",
    "envelope_size",
    "head_name",
    "largest_members",
    "member_name",
    "needed_hashes",
    "parse",
    "plan",
    "read_events",
    "signature_cap",
]

# --- the signature envelope's limit -----------------------------------------------------------


def largest_members(ranges: Iterable[Range]) -> tuple[Member, ...]:
    """The (format 1) members of ``ranges`` as large as a manifest may declare them (their
    records exact): a manifest of these is at least as long as the one written once they are
    compressed."""
    return tuple(
        Member(
            name=r.member,
            sha256="0" * 64,
            size=MAX_MEMBER_SIZE,
            raw_size=MAX_RAW_SIZE,
            records=r.to_seq - r.from_seq + 1,
        )
        for r in ranges
    )


def envelope_size(manifest: Manifest, signatures: int = 1) -> int:
    """The bytes of ``manifest.sig`` for ``manifest`` with ``signatures`` Ed25519 signatures."""
    return len(
        dsse.Envelope(
            payload_type=dsse.MANIFEST_TYPE,
            payload=manifest.encode(),
            signatures=(dsse.Signature(key_id="0" * 64, sig=bytes(64)),) * signatures,
        ).encode()
    )


def check_signable(manifest: Manifest) -> None:
    """Refuse to export a format 1 manifest whose signature envelope would pass
    MAX_SIGNATURE_FILE_1 (format 1 readers refuse it): a bundle of more than some 80 to 130
    origins. Every format 2 manifest fits its envelope's limit."""
    size = envelope_size(manifest)
    if manifest.format == FORMAT_1 and size > MAX_SIGNATURE_FILE_1:
        raise TooManyOrigins(count=len(manifest.ranges), size=size, limit=MAX_SIGNATURE_FILE_1)


Action = Literal["apply", "skip"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    range: Range
    action: Action
    after_seq: int  # events up to this seq are already held here (checked, not applied)
    head_hlc: str = ""  # format 2: the head statement's hlc, which the last event must carry
    checkpoint: bytes = b""  # format 2: the range's checkpoint statement, checked (its base rows
    # are read against it)
    join: bool = False  # this site joins the origin from that checkpoint: its base rows load


def check_envelope(
    manifest: Manifest,
    *,
    local: str,
    now_ms: int,
    skew_ms: int,
    allow_expired: bool,
    restoring: bool = False,
) -> None:
    """Refuse a bundle addressed elsewhere, from the future, or expired; and one this site
    exported itself, unless it is ``restoring`` after a loss."""
    if manifest.recipient not in (ANY_SITE, local):
        raise BundleRefused(detail=f"it is addressed to site {manifest.recipient!r}, not {local!r}")
    if manifest.exporter == local and not restoring:
        raise BundleRefused(detail="it was exported by this site itself")
    created = timefmt.parse_canonical(manifest.created_at)
    if created > now_ms + skew_ms:
        raise BundleRefused(
            detail=f"it was created at {manifest.created_at}, more than {skew_ms // 1000} s "
            "ahead of this site's clock"
        )
    if not allow_expired and timefmt.parse_canonical(manifest.expires_at) < now_ms:
        raise BundleRefused(
            detail=f"it expired at {manifest.expires_at} (import it anyway with "
            "--allow-expired --reason R --ticket T)"
        )


def plan(
    manifest: Manifest,
    *,
    local: str,
    heads: Mapping[str, tuple[int, str]],
    hash_at: Mapping[tuple[str, int], str],
    pruned: Mapping[str, int] | None = None,
) -> list[Step]:
    """Per range: apply (continuing our copy) or skip (held already); refuse gaps and forks.

    ``heads`` is this site's copy of each origin (seq, hash); ``hash_at`` holds our hash at the
    seqs the plan needs (each range's ``from_seq - 1`` and ``to_seq``); ``pruned``: origin -> the
    seq up to which this site pruned it (no hash is held below, so nothing there is compared).
    A format 2 range that starts from its origin's checkpoint ``k`` (``from_seq - 1``) is joined
    from it by a site that holds nothing of the origin (``join``: its base rows load), continues
    a copy that reaches ``k``, and is a gap for a copy that ends before (the origin pruned it).
    """
    steps = []
    for r in manifest.ranges:
        head_seq = heads.get(r.origin, (0, ZERO_HASH))[0]
        ours_before = ZERO_HASH if r.from_seq == 1 else hash_at.get((r.origin, r.from_seq - 1))
        if r.to_seq <= head_seq:
            gone = r.to_seq < (pruned or {}).get(r.origin, 0)
            if not gone and hash_at.get((r.origin, r.to_seq)) != r.last_hash:
                raise ChainFork(origin=r.origin, detail=f"seq {r.to_seq} has another hash here")
            steps.append(Step(range=r, action="skip", after_seq=head_seq))
            continue
        if r.origin == local:
            raise BundleRefused(
                detail=f"it holds events of this site past its own seq {head_seq}; a site never "
                "takes its own history from a peer (a lost site is restored with init --restore)"
            )
        if r.checkpoint and head_seq == 0:
            steps.append(Step(range=r, action="apply", after_seq=r.from_seq - 1, join=True))
            continue
        if r.checkpoint and head_seq < r.from_seq - 1:
            raise ChainGap(
                origin=r.origin,
                detail=f"this site holds seq 1..{head_seq}, the bundle continues from "
                f"{r.origin}'s checkpoint at {r.from_seq - 1}: seq {head_seq + 1}.."
                f"{r.from_seq - 1} are missing, and {r.origin} pruned them (a site that holds "
                "part of an origin cannot join it from a checkpoint)",
            )
        if r.from_seq > head_seq + 1:
            held = f"seq 1..{head_seq}" if head_seq else "nothing"
            raise ChainGap(
                origin=r.origin,
                detail=f"this site holds {held}, the bundle starts at {r.from_seq}: "
                f"seq {head_seq + 1}..{r.from_seq - 1} are missing",
            )
        if ours_before is not None and ours_before != r.prev_hash:
            raise ChainFork(origin=r.origin, detail=f"seq {r.from_seq - 1} has another hash here")
        steps.append(Step(range=r, action="apply", after_seq=head_seq))
    return steps


def needed_hashes(manifest: Manifest) -> list[tuple[str, int]]:
    """The (origin, seq) whose hash ``plan`` compares."""
    wanted = []
    for r in manifest.ranges:
        if r.from_seq > 1:
            wanted.append((r.origin, r.from_seq - 1))
        wanted.append((r.origin, r.to_seq))
    return wanted


def read_events(
    step: Step, lines: Iterable[bytes], *, head_hash: str, max_wall_ms: int
) -> Iterator[Event]:
    """Parse a member's lines and check them against its range, yielding those to apply.

    Every event must be of the range's origin, in seq order without gaps, each ``prev_hash`` the
    hash of the one before, the first continuing ``prev_hash`` and the last ending on
    ``last_hash``; one this site holds already must have the same hash here. No event may carry a
    clock reading beyond ``max_wall_ms``.

    An event's hash is its own bytes', so only the next event's ``prev_hash`` (or the range's
    ``last_hash``) proves it is the one signed: its clock and its hash against ours are judged
    only then, so that a damaged record is refused as damage, never as a clock or a fork.
    """
    r = step.range
    name = r.member
    expected_seq, prev, held = r.from_seq, r.prev_hash, None
    for line in lines:
        if expected_seq > r.to_seq:
            raise MemberMismatch(member=name, detail="more records than its range")
        try:
            event = events.parse(line)
        except OrchdError as exc:
            raise MemberMismatch(
                member=name, detail=f"record {expected_seq}: {exc.message}"
            ) from None
        if event.origin != r.origin or event.seq != expected_seq:
            raise MemberMismatch(
                member=name,
                detail=f"expected {r.origin}/{expected_seq}, found {event.origin}/{event.seq}",
            )
        if event.prev_hash != prev:
            raise MemberMismatch(member=name, detail=f"seq {event.seq} does not follow the chain")
        if held is not None:
            yield from _proven(step, held, head_hash=head_hash, max_wall_ms=max_wall_ms)
        prev, held = event.hash, event
        expected_seq += 1
    if expected_seq != r.to_seq + 1 or prev != r.last_hash or held is None:
        raise MemberMismatch(member=name, detail="it ends before its range or off its last hash")
    yield from _proven(step, held, head_hash=head_hash, max_wall_ms=max_wall_ms)
    if step.head_hlc and held.hlc != step.head_hlc:
        raise SignatureInvalid(
            detail=f"head statement: {r.origin}/{r.to_seq} carries hlc {held.hlc}, the statement "
            f"{step.head_hlc}"
        )


def _proven(step: Step, event: Event, *, head_hash: str, max_wall_ms: int) -> Iterator[Event]:
    """``event`` once the chain has proven it signed: refused if beyond the clock's skew or held
    here with another hash, yielded if past what this site holds."""
    if int(event.hlc[:13]) > max_wall_ms:
        raise BundleRefused(
            detail=f"{step.range.origin}/{event.seq} carries clock {event.hlc}, beyond the allowed "
            "skew"
        )
    if event.seq == step.after_seq and event.hash != head_hash:
        raise ChainFork(origin=step.range.origin, detail=f"seq {event.seq} has another hash here")
    if event.seq > step.after_seq:
        yield event
