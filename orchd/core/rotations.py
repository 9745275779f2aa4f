"""An origin's chain of key rotations, carried with a relayed range (core layer, format 2).

``bundles/FORMAT.md`` 3.2 and 4.3 are the normative text. ``rotations/<origin>.ndjson`` holds the
origin's rotation statements, one DSSE envelope per line, oldest first, one unbroken chain (each
names the origin; from the second on, its old key is the new key of the line before). An
importer follows it from the keys it trusts for the origin: a line whose old key is trusted or
reached, and neither of whose keys is revoked here, must be signed by that old key, and its new
key is then reached; any other line proves nothing here. A reached key verifies the range's head
and checkpoint statements as a trusted key does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from orchd.core import dsse
from orchd.core.manifest_members import MAX_ROTATION_LINES, MAX_STATEMENT
from orchd.core.statements import Verify, read_payload, usable_keys
from orchd.core.trust import KeyView
from orchd.errors import MemberMismatch, SignatureInvalid

KEYS = frozenset({"new_key_id", "old_key_id", "public_key", "site"})
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Rotation:
    """A rotation statement: ``site``'s key ``old_key_id`` vouching for ``new_key_id``."""

    site: str
    old_key_id: str
    new_key_id: str
    public_key: str  # the new key, lower-case hex
    envelope: bytes

    def as_record(self) -> dict[str, str]:
        """What ``sync.trusted_record`` records of a rotation followed."""
        return {
            "site": self.site,
            "old_key_id": self.old_key_id,
            "new_key_id": self.new_key_id,
            "public_key": self.public_key,
        }


def _bad(detail: str) -> SignatureInvalid:
    return SignatureInvalid(detail=f"rotation statement: {detail}")


def parse(data: bytes) -> Rotation:
    """One rotation statement read strictly (form only): at most MAX_STATEMENT bytes, a
    canonical envelope of the rotation type, exactly its four keys, ``new_key_id`` the sha256 of
    ``public_key``."""
    value = read_payload(data, dsse.ROTATION_TYPE, KEYS, _bad)
    if not all(isinstance(value[k], str) and _HEX64.fullmatch(value[k]) for k in KEYS - {"site"}):
        raise _bad("its keys must be 64 lower-case hex digits")
    if dsse.key_id(bytes.fromhex(value["public_key"])) != value["new_key_id"]:
        raise _bad("new_key_id is not the sha256 of public_key")
    if not isinstance(value["site"], str):
        raise _bad("site must be text")
    return Rotation(
        site=value["site"],
        old_key_id=value["old_key_id"],
        new_key_id=value["new_key_id"],
        public_key=value["public_key"],
        envelope=data,
    )


def parse_member(data: bytes, name: str, origin: str, records: int) -> list[Rotation]:
    """A rotations member: 1 to MAX_ROTATION_LINES lines (56), each a statement of ``origin``
    (54), together one chain (54)."""
    if not data.endswith(b"\n"):
        raise MemberMismatch(member=name, detail="its last line has no newline")
    lines = data[:-1].split(b"\n")
    if not 1 <= len(lines) <= MAX_ROTATION_LINES or len(lines) != records:
        raise MemberMismatch(
            member=name, detail=f"{len(lines)} lines, not the manifest's {records} (at most 256)"
        )
    if any(len(line) > MAX_STATEMENT for line in lines):
        raise MemberMismatch(member=name, detail=f"a line is longer than {MAX_STATEMENT} bytes")
    chain = [parse(line) for line in lines]
    for before, after in zip([None, *chain], chain, strict=False):
        if after.site != origin:
            raise _bad(f"it is {after.site}'s, in the rotations of {origin}")
        if before is not None and after.old_key_id != before.new_key_id:
            raise _bad(f"the rotations of {origin} are not one chain")
    return chain


def follow(
    chain: Sequence[Rotation],
    origin: str,
    trusted: Mapping[str, KeyView],
    verify: Verify,
    now: str,
) -> list[Rotation]:
    """The lines of ``chain`` followed from the keys trusted for ``origin`` (FORMAT.md 3.2, step
    2), in order: each signed by its old key (54 when it is not), its new key reached."""
    revoked = {key_id for key_id, row in trusted.items() if row.revoked_at is not None}
    known = {key_id: row.public_key for key_id, row in usable_keys(trusted, origin, now).items()}
    followed = []
    for line in chain:
        if line.old_key_id not in known or {line.old_key_id, line.new_key_id} & revoked:
            continue  # proves nothing here
        envelope = dsse.decode(line.envelope, payload_type=dsse.ROTATION_TYPE)
        message = dsse.pae(dsse.ROTATION_TYPE, envelope.payload)
        public = bytes.fromhex(known[line.old_key_id])
        if not any(
            s.key_id == line.old_key_id and verify(public, message, s.sig)
            for s in envelope.signatures
        ):
            raise _bad(
                f"{origin}'s rotation to {line.new_key_id[:16]} is not signed by its old key"
            )
        known[line.new_key_id] = line.public_key
        followed.append(line)
    return followed


def reached(followed: Iterable[Rotation], at: str) -> dict[str, KeyView]:
    """The keys ``followed`` reached, as trust rows that verify their site's statements."""
    return {
        line.new_key_id: KeyView(
            key_id=line.new_key_id,
            site=line.site,
            public_key=line.public_key,
            role="peer",
            added_at=at,
            expires_at=None,
            revoked_at=None,
            reason=None,
        )
        for line in followed
    }


def leading_to(followed: Sequence[Rotation], signers: Iterable[str | None]) -> list[Rotation]:
    """The lines of ``followed`` up to the last one whose new key is among ``signers`` (the keys
    that signed statements the import accepts): what the import records as trusted."""
    wanted = set(signers)
    last = max((n for n, line in enumerate(followed) if line.new_key_id in wanted), default=-1)
    return list(followed[: last + 1])


def chain_to(statements: Iterable[Rotation], key_id: str) -> list[Rotation]:
    """The longest unbroken chain of ``statements`` ending at the rotation to ``key_id``, oldest
    first (at most MAX_ROTATION_LINES, the newest kept); empty when none names it."""
    by_new = {line.new_key_id: line for line in statements}
    chain: list[Rotation] = []
    seen = set()
    while key_id in by_new and key_id not in seen and len(chain) < MAX_ROTATION_LINES:
        seen.add(key_id)
        line = by_new[key_id]
        chain.append(line)
        key_id = line.old_key_id
    return chain[::-1]
