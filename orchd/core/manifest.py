"""The Offline Kit bundle's manifest: its model, its limits and its strict reading (core layer).

``bundles/FORMAT.md`` section 2 and "Limits" are the normative text; ``orchd.core.bundle``
re-exports every name here, so callers keep writing ``bundle.parse``, ``bundle.Manifest``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from orchd.core import canonical, timefmt
from orchd.core.events import ZERO_HASH
from orchd.core.names import check_name
from orchd.errors import BundleMalformed, BundleRefused, OrchdError

FORMAT_VERSION = 1
ANY_SITE = "*"
KINDS = ("full", "incremental")

# limits (FORMAT.md, "Limits")
MAX_MANIFEST = 1024 * 1024
DEFAULT_EXPIRY_MS = 30 * 86_400_000  # how long a bundle may be imported, unless told
MAX_SIGNATURE_FILE = 64 * 1024
MAX_RANGES = 1000
MAX_MEMBER_NAME = 100
MAX_MEMBER_SIZE = 1 << 36  # 64 GiB compressed
MAX_RAW_SIZE = 1 << 38  # 256 GiB uncompressed
MAX_LINE = 1024 * 1024  # one event
MAX_WINDOW = 1 << 23  # zstd window: 8 MiB
DEFAULT_SKEW_MS = 5 * 60 * 1000

_HEX64 = re.compile(r"[0-9a-f]{64}")
_BUNDLE_ID = re.compile(r"[0-9a-f]{32}")
_MANIFEST_KEYS = {
    "format",
    "bundle_id",
    "exporter",
    "recipient",
    "created_at",
    "expires_at",
    "kind",
    "ranges",
    "previous",
    "members",
}
_OPTIONAL_KEYS = {"rotation"}
_RANGE_KEYS = {"origin", "from_seq", "to_seq", "prev_hash", "last_hash", "member"}
_MEMBER_KEYS = {"name", "sha256", "size", "raw_size", "records"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Member:
    name: str
    sha256: str
    size: int  # bytes in the archive (compressed)
    raw_size: int  # bytes after decompression
    records: int  # lines (events)


@dataclass(frozen=True, slots=True, kw_only=True)
class Range:
    """Events ``from_seq..to_seq`` of ``origin``: ``prev_hash`` is the hash before ``from_seq``
    (64 zeros when it is 1), ``last_hash`` the hash of ``to_seq``."""

    origin: str
    from_seq: int
    to_seq: int
    prev_hash: str
    last_hash: str
    member: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    format: int
    bundle_id: str
    exporter: str
    recipient: str
    created_at: str
    expires_at: str
    kind: str
    ranges: tuple[Range, ...]
    previous: str  # the previous bundle to this recipient, or ""
    members: tuple[Member, ...]
    rotation: str | None = None  # a DSSE key-rotation statement, base64, when the key is new

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "format": self.format,
            "bundle_id": self.bundle_id,
            "exporter": self.exporter,
            "recipient": self.recipient,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "kind": self.kind,
            "ranges": [
                {
                    "origin": r.origin,
                    "from_seq": r.from_seq,
                    "to_seq": r.to_seq,
                    "prev_hash": r.prev_hash,
                    "last_hash": r.last_hash,
                    "member": r.member,
                }
                for r in self.ranges
            ],
            "previous": self.previous,
            "members": [
                {
                    "name": m.name,
                    "sha256": m.sha256,
                    "size": m.size,
                    "raw_size": m.raw_size,
                    "records": m.records,
                }
                for m in self.members
            ],
        }
        if self.rotation is not None:
            value["rotation"] = self.rotation
        return value

    def encode(self) -> bytes:
        return canonical.dump(self.to_json())

    def member(self, name: str) -> Member:
        for member in self.members:
            if member.name == name:
                return member
        raise BundleMalformed(detail=f"the manifest lists no member {name!r}")


def member_name(origin: str) -> str:
    return f"events/{origin}.ndjson.zst"


def bundle_id(exporter: str, recipient: str, created_at: str, ranges: Iterable[Range]) -> str:
    """A bundle's id: a digest of who made it for whom, when, and which events it holds."""
    spans = [[r.origin, r.from_seq, r.to_seq, r.last_hash] for r in ranges]
    seed = canonical.dump([exporter, recipient, created_at, spans])
    return hashlib.sha256(seed).hexdigest()[:32]


def _bad(detail: str) -> BundleMalformed:
    return BundleMalformed(detail=f"manifest: {detail}")


def _int(value: object, what: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise _bad(f"{what} must be an integer from {low} to {high}")
    return value


def _hex(value: object, what: str) -> str:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise _bad(f"{what} must be 64 lower-case hex digits")
    return value


def _keys(value: object, required: set[str], optional: set[str], what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(f"{what} must be an object")
    if missing := required - set(value):
        raise _bad(f"{what} lacks {', '.join(sorted(missing))}")
    if unknown := set(value) - required - optional:
        raise _bad(f"{what} has unknown {', '.join(sorted(unknown))}")
    return value


def _time(value: object, what: str) -> str:
    try:
        timefmt.parse_canonical(value)
    except OrchdError:
        raise _bad(f"{what} must be a UTC time like 2026-01-31T12:00:00.000Z") from None
    return str(value)  # parse_canonical accepted it: it is text


def parse(data: bytes) -> Manifest:
    """Read a manifest strictly: canonical JSON, exactly the known keys, every value checked."""
    if len(data) > MAX_MANIFEST:
        raise _bad(f"larger than {MAX_MANIFEST} bytes")
    try:
        value = canonical.decode(data)
    except OrchdError as exc:
        raise _bad(f"not canonical JSON ({exc.message})") from None
    fields = _keys(value, _MANIFEST_KEYS, _OPTIONAL_KEYS, "the manifest")
    if fields["format"] != FORMAT_VERSION:
        raise BundleRefused(
            detail=f"bundle format {fields['format']!r}; this orchd reads format {FORMAT_VERSION}"
        )
    if not isinstance(fields["bundle_id"], str) or not _BUNDLE_ID.fullmatch(fields["bundle_id"]):
        raise _bad("bundle_id must be 32 lower-case hex digits")
    try:
        check_name("site id", fields["exporter"])
        if fields["recipient"] != ANY_SITE:
            check_name("site id", fields["recipient"])
    except OrchdError as exc:
        raise _bad(exc.message) from None
    if fields["kind"] not in KINDS:
        raise _bad("kind must be full or incremental")
    previous = fields["previous"]
    if not isinstance(previous, str) or (previous and not _BUNDLE_ID.fullmatch(previous)):
        raise _bad("previous must be a bundle id or empty")
    rotation = fields.get("rotation")
    if rotation is not None and (not isinstance(rotation, str) or len(rotation) > 8192):
        raise _bad("rotation must be a base64 DSSE envelope")
    members = _members(fields["members"])
    ranges = _ranges(fields["ranges"], members)
    manifest = Manifest(
        format=FORMAT_VERSION,
        bundle_id=fields["bundle_id"],
        exporter=fields["exporter"],
        recipient=fields["recipient"],
        created_at=_time(fields["created_at"], "created_at"),
        expires_at=_time(fields["expires_at"], "expires_at"),
        kind=fields["kind"],
        ranges=ranges,
        previous=previous,
        members=members,
        rotation=rotation,
    )
    if manifest.expires_at <= manifest.created_at:
        raise _bad("expires_at must be after created_at")
    if bundle_id(manifest.exporter, manifest.recipient, manifest.created_at, ranges) != (
        manifest.bundle_id
    ):
        raise _bad("bundle_id does not match the exporter, recipient, time and ranges")
    return manifest


def _members(value: object) -> tuple[Member, ...]:
    if not isinstance(value, list) or len(value) > MAX_RANGES:
        raise _bad(f"members must be a list of at most {MAX_RANGES}")
    members = []
    for entry in value:
        m = _keys(entry, _MEMBER_KEYS, set(), "a member")
        members.append(
            Member(
                name=m["name"] if isinstance(m["name"], str) else "",
                sha256=_hex(m["sha256"], "a member's sha256"),
                size=_int(m["size"], "a member's size", 1, MAX_MEMBER_SIZE),
                raw_size=_int(m["raw_size"], "a member's raw_size", 0, MAX_RAW_SIZE),
                records=_int(m["records"], "a member's records", 1, canonical.MAX_INT),
            )
        )
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        raise _bad("a member is listed twice")
    return tuple(members)


def _ranges(value: object, members: tuple[Member, ...]) -> tuple[Range, ...]:
    if not isinstance(value, list) or not value or len(value) > MAX_RANGES:
        raise _bad(f"ranges must be a list of 1 to {MAX_RANGES}")
    ranges = []
    for entry in value:
        f = _keys(entry, _RANGE_KEYS, set(), "a range")
        if not isinstance(f["origin"], str):
            raise _bad("a range's origin must be a site id")
        try:
            check_name("site id", f["origin"])
        except OrchdError as exc:
            raise _bad(exc.message) from None
        first = _int(f["from_seq"], "from_seq", 1, canonical.MAX_INT)
        last = _int(f["to_seq"], "to_seq", first, canonical.MAX_INT)
        prev = _hex(f["prev_hash"], "prev_hash")
        if (first == 1) != (prev == ZERO_HASH):
            raise _bad("prev_hash is 64 zeros exactly when from_seq is 1")
        if f["member"] != member_name(f["origin"]):
            raise _bad(f"the member of {f['origin']} must be {member_name(f['origin'])}")
        ranges.append(
            Range(
                origin=f["origin"],
                from_seq=first,
                to_seq=last,
                prev_hash=prev,
                last_hash=_hex(f["last_hash"], "last_hash"),
                member=f["member"],
            )
        )
    origins = [r.origin for r in ranges]
    if origins != sorted(set(origins)):
        raise _bad("ranges must be sorted by origin, one per origin")
    if [m.name for m in members] != [r.member for r in ranges]:
        raise _bad("members must be exactly the ranges' members, in the same order")
    for r, m in zip(ranges, members, strict=True):
        if m.records != r.to_seq - r.from_seq + 1:
            raise _bad(f"member {m.name} must hold {r.to_seq - r.from_seq + 1} records")
    return tuple(ranges)


# --- deciding what an import does -------------------------------------------------------------
