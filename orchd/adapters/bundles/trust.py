"""A bundle's signed head read from its file, and the trust store handed to the core's check
(adapters layer): the decisions are ``orchd.core.bundle_trust``'s.

``read_head`` reads the first two members and nothing else (nothing is decompressed before the
signature is checked); ``check_signature`` checks a head against this site's trust store with
Ed25519 (``keys.verify``); ``rotation_statement`` has an old key vouch for a new one.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from orchd.core import bundle, bundle_trust, bundle_views, dsse, statements, timefmt
from orchd.core.bundle_trust import Head, Signer
from orchd.core.manifest_members import MAX_ROTATION_LINES
from orchd.core.trust import KeyView
from orchd.errors import BundleMalformed, MemberMismatch, SignatureInvalid

from .. import archive_reader
from ..ledger import SqliteLedger

if TYPE_CHECKING:
    from .. import keys


def read_signed(source: BinaryIO) -> tuple[bytes, bytes]:
    """The bytes of ``manifest.json`` and ``manifest.sig``: the first two members, each within
    its limit."""
    first = archive_reader.next_entry(source)
    if first is None or first.name != "manifest.json":
        raise BundleMalformed(detail="the first member must be manifest.json")
    manifest_bytes = archive_reader.read_small(source, first, bundle.MAX_MANIFEST)
    second = archive_reader.next_entry(source)
    if second is None or second.name != "manifest.sig":
        raise SignatureInvalid(
            detail="the bundle is not signed: manifest.sig must follow the manifest"
        )
    cap = bundle.signature_cap(manifest_bytes)  # format 1's 64 KiB, or format 2's limit
    return manifest_bytes, archive_reader.read_small(source, second, cap)


@dataclass(frozen=True, slots=True)
class RangeStatements:
    """A format 2 range's statement members, as read (``checkpoint`` b"" when it has none)."""

    head: bytes
    checkpoint: bytes = b""
    rotations: bytes = b""


_ROTATIONS_CAP = MAX_ROTATION_LINES * (bundle.MAX_STATEMENT + 1)


def read_statements(source: BinaryIO, manifest: bundle.Manifest) -> dict[str, RangeStatements]:
    """Format 2: each range's statement members (origin -> their bytes), read as they come
    right after the signature (rotations, checkpoint, head), each within its limit and with the
    manifest's sha256, before anything is decompressed."""
    found = {}
    for r in manifest.ranges:
        chain = _statement(source, manifest, r.rotations, _ROTATIONS_CAP) if r.rotations else b""
        checkpoint = _statement(source, manifest, r.checkpoint) if r.checkpoint else b""
        head = _statement(source, manifest, r.head)
        found[r.origin] = RangeStatements(head, checkpoint, chain)
    return found


def _statement(
    source: BinaryIO, manifest: bundle.Manifest, name: str, cap: int = bundle.MAX_STATEMENT
) -> bytes:
    member = manifest.member(name)
    entry = archive_reader.next_entry(source)
    if entry is None or entry.name != name:
        found_name = "the end" if entry is None else repr(entry.name)
        raise BundleMalformed(detail=f"expected member {name!r}, found {found_name}")
    if entry.size != member.size:
        raise BundleMalformed(
            detail=f"member {name!r} has {entry.size} bytes, the manifest says {member.size}"
        )
    data = archive_reader.read_small(source, entry, cap)
    if hashlib.sha256(data).hexdigest() != member.sha256:
        raise MemberMismatch(member=name, detail="its sha256 differs from the manifest's")
    return data


def read_head(source: BinaryIO) -> Head:
    """The manifest and its signature envelope: the first two members, nothing decompressed."""
    return bundle_trust.parse_head(*read_signed(source))


def inspect(path: Path) -> tuple[Head, list[str]]:
    """The manifest and signatures, checked for form only (no trust, nothing written), and the
    members the manifest lists that the file does not hold whole (a truncated or partial file:
    found by their headers and sizes, no data read)."""
    with archive_reader.open_bundle(path) as source:
        head = read_head(source)
        held = set(archive_reader.whole_members(source))
    return head, [m.name for m in head.manifest.members if m.name not in held]


def trusted_keys(ledger: SqliteLedger) -> dict[str, KeyView]:
    """This site's trust store, key id -> row (a handful of keys: read whole)."""
    return {row.key_id: row for row in ledger.trust_keys()}


def relay_only(ledger: SqliteLedger, now_ms: int) -> dict[str, tuple[int, str]]:
    """origin -> (seq, bundle): the events this site holds of an origin on a relay's word alone,
    up to seq (``--vouched-by-relay``), until a head statement held of the origin covering the
    seq verifies with a key this site trusts for it (``core.statements.relay_only``)."""
    imported = ledger.records_of_type("bundle.imported")
    marks = bundle_views.relay_only_marks(imported, ledger.site_id)
    if not marks:
        return {}
    return statements.relay_only(
        marks,
        ledger.head_statements(),
        trusted=trusted_keys(ledger),
        verify=_verify,
        now=timefmt.format_ms(now_ms),
    )


def check_signature(ledger: SqliteLedger, head: Head, now: str) -> Signer:
    """A signature on the manifest by a key this site trusts for the exporter (or by a new key
    that such a key vouched for in the manifest's rotation statement)."""
    return bundle_trust.check_signature(head, trusted_keys(ledger), _verify, now)


def rotation_statement(site: str, old: keys.SiteKey, new_public_key: bytes) -> str:
    """A DSSE envelope, signed by ``old``, saying that ``site``'s key is now ``new``."""
    body = bundle_trust.rotation_payload(site, old.key_id, new_public_key)
    sig = old.sign(dsse.pae(dsse.ROTATION_TYPE, body))
    envelope = dsse.Envelope(
        payload_type=dsse.ROTATION_TYPE,
        payload=body,
        signatures=(dsse.Signature(key_id=old.key_id, sig=sig),),
    )
    return base64.b64encode(envelope.encode()).decode()


def _verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """``keys.verify``, the crypto imported at the first signature checked (``status`` asks
    for the relayed-only marks, and most sites have none)."""
    from .. import keys

    return keys.verify(public_key, message, signature)
