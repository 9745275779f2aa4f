"""A bundle manifest's ranges and members, per format: their model, names, order and strict
reading (core layer; ``orchd.core.manifest`` holds the manifest around them).

Format 1 (``bundles/FORMAT.md`` 2.2): a range names its events member (``member``), and the
members are the ranges' events, in the ranges' order. Format 2 (2.1): a range names its events
(``events``) and its origin's head statement (``head``), and may name the origin's rotations and a
checkpoint with its base rows; the members are first every range's statements (rotations,
checkpoint, head), then every range's data (base, events), range by range in the ranges' order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from orchd.core import canonical
from orchd.core.events import ZERO_HASH
from orchd.core.names import check_name
from orchd.errors import BundleMalformed, OrchdError

MAX_RANGES = 1000
MAX_MEMBERS = 5000  # format 2: 2 to 5 per range
MAX_MEMBER_SIZE = 1 << 36  # 64 GiB compressed
MAX_RAW_SIZE = 1 << 38  # 256 GiB uncompressed
MAX_STATEMENT = 8192  # a head or checkpoint statement's envelope (FORMAT.md 3.3, 3.4)
MAX_ROTATION_LINES = 256  # lines of a rotations member (4.3)

_HEX64 = re.compile(r"[0-9a-f]{64}")
_RANGE_1 = {"origin", "from_seq", "to_seq", "prev_hash", "last_hash", "member"}
_RANGE_2 = {"origin", "from_seq", "to_seq", "prev_hash", "last_hash", "events", "head"}
_RANGE_2_OPTIONAL = {"rotations", "checkpoint", "base"}
_MEMBER_KEYS = {"name", "sha256", "size", "raw_size", "records"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Member:
    name: str
    sha256: str
    size: int  # bytes in the archive (compressed)
    raw_size: int  # bytes after decompression
    records: int  # lines (events), or 1 for a statement


@dataclass(frozen=True, slots=True, kw_only=True)
class Range:
    """Events ``from_seq..to_seq`` of ``origin``: ``prev_hash`` is the hash before ``from_seq``
    (64 zeros when it is 1), ``last_hash`` the hash of ``to_seq``; ``member`` names the events.
    Format 2 only: ``head`` names the origin's head statement, and ``rotations``, ``checkpoint``
    and ``base`` the members a pruned or rotated origin adds ("" when absent)."""

    origin: str
    from_seq: int
    to_seq: int
    prev_hash: str
    last_hash: str
    member: str
    head: str = ""
    rotations: str = ""
    checkpoint: str = ""
    base: str = ""

    def statements(self) -> list[str]:
        """This range's statement members, in archive order (format 2)."""
        return [n for n in (self.rotations, self.checkpoint, self.head) if n]

    def data(self) -> list[str]:
        """This range's data members, in archive order (``base`` is format 2's)."""
        return [n for n in (self.base, self.member) if n]


def member_name(origin: str) -> str:
    return f"events/{origin}.ndjson.zst"


def head_name(origin: str) -> str:
    return f"heads/{origin}.dsse"


_NAMES = {  # key -> (folder, extension) of the member a format 2 range names under that key
    "head": ("heads", "dsse"),
    "rotations": ("rotations", "ndjson"),
    "checkpoint": ("checkpoints", "dsse"),
    "base": ("base", "ndjson.zst"),
}


def member_order(version: int, ranges: tuple[Range, ...]) -> list[str]:
    """The members ``ranges`` name, in the order of the archive (FORMAT.md section 1)."""
    if version == 1:
        return [r.member for r in ranges]
    return [n for r in ranges for n in r.statements()] + [n for r in ranges for n in r.data()]


def range_json(r: Range, version: int) -> dict[str, Any]:
    value: dict[str, Any] = {
        "origin": r.origin,
        "from_seq": r.from_seq,
        "to_seq": r.to_seq,
        "prev_hash": r.prev_hash,
        "last_hash": r.last_hash,
    }
    if version == 1:
        return value | {"member": r.member}
    value |= {"events": r.member, "head": r.head}
    for key in ("rotations", "checkpoint", "base"):
        if getattr(r, key):
            value[key] = getattr(r, key)
    return value


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


def check_members(
    version: int, ranges_value: object, members_value: object
) -> tuple[tuple[Range, ...], tuple[Member, ...]]:
    """The ranges and members of a manifest of ``version``, read strictly: each range's names,
    the members exactly those, in archive order, each with its records and sizes."""
    most = MAX_RANGES if version == 1 else MAX_MEMBERS
    members = _members(members_value, most)
    ranges = _ranges(version, ranges_value)
    if [m.name for m in members] != member_order(version, ranges):
        raise _bad("members must be exactly the ranges' members, in archive order")
    by_name = {m.name: m for m in members}
    for r in ranges:
        _check_records(r, by_name)
    return ranges, members


def _members(value: object, most: int) -> tuple[Member, ...]:
    if not isinstance(value, list) or len(value) > most:
        raise _bad(f"members must be a list of at most {most}")
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


def _ranges(version: int, value: object) -> tuple[Range, ...]:
    if not isinstance(value, list) or not value or len(value) > MAX_RANGES:
        raise _bad(f"ranges must be a list of 1 to {MAX_RANGES}")
    ranges = tuple(_range(version, entry) for entry in value)
    origins = [r.origin for r in ranges]
    if origins != sorted(set(origins)):
        raise _bad("ranges must be sorted by origin, one per origin")
    return ranges


def _range(version: int, entry: object) -> Range:
    if version == 1:
        f = _keys(entry, _RANGE_1, set(), "a range")
    else:
        f = _keys(entry, _RANGE_2, _RANGE_2_OPTIONAL, "a range")
    if not isinstance(f["origin"], str):
        raise _bad("a range's origin must be a site id")
    try:
        origin = check_name("site id", f["origin"])
    except OrchdError as exc:
        raise _bad(exc.message) from None
    first = _int(f["from_seq"], "from_seq", 1, canonical.MAX_INT)
    last = _int(f["to_seq"], "to_seq", first, canonical.MAX_INT)
    prev = _hex(f["prev_hash"], "prev_hash")
    if (first == 1) != (prev == ZERO_HASH):
        raise _bad("prev_hash is 64 zeros exactly when from_seq is 1")
    events = f["member"] if version == 1 else f["events"]
    if events != member_name(origin):
        raise _bad(f"the events member of {origin} must be {member_name(origin)}")
    names = {key: _name(f, key, origin) for key in _NAMES if key in f}
    if version == 2 and ("checkpoint" in names) != ("base" in names):
        raise _bad(f"the range of {origin} must name a checkpoint and base rows together")
    if "checkpoint" in names and first < 2:
        raise _bad(f"the range of {origin} starts after a checkpoint: from_seq must be 2 or more")
    return Range(
        origin=origin,
        from_seq=first,
        to_seq=last,
        prev_hash=prev,
        last_hash=_hex(f["last_hash"], "last_hash"),
        member=events,
        **names,
    )


def _name(fields: dict[str, Any], key: str, origin: str) -> str:
    folder, extension = _NAMES[key]
    expected = f"{folder}/{origin}.{extension}"
    if fields[key] != expected:
        raise _bad(f"the {key} member of {origin} must be {expected}")
    return expected


def _check_records(r: Range, members: dict[str, Member]) -> None:
    events = members[r.member]
    if events.records != r.to_seq - r.from_seq + 1:
        raise _bad(f"member {events.name} must hold {r.to_seq - r.from_seq + 1} records")
    for name in (r.head, r.checkpoint):
        if name and (members[name].records != 1 or members[name].size > MAX_STATEMENT):
            raise _bad(f"member {name} must be one statement of at most {MAX_STATEMENT} bytes")
    if r.rotations and members[r.rotations].records > MAX_ROTATION_LINES:
        raise _bad(f"member {r.rotations} holds at most {MAX_ROTATION_LINES} statements")
    for name in (r.head, r.checkpoint, r.rotations):
        if name and members[name].raw_size != members[name].size:
            raise _bad(f"member {name} is not compressed: its raw_size must be its size")
