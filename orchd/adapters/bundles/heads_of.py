"""What a format 2 export carries beside its events (adapters layer): each range's head
statement (this site's own made now, another origin's passed on byte for byte), its origin's
chain of key rotations, and the checkpoint and base rows of a range that starts from its
origin's checkpoint (``bundles/FORMAT.md`` 6), as the members ``exporter`` writes.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping

from orchd.core import bundle, dsse, events, rotations, statements
from orchd.core.rotations import Rotation
from orchd.core.statements import HeadStatement
from orchd.errors import StateConflict

from .. import keys
from ..ledger import SqliteLedger
from ..ledger.statements import BaseMember


def made(
    ledger: SqliteLedger,
    key: keys.SiteKey,
    ranges: tuple[bundle.Range, ...],
    kept: Mapping[str, HeadStatement],
) -> list[tuple[HeadStatement, bundle.Range]]:
    """Format 2: each range's head statement, this site's own made now (``kept``: the statement
    store's), and its range."""
    found = []
    for r in ranges:
        if not r.head:
            continue  # format 1
        if r.origin != ledger.site_id:
            found.append((kept[r.origin], r))
            continue
        (body,) = ledger.bodies(r.origin, r.to_seq, r.to_seq)
        stamp = events.parse(body).hlc
        own = statements.make_head(
            r.origin, r.to_seq, r.last_hash, stamp, key_id=key.key_id, sign=key.sign
        )
        found.append((own, r))
    return found


def chains(
    ledger: SqliteLedger,
    key: keys.SiteKey,
    held: Mapping[str, tuple[int, str]],
    kept: Mapping[str, HeadStatement],
) -> dict[str, list[Rotation]]:
    """Format 2: origin -> its rotation statements, oldest first, the longest unbroken chain
    ending at the key that signed its head statement (this site's own key for its own range):
    from the origin's ``key.rotated`` events held here and the statement store (FORMAT.md 6)."""
    known: dict[str, list[Rotation]] = {}
    for event in ledger.records_of_type("key.rotated"):
        text = event.payload.get("statement")
        if event.origin in held and isinstance(text, str):
            line = rotations.parse(dsse.decode_base64(text, "a key.rotated statement"))
            known.setdefault(event.origin, []).append(line)
    signers = {o: s.envelope for o, s in kept.items()}
    stored = ledger.rotation_statements()
    chains = {}
    for origin in held:
        lines = known.get(origin, []) + stored.get(origin, [])
        if not lines:
            continue
        if origin == ledger.site_id:
            signer = key.key_id
        elif origin in signers:
            signer = (
                dsse.decode(signers[origin], payload_type=statements.HEAD_TYPE).signatures[0].key_id
            )
        else:
            continue
        if chain := rotations.chain_to(lines, signer):
            chains[origin] = chain
    return chains


def members(
    heads: list[tuple[HeadStatement, bundle.Range]],
    chains: Mapping[str, list[Rotation]],
    bases: Mapping[str, BaseMember],
) -> dict[str, tuple[bundle.Member, bytes]]:
    """Format 2: each range's head, rotations, checkpoint and base rows, as members."""
    found: dict[str, tuple[bundle.Member, bytes]] = {}
    for s, r in heads:
        found[r.head] = (small_member(r.head, s.envelope), s.envelope)
        if r.rotations:
            lines = chains[r.origin]
            data = b"".join(line.envelope + b"\n" for line in lines)
            member = dataclasses.replace(small_member(r.rotations, data), records=len(lines))
            found[r.rotations] = (member, data)
        if base := bases.get(r.origin):
            statement = base.statement.envelope
            found[r.checkpoint] = (small_member(r.checkpoint, statement), statement)
            member = bundle.Member(
                name=r.base,
                sha256=base.sha256,
                size=len(base.data),
                raw_size=base.raw_size,
                records=base.records,
            )
            found[r.base] = (member, base.data)
    return found


def base(ledger: SqliteLedger, r: bundle.Range) -> BaseMember:
    """The checkpoint and base rows a range that starts from its origin's checkpoint carries,
    from the statement store (refused, before anything is written, when it holds none there)."""
    base = ledger.base_member(r.origin)
    if base is None or (base.statement.seq, base.statement.hash) != (r.from_seq - 1, r.prev_hash):
        raise StateConflict(
            detail=f"this site pruned {r.origin} up to seq {r.from_seq - 1} but holds no "
            f"checkpoint of {r.origin}'s there (it pruned before it kept base rows): a site that "
            f"holds nothing of {r.origin} can join it only from a bundle of {r.origin}'s own"
        )
    return base


def small_member(name: str, data: bytes) -> bundle.Member:
    return bundle.Member(
        name=name,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        raw_size=len(data),
        records=1,
    )
