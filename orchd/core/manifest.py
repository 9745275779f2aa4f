"""The Offline Kit bundle's manifest: its model, its limits and its strict reading (core layer).

``bundles/FORMAT.md`` section 2 and "Limits" are the normative text; ``orchd.core.bundle``
re-exports every name here, so callers keep writing ``bundle.parse``, ``bundle.Manifest``. Formats
1 and 2 are read; format 2 is written (format 1 on request, for a peer not yet upgraded). A range's
members (its events and, in format 2, its statements) and their order are ``manifest_members``'.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from orchd.core import canonical, timefmt
from orchd.core.manifest_members import (
    MAX_MEMBER_SIZE,
    MAX_MEMBERS,
    MAX_RANGES,
    MAX_RAW_SIZE,
    MAX_STATEMENT,
    Member,
    Range,
    check_members,
    head_name,
    member_name,
    range_json,
)
from orchd.core.names import check_name
from orchd.errors import BundleMalformed, BundleRefused, OrchdError

__all__ = [
    "ANY_SITE",
    "DEFAULT_EXPIRY_MS",
    "DEFAULT_SKEW_MS",
    "FORMATS",
    "FORMAT_1",
    "FORMAT_2",
    "FORMAT_VERSION",
    "KINDS",
    "MAX_LINE",
    "MAX_MANIFEST",
    "MAX_MANIFEST_1",
    "MAX_MEMBERS",
    "MAX_MEMBER_NAME",
    "MAX_MEMBER_SIZE",
    "MAX_RANGES",
    "MAX_RAW_SIZE",
    "MAX_ROTATION",
    "MAX_SIGNATURE_FILE",
    "MAX_SIGNATURE_FILE_1",
    "MAX_STATEMENT",
    "MAX_WINDOW",
    "Manifest",
    "Member",
    "Range",
    "bundle_id",
    "head_name",
    "member_name",
    "parse",
    "signature_cap",
]

FORMAT_1, FORMAT_2 = 1, 2
FORMATS = (FORMAT_1, FORMAT_2)
FORMAT_VERSION = FORMAT_2  # what this orchd writes unless told (--format 1)
ANY_SITE = "*"
KINDS = ("full", "incremental")

# limits (FORMAT.md, "Limits")
MAX_MANIFEST = 2 * 1024 * 1024  # format 2; the largest possible is 1,938,590 bytes
MAX_MANIFEST_1 = 1024 * 1024
DEFAULT_EXPIRY_MS = 30 * 86_400_000  # how long a bundle may be imported, unless told
MAX_SIGNATURE_FILE = 2_796_981  # format 2: the largest manifest's envelope, 4 signatures (3.1)
MAX_SIGNATURE_FILE_1 = 64 * 1024  # format 1: part of that format, so its exporter refuses more
MAX_MEMBER_NAME = 100
MAX_LINE = 1024 * 1024  # one event
MAX_WINDOW = 1 << 23  # zstd window: 8 MiB
MAX_ROTATION = 8192  # the manifest's rotation statement, base64 characters
DEFAULT_SKEW_MS = 5 * 60 * 1000

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
    _by_name: dict[str, Member] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {m.name: m for m in self.members})

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "format": self.format,
            "bundle_id": self.bundle_id,
            "exporter": self.exporter,
            "recipient": self.recipient,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "kind": self.kind,
            "ranges": [range_json(r, self.format) for r in self.ranges],
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
        member = self._by_name.get(name)
        if member is not None:
            return member
        raise BundleMalformed(detail=f"the manifest lists no member {name!r}")


def bundle_id(exporter: str, recipient: str, created_at: str, ranges: Iterable[Range]) -> str:
    """A bundle's id: a digest of who made it for whom, when, and which events it holds."""
    spans = [[r.origin, r.from_seq, r.to_seq, r.last_hash] for r in ranges]
    seed = canonical.dump([exporter, recipient, created_at, spans])
    return hashlib.sha256(seed).hexdigest()[:32]


def signature_cap(manifest_bytes: bytes) -> int:
    """The most bytes ``manifest.sig`` may hold for this manifest: format 1's 64 KiB, else
    format 2's limit (a manifest that does not parse is refused by its own reading)."""
    try:
        value = canonical.decode(manifest_bytes)
    except OrchdError:
        return MAX_SIGNATURE_FILE
    if isinstance(value, dict) and value.get("format") == FORMAT_1:
        return MAX_SIGNATURE_FILE_1
    return MAX_SIGNATURE_FILE


def _bad(detail: str) -> BundleMalformed:
    return BundleMalformed(detail=f"manifest: {detail}")


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


def _format(data: bytes) -> tuple[int, dict[str, Any]]:
    """The manifest's format and fields: its size within its format's limit, canonical JSON,
    exactly the known keys, a format this orchd reads."""
    if len(data) > MAX_MANIFEST:
        raise _bad(f"larger than {MAX_MANIFEST} bytes")
    try:
        value = canonical.decode(data)
    except OrchdError as exc:
        raise _bad(f"not canonical JSON ({exc.message})") from None
    fields = _keys(value, _MANIFEST_KEYS, _OPTIONAL_KEYS, "the manifest")
    version = fields["format"]
    if type(version) is not int or version not in FORMATS:
        raise BundleRefused(
            detail=f"bundle format {version!r}; this orchd reads formats 1 and 2 (format "
            f"{version!r} is a newer orchd's: upgrade this site)"
        )
    if version == FORMAT_1 and len(data) > MAX_MANIFEST_1:
        raise _bad(f"larger than {MAX_MANIFEST_1} bytes (the limit of format 1)")
    return version, fields


def parse(data: bytes) -> Manifest:
    """Read a manifest strictly: canonical JSON, exactly the known keys, every value checked."""
    version, fields = _format(data)
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
    if rotation is not None and (not isinstance(rotation, str) or len(rotation) > MAX_ROTATION):
        raise _bad("rotation must be a base64 DSSE envelope")
    ranges, members = check_members(version, fields["ranges"], fields["members"])
    manifest = Manifest(
        format=version,
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
