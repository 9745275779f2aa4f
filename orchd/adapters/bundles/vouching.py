"""A format 2 bundle's statements checked before anything is decompressed (adapters layer):
each range's rotations followed from the keys this site trusts for its origin, its checkpoint and
its head statement (``bundles/FORMAT.md`` 3.2 to 3.4, section 5 step 5), against the trust store
and what this site holds; a fork an origin signed is recorded. The decisions are the core's
(``rotations``, ``checkpoints``, ``statements``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass
from typing import BinaryIO

from orchd.core import bundle, bundle_trust, checkpoints, drafts, rotations, statements, timefmt
from orchd.core.events import Actor
from orchd.core.trust import KeyView
from orchd.errors import ChainFork

from .. import keys
from ..ledger import SqliteLedger
from .trust import RangeStatements, read_statements, trusted_keys


@dataclass(frozen=True, slots=True)
class Relay:
    """Who imports, whether for real, and the origins taken on the relay's word alone."""

    actor: Actor
    dry_run: bool
    origins: frozenset[str]
    restoring: bool


def checked_statements(
    ledger: SqliteLedger,
    source: BinaryIO,
    accepted: bundle_trust.Accepted,
    now_ms: int,
    relay: Relay,
) -> dict[str, Vouched]:
    """``_vouched_heads``; a fork that an origin's own statement proves is recorded as a
    ``bundle.forked`` event in a transaction of its own after the refusal, which says so (an
    alarm, counted by ``orchd_bundle_forks_total``; not by a dry run or a verify: FORMAT.md 5,
    "Forks")."""
    forks: list[statements.Fork] = []
    try:
        return _vouched_heads(ledger, source, accepted, now_ms, relay.origins, forks.append)
    except ChainFork as exc:
        if not forks or relay.dry_run:
            raise
        bundle_id = accepted.head.manifest.bundle_id
        ledger.append(
            [drafts.bundle_forked(relay.actor, bundle_id=bundle_id, **asdict(f)) for f in forks]
        )
        raise ChainFork(
            origin=exc.fields["origin"],
            detail=f"{exc.fields['detail']}; recorded as a fork (bundle.forked): the origin "
            "signed two histories",
        ) from None


def _vouched_heads(
    ledger: SqliteLedger,
    source: BinaryIO,
    accepted: bundle_trust.Accepted,
    now_ms: int,
    vouched: Collection[str],
    forked: Callable[[statements.Fork], None],
) -> dict[str, Vouched]:
    """Format 2: every range's statements, read before anything is decompressed: its origin's
    rotations followed (``core.rotations``), then its checkpoint and head checked against the
    trust store (with the exporter's new key when its manifest's rotation was followed, and the
    keys each origin's rotations reached) and what this site holds of each (origin, seq): an
    event's hash, or a statement's in its statement store."""
    manifest = accepted.head.manifest
    if manifest.format == bundle.FORMAT_1:
        return {}
    found = read_statements(source, manifest)
    held = _held(ledger, manifest, found)
    trusted = trusted_keys(ledger) | bundle_trust.reached(accepted.signer, manifest)
    now = timefmt.format_ms(now_ms)
    followed = _followed(manifest, found, trusted, now)
    for lines in followed.values():
        trusted |= rotations.reached(lines, manifest.created_at)
    signers: dict[str, str | None] = {}
    for r in manifest.ranges:  # FORMAT.md 3.4, before the head (3.3): its member comes first
        if r.checkpoint:
            checked = checkpoints.check(
                r,
                found[r.origin].checkpoint,
                trusted=trusted,
                verify=keys.verify,
                now=now,
                held=held,
                vouched=vouched,
                forked=forked,
            )
            signers[r.origin] = checked.signer
    heads = statements.check_heads(
        manifest.ranges,
        {origin: s.head for origin, s in found.items()},
        trusted=trusted,
        verify=keys.verify,
        now=now,
        held=held,
        vouched=vouched,
        forked=forked,
    )
    return {
        o: Vouched(
            c,
            found[o].checkpoint,
            rotations.leading_to(followed.get(o, []), [c.signer, signers.get(o)]),
        )
        for o, c in heads.items()
    }


def _held(
    ledger: SqliteLedger, manifest: bundle.Manifest, found: Mapping[str, RangeStatements]
) -> dict[tuple[str, int], str]:
    """This site's hash at each (origin, seq) a statement names: an event's, or a head or
    checkpoint statement's in its statement store."""
    wanted = [(o, statements.parse_head(s.head).seq) for o, s in found.items()]
    wanted += [(r.origin, r.from_seq - 1) for r in manifest.ranges if r.checkpoint]
    held = ledger.hashes(wanted)
    for origin, head in ledger.head_statements().items():
        held.setdefault((origin, head.seq), head.hash)
    for origin, point in ledger.checkpoint_statements().items():
        held.setdefault((origin, point.seq), point.hash)
    return held


def _followed(
    manifest: bundle.Manifest,
    found: Mapping[str, RangeStatements],
    trusted: Mapping[str, KeyView],
    now: str,
) -> dict[str, list[rotations.Rotation]]:
    """FORMAT.md 3.2: each range's rotations, followed from the keys trusted for its origin."""
    followed = {}
    for r in manifest.ranges:
        if r.rotations:
            records = manifest.member(r.rotations).records
            chain = rotations.parse_member(
                found[r.origin].rotations, r.rotations, r.origin, records
            )
            followed[r.origin] = rotations.follow(chain, r.origin, trusted, keys.verify, now)
    return followed


@dataclass(frozen=True, slots=True)
class Vouched:
    """A format 2 range's statements, checked: its head, its checkpoint's bytes (b""), and the
    rotations followed to the keys that signed them (which the import records as trusted)."""

    head: statements.Checked
    checkpoint: bytes
    followed: list[rotations.Rotation]


def newly_trusted(ledger: SqliteLedger, vouched: Mapping[str, Vouched]) -> list[dict[str, str]]:
    """The keys reached through origins' rotations that this site does not trust yet: each is
    recorded as trusted, vouched for by the key whose statement names it (FORMAT.md 3.2)."""
    held = set(trusted_keys(ledger))
    return [
        line.as_record()
        for v in vouched.values()
        for line in v.followed
        if line.new_key_id not in held
    ]
